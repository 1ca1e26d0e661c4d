"""How a worker waits on the PostgreSQL outbox: ``LISTEN`` on the table's channel, which each
commit that adds emails ``NOTIFY``s, and a pipe that ``wake`` writes to."""

import os
import select
from typing import Any

import psycopg2
import psycopg2.extensions

from .. import Outbox
from .table import CHANNEL


class Notifications(Outbox):
    """The waiting part of ``PostgreSQLOutbox``: its listener connection, and its pipe."""

    url: str
    _listener: Any
    _wake_r: int
    _wake_w: int

    def wait(self, timeout: float | None) -> bool:
        listener = self._listen()
        if listener is None:  # The database is unreachable: the caller's poll goes on.
            return super().wait(timeout)
        if listener.notifies:
            listener.notifies.clear()
            return True
        readable, _, _ = select.select([listener, self._wake_r], [], [], timeout)
        if self._wake_r in readable:
            os.read(self._wake_r, 4096)
        if listener in readable:
            try:
                listener.poll()
            except psycopg2.Error:
                self._close_listener()
            listener.notifies.clear()
        return bool(readable)

    def _listen(self) -> Any:
        if self._listener is None or self._listener.closed:
            try:
                listener = psycopg2.connect(self.url, connect_timeout=10)
                listener.set_isolation_level(psycopg2.extensions.ISOLATION_LEVEL_AUTOCOMMIT)
                with listener.cursor() as cursor:
                    cursor.execute(f"LISTEN {CHANNEL}")
            except psycopg2.Error:
                return None
            self._listener = listener
        return self._listener

    def _close_listener(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None

    def wake(self) -> None:
        os.write(self._wake_w, b"x")
