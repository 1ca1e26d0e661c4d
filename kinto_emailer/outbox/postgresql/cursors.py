"""Where the PostgreSQL outbox's SQL runs: the worker's own connection, one transaction at
a time, or Kinto's connection, in the request's transaction; both with psycopg2's
``%(name)s`` placeholders."""

import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

import psycopg2
import psycopg2.errors
import psycopg2.extras


if TYPE_CHECKING:
    from kinto.core.storage.postgresql import Storage


@dataclass(frozen=True)
class Statement:
    """A statement of the worker's that PostgreSQL parses once per connection (``PREPARE``),
    then only executes, planned once where one plan serves every call: on a short queue, a
    claim's plan costs PostgreSQL more than its run.

    ``sql`` takes psycopg2's ``%(name)s`` placeholders, each of a type in ``types``; it is
    sent whole each time when the connection doesn't prepare (``outbox_prepared``).
    """

    name: str
    sql: str
    types: tuple[tuple[str, str], ...]  # (placeholder, PostgreSQL type), in order.

    def prepare(self) -> str:
        body = self.sql
        for number, (placeholder, _) in enumerate(self.types, 1):
            body = body.replace(f"%({placeholder})s", f"${number}")
        kinds = ", ".join(kind for _, kind in self.types)
        return f"PREPARE {self.name}{f' ({kinds})' if kinds else ''} AS {body}"

    def execute(self) -> str:
        casts = ", ".join(f"%({placeholder})s::{kind}" for placeholder, kind in self.types)
        return f"EXECUTE {self.name}{f' ({casts})' if casts else ''}"


#: The statements each connection has prepared (a new connection: none).
_prepared: "weakref.WeakKeyDictionary[Any, set[str]]" = weakref.WeakKeyDictionary()


def statement_text(
    connection: Any, cursor: Any, statement: "Statement | str", prepared: bool
) -> str:
    """What to send for ``statement`` on ``connection``: ``EXECUTE`` once it is prepared there
    (preparing it first, alone: a failed ``EXECUTE`` never leaves it prepared but unknown)."""
    if isinstance(statement, str):
        return statement
    if not prepared:
        return statement.sql
    names = _prepared.setdefault(connection, set())
    if statement.name not in names:
        cursor.execute(statement.prepare())
        names.add(statement.name)
    return statement.execute()


class Cursor(Protocol):
    """What the outbox's SQL runs on: the worker's connection, or the request's transaction."""

    def execute(self, sql: str, params: dict[str, Any] | None = None) -> None: ...

    def insert_many(self, sql: str, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]: ...

    def fetchone(self) -> Any: ...  # A row, or None.

    def fetchall(self) -> list[Any]: ...


class StorageCursor:
    """A cursor on Kinto's own connection: the request's transaction."""

    def __init__(self, storage: "Storage"):
        self.storage = storage

    def __enter__(self) -> "SessionCursor":
        self._context = self.storage.client.connect()
        return SessionCursor(self._context.__enter__())

    def __exit__(self, *exc_info: Any) -> Any:
        return self._context.__exit__(*exc_info)


class WorkerTransaction:
    """The worker's connection, one user at a time: a transaction committed on success when
    ``atomic``, else statements that are each their own transaction.

    A statement alone needs no ``BEGIN`` nor ``COMMIT``: psycopg2 would send each in a round
    trip of its own, three where one does.
    """

    def __init__(
        self,
        lock: threading.Lock,
        connect: Callable[[], Any],
        atomic: bool = False,
        prepared: bool = False,
    ):
        self.lock, self.connect, self.atomic, self.prepared = lock, connect, atomic, prepared

    def __enter__(self) -> "PsycopgCursor":
        self.lock.acquire()
        try:
            self.connection = self.connect()
            self.connection.autocommit = not self.atomic
            self.cursor = self.connection.cursor()
        except BaseException:
            self.lock.release()
            raise
        return PsycopgCursor(self.cursor, self.prepared)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if exc_type is None:
                self.connection.commit()  # Nothing to do in autocommit.
            elif isinstance(exc, psycopg2.errors.FeatureNotSupported):
                # "cached plan must not change result type": the table changed under a
                # prepared statement (``kinto migrate`` while it runs). A new connection
                # prepares them anew.
                self.connection.close()
            else:
                try:
                    self.connection.rollback()
                except psycopg2.Error:
                    self.connection.close()
        finally:
            self.cursor.close()
            self.lock.release()


class PsycopgCursor:
    def __init__(self, cursor: Any, prepared: bool = False):
        self.cursor, self.prepared = cursor, prepared
        self.rowcount = 0

    def execute(self, sql: str, params: dict[str, Any] | None = None) -> None:
        self.cursor.execute(sql, params)
        self.rowcount = self.cursor.rowcount

    def insert_many(self, sql: str, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        return psycopg2.extras.execute_values(self.cursor, sql, rows, fetch=True)

    def text(self, statement: Statement | str) -> str:
        """The text that runs ``statement`` on this connection."""
        return statement_text(self.cursor.connection, self.cursor, statement, self.prepared)

    def fetchone(self) -> Any:
        return self.cursor.fetchone()

    def fetchall(self) -> list[Any]:
        return self.cursor.fetchall()


class SessionCursor:
    """The same calls on Kinto's SQLAlchemy session: the request's own transaction."""

    def __init__(self, session: Any):
        self.session = session
        self.result: Any = None  # SQLAlchemy's result of the last ``execute``.

    def execute(self, sql: str, params: dict[str, Any] | None = None) -> None:
        # psycopg2's %(name)s placeholders, as on the worker's connection.
        self.result = self.session.connection().exec_driver_sql(sql, params or {})

    def insert_many(self, sql: str, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        raw = self.session.connection().connection.dbapi_connection
        with raw.cursor() as cursor:
            return psycopg2.extras.execute_values(cursor, sql, rows, fetch=True)

    def fetchone(self) -> Any:
        return self.result.fetchone()

    def fetchall(self) -> list[Any]:
        return self.result.fetchall()
