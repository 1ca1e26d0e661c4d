"""A POST's whole time: connecting, sending and the reply, however slowly the receiver
trickles it. At the deadline, or when the process stops, the connection's socket is shut,
which ends a blocked read at once (``requests`` bounds each read only, not their sum)."""

import heapq
import itertools
import os
import socket
import threading
import time
from types import TracebackType
from typing import Any

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool


#: The watch of the POST under way in this thread: what its connection reports to.
_local = threading.local()


class Watchdog:
    """One thread that ends the POSTs whose deadline passed, for every POST of the process: a
    thread started for each (``threading.Timer``) cost 0.26 ms of CPU, a quarter of a POST's.
    """

    def __init__(self) -> None:
        self._reset()
        os.register_at_fork(after_in_child=self._reset)  # The parent's thread isn't there.

    def _reset(self) -> None:
        self._condition = threading.Condition()
        self._due: list[tuple[float, int, Watch]] = []  # A heap, the soonest first.
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    def add(self, watch: "Watch", seconds: float) -> None:
        with self._condition:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="kinto-emailer-http-deadlines", daemon=True
                )
                self._thread.start()
            heapq.heappush(self._due, (time.monotonic() + seconds, next(self._order), watch))
            if self._due[0][2] is watch:  # Sooner than what the thread waits for.
                self._condition.notify()

    def _run(self) -> None:
        while True:
            with self._condition:
                now = time.monotonic()
                expired = []
                # Ended POSTs leave when they come first: a heap has no cheap removal.
                while self._due and (self._due[0][2].ended or self._due[0][0] <= now):
                    _, _, watch = heapq.heappop(self._due)
                    if not watch.ended:
                        expired.append(watch)
                if not expired:
                    self._condition.wait(self._due[0][0] - now if self._due else None)
                    continue
            for watch in expired:  # Outside the lock: each takes its own.
                watch.expire()


_watchdog = Watchdog()


class Watch:
    """One POST's deadline; ``abandon`` may be called from another thread."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.expired = False
        self.abandoned = False
        self.ended = False  # The POST is over: its deadline no longer matters.
        self._lock = threading.Lock()
        self._connection: Any = None

    def __enter__(self) -> "Watch":
        _local.watch = self
        _watchdog.add(self, self.seconds)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        _local.watch = None
        with self._lock:  # A deadline that passes now leaves the connection, back in its pool.
            self.ended = True
            self._connection = None

    def attach(self, connection: Any) -> None:
        with self._lock:
            self._connection = connection
            if self.expired:  # Too late already: it ends before it starts.
                _shut(connection)

    def expire(self) -> None:
        with self._lock:
            if self.ended:
                return
            self.expired = True
            _shut(self._connection)

    def abandon(self) -> None:
        """The process stops: end the POST now, whatever the receiver does."""
        self.abandoned = True
        self.expire()


def _shut(connection: Any) -> None:
    sock = getattr(connection, "sock", None)
    if sock is None:
        return  # Not connected yet: the connect time-out ends it, and ``connect`` checks.
    # The plain socket's own method, not SSLSocket's: it wakes the reading thread.
    try:
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:  # Closed already: nothing to wake.
        pass


class _Watched:
    """A urllib3 connection that reports to the thread's watch."""

    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        watch = getattr(_local, "watch", None)
        if watch is not None:
            watch.attach(self)

    def request(self, *args: Any, **kwargs: Any) -> None:
        watch = getattr(_local, "watch", None)
        if watch is not None:  # A connection kept from an earlier POST: no ``connect``.
            watch.attach(self)
        super().request(*args, **kwargs)  # type: ignore[misc]


class _HTTPConnection(_Watched, HTTPConnection):
    pass


class _HTTPSConnection(_Watched, HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


class WatchedAdapter(HTTPAdapter):
    """``requests``' adapter on connections that a ``Watch`` can shut."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}
