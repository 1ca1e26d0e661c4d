"""How long an SMTP exchange may take: each read or write a step's time, and connecting, or
sending one email, a whole exchange's time, however the server spreads its replies."""

import smtplib
import socket
import ssl
import struct
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any


if TYPE_CHECKING:  # What the mixins below are mixed into.
    _Socket = socket.socket
    _Session = smtplib.SMTP
else:
    _Socket = _Session = object


EXCHANGE_SETTING = "kinto_emailer.smtp_exchange_timeout"


class ExchangeTimeout(TimeoutError):
    """The server answers, but too slowly to finish a step of the exchange in time."""


class ExchangeAbandoned(TimeoutError):
    """The process is stopping: the exchange was cut short, whatever the server was doing."""


class Clock:
    """The time left for one part of an exchange (connecting, or sending one email): each
    read and write gets ``step`` seconds, and all of them together ``limit`` seconds."""

    def __init__(self, step: float, limit: float, setting: str = EXCHANGE_SETTING):
        self.step, self.limit, self.setting = step, limit, setting
        self.what = "connect"
        self.expired = False
        self.abandoned = False
        self.deadline = time.monotonic() + limit
        #: The exchange's socket once connected: what ``abandon`` shuts.
        self.sock: socket.socket | None = None

    def start(self, what: str, limit: float | None = None) -> None:
        self.what = what
        self.deadline = time.monotonic() + (self.limit if limit is None else limit)

    def timeout(self) -> float:
        """The socket time-out for the next read or write; raises once the deadline passed."""
        if self.abandoned:
            raise self.abandonment()
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise self.expire()
        return min(self.step, remaining)

    def expire(self) -> ExchangeTimeout:
        self.expired = True
        return ExchangeTimeout(
            f"the mail server took more than {self.limit:g}s to {self.what} ({self.setting})"
        )

    def passed(self) -> bool:
        return time.monotonic() >= self.deadline

    def attach(self, sock: socket.socket) -> None:
        self.sock = sock
        if self.abandoned:  # Abandoned while connecting: the socket came too late to see it.
            _shut(sock)

    def abandon(self) -> None:
        """From another thread: end the exchange now, a blocked read or write included."""
        self.abandoned = self.expired = True  # Before reading ``sock``: ``attach`` checks.
        sock = self.sock
        if sock is not None:
            _shut(sock)

    def abandonment(self) -> ExchangeAbandoned:
        return ExchangeAbandoned(f"the exchange ({self.what}) was abandoned: the process stops")


def _shut(sock: socket.socket) -> None:
    # Wakes the thread blocked on it, which close() doesn't; the plain socket's own method,
    # not SSLSocket's, which would drop the TLS state under that thread's feet.
    try:
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:  # Not connected, or already closed: nothing to wake.
        pass


class _Bounded(_Socket):
    """A socket whose every read and write ends by its clock's deadline: a server that sends
    one line at a time, each in time, can't hold a reply open forever."""

    clock: Clock | None = None
    #: The time-out last set; where the kernel keeps it, the socket's own mode is blocking.
    _timeout: float | None = None
    #: Whether the kernel keeps the time-out (``SO_RCVTIMEO``, ``SO_SNDTIMEO``): Python's
    #: own polls the socket before each read and write, two system calls instead of one,
    #: each a hand-off of the GIL to and from a web process's request threads.
    kernel_timeouts = False

    def _bounded(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        clock = self.clock
        if clock is None:
            return method(*args, **kwargs)
        timeout = clock.timeout()
        if timeout != self._timeout:
            # Only near the deadline: each call is a system call, and a hand-off of the GIL.
            self._set_timeout(timeout)
        try:
            result = method(*args, **kwargs)
        except OSError as e:
            if clock.abandoned:  # Shut by ``abandon``: the reason is the stop, not the server.
                raise clock.abandonment() from None
            if not isinstance(
                e, TimeoutError | BlockingIOError
            ):  # Python's time-out, the kernel's.
                raise
            if clock.passed():  # The deadline cut this step short, not the step's own time.
                raise clock.expire() from None
            raise TimeoutError("timed out") from None
        if clock.abandoned:  # A read that ended on the shut socket: no reply, an end.
            raise clock.abandonment()
        return result

    def _set_timeout(self, timeout: float) -> None:
        self._timeout = timeout
        if not self.kernel_timeouts:
            self.settimeout(timeout)
            return
        self.settimeout(None)  # Blocking, the descriptor too (it may come from another socket).
        # A zero ``timeval`` would mean no time-out at all: at least a microsecond.
        seconds, micros = divmod(max(1, round(timeout * 1_000_000)), 1_000_000)
        timeval = struct.pack("ll", seconds, micros)
        self.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval)
        self.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval)

    def recv_into(self, *args: Any, **kwargs: Any) -> int:
        return self._bounded(super().recv_into, *args, **kwargs)

    def recv(self, *args: Any, **kwargs: Any) -> bytes:
        return self._bounded(super().recv, *args, **kwargs)

    def send(self, *args: Any, **kwargs: Any) -> int:
        return self._bounded(super().send, *args, **kwargs)

    def sendall(self, *args: Any, **kwargs: Any) -> None:
        return self._bounded(super().sendall, *args, **kwargs)


class _BoundedSocket(_Bounded, socket.socket):
    # TLS keeps Python's time-outs: OpenSSL reads a kernel time-out as "want read".
    kernel_timeouts = hasattr(socket, "SO_RCVTIMEO") and sys.platform == "linux"


class BoundedSSLSocket(_Bounded, ssl.SSLSocket):
    pass


class _BoundedSession(_Session):
    """smtplib's session on bounded sockets; after STARTTLS, the context must make
    :class:`BoundedSSLSocket` (``context.sslsocket_class``)."""

    def __init__(self, host: str, port: int, clock: Clock, **kwargs: Any):
        self.clock = clock
        super().__init__(host, port, timeout=clock.step, **kwargs)

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        # smtplib's own hook for making the socket, which typeshed leaves out.
        sock = super()._get_socket(host, port, self.clock.timeout())  # type: ignore[misc]
        bounded = sock if isinstance(sock, _Bounded) else None
        if bounded is None:
            bounded = _BoundedSocket(sock.family, sock.type, sock.proto, fileno=sock.detach())
        bounded.clock = self.clock
        self.clock.attach(bounded)
        return bounded

    def starttls(self, *args: Any, **kwargs: Any) -> tuple[int, bytes]:
        plain: Any = self.sock
        if plain is not None:  # The handshake takes the socket's mode: Python's time-out.
            plain.settimeout(self.clock.timeout())
        reply = super().starttls(*args, **kwargs)
        sock: Any = self.sock  # A BoundedSSLSocket, made by the context of ``tls_context``.
        sock.clock = self.clock
        self.clock.attach(sock)  # The plain socket was detached: its descriptor is this one's.
        return reply


class BoundedSMTP(_BoundedSession, smtplib.SMTP):
    pass


class BoundedSMTP_SSL(_BoundedSession, smtplib.SMTP_SSL):
    pass
