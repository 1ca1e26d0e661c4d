"""The outbox in Kinto's PostgreSQL database: each email is a row written in the transaction
of the change that asks for it, and any process that reaches the database delivers it.

Workers claim rows with ``FOR UPDATE SKIP LOCKED`` and hold them for a lease
(``kinto_emailer.outbox_lease``): a worker that dies gives its rows up when the lease ends.
A commit wakes the workers at once: ``NOTIFY`` in the writing transaction, ``LISTEN`` in each
worker; ``kinto_emailer.queue_poll_interval`` is the fallback. Times are the database's, so
that the clocks of several hosts don't matter.
"""

import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pyramid.config import Configurator
from pyramid_mailer.message import Message

from .. import (
    DROPPED,
    QUEUED,
    DraftCompleter,
    Email,
    Window,
    active_transaction,
    message_to_json,
)
from ..status import Query
from . import status, table, windows
from .admission import Admission
from .cursors import Cursor, SessionCursor, StorageCursor, WorkerTransaction
from .delivering import Deliveries
from .outcomes import Outcomes
from .queries import COLUMNS
from .table import CHANNEL, TABLE, dsn


if TYPE_CHECKING:
    from kinto.core.storage import StorageBase
    from kinto.core.storage.postgresql import Storage

    from ...config import EmailerSettings
    from ...smtp.mime import Outgoing


#: Windows closed per transaction.
BURST_OF_WINDOWS = 100
#: Seconds the worker goes at most without looking for closed windows when none is due
#: sooner: one that another process opens meanwhile lasts a second at least.
WINDOW_LOOK = 0.5


class PostgreSQLOutbox(Deliveries):
    name = "postgresql"
    transactional = True
    durable = True
    windowed = True
    description = "the PostgreSQL outbox (kinto_emailer.outbox)"
    sent_through = description

    def __init__(
        self,
        settings: "EmailerSettings",
        storage_url: str,
        drafts: DraftCompleter,
        storage: "Storage | None" = None,
    ):
        self.settings = settings
        self.drafts = drafts  # Completes a window's emails when it closes.
        self.url = dsn(storage_url)
        self.storage = storage  # Kinto's: ``put`` writes through the request's connection.
        self._reset()

    @classmethod
    def from_settings(
        cls,
        settings: "EmailerSettings",
        render: Callable[[Message], "Outgoing"],
        drafts: DraftCompleter,
        storage: "StorageBase | None" = None,
    ) -> "PostgreSQLOutbox":
        return cls(settings, settings.storage_url, drafts, storage)

    @classmethod
    def setup(cls, config: Configurator, settings: "EmailerSettings") -> None:
        config.add_migration(table.Migration())
        # ``kinto migrate`` (any of Kinto's commands) loads the app to create the table: it
        # can't need it yet.
        if not getattr(config.registry, "command", None):
            table.check_schema(settings.storage_url)

    def _reset(self) -> None:
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._lock = threading.Lock()
        self._connection: Any = None  # psycopg2's, as its listener's.
        self._listener: Any = None
        self._wake_r, self._wake_w = os.pipe()
        self.admission = Admission(self.settings)
        # Email id -> the recipients still to try, after a refusal.
        self._remaining: dict[str, list[str]] = {}
        self._windows_seen_until = 0.0  # ``time.monotonic()``: see ``_saw_windows``.
        #: Until when (``_lease_clock()``) each claimed email is surely still ours.
        self._held: dict[str, float] = {}
        #: The burst's outcomes, written together (see ``outcomes``).
        self._outcomes = Outcomes()

    # Writing, in the request's transaction.

    def put(self, emails: list[Email]) -> list[tuple[Email, str]]:
        if not emails:
            return []
        # An event notified after its transaction committed: a transaction of our own.
        with self._request_cursor() as cursor:
            return self._insert(cursor, emails)

    def _insert(self, cursor: Cursor, emails: list[Email]) -> list[tuple[Email, str]]:
        refused = self.admission.admit(cursor, emails)
        dropped = {id(email) for email, _ in refused}
        rows = []
        for email in emails:
            # Made in this process, or from a window's draft: an email, or what is posted.
            message = email.message
            assert message is not None or email.payload is not None
            status, error = (DROPPED, email.error) if id(email) in dropped else (QUEUED, None)
            email.status = status
            rows.append(
                (
                    email.bucket_id,
                    email.collection_id,
                    email.location,
                    email.uri,
                    email.action,
                    email.event,
                    None if message is None else message.subject,
                    len(email.recipients),
                    None if message is None else message_to_json(message),
                    email.size,
                    status,
                    error,
                    email.channel,
                    email.destination,
                    None if email.payload is None else json.dumps(email.payload),
                )
            )
        # The NOTIFY rides on the INSERT (one round trip); PostgreSQL sends it once, at commit.
        ids = cursor.insert_many(
            f"INSERT INTO {TABLE} ({COLUMNS}) VALUES %s RETURNING id, pg_notify('{CHANNEL}', '')",
            rows,
        )
        for email, (id_, _) in zip(emails, ids):
            email.id = str(id_)
        return refused

    def gather(self, windows_: list[Window]) -> list[tuple[Window, str]]:
        if not windows_:
            return []
        self.write_outcomes()  # The bytes this process's worker sent no longer count.
        if self.storage is not None and active_transaction() is not None:
            with self.storage.client.connect() as session:
                return windows.gather(
                    SessionCursor(session), windows_, self.admission, self.drafts
                )
        with self._worker_connection(atomic=True) as cursor:
            return windows.gather(cursor, windows_, self.admission, self.drafts)

    def close_windows(self) -> list[tuple[Email, str]]:
        if time.monotonic() < self._windows_seen_until:
            return []  # None can have closed since the last look.
        due = self.next_window()
        if due is None or due > 0:
            return []  # Most rounds: no transaction needed to take nothing.
        with self._worker_connection(atomic=True) as cursor:
            # Its emails are queued in the transaction that takes the window: never lost.
            emails = windows.take_closed(cursor, BURST_OF_WINDOWS, self.drafts)
            return self._insert(cursor, emails) if emails else []

    def next_window(self) -> float | None:
        started = time.monotonic()
        with self._worker_connection() as cursor:
            cursor.execute(windows.NEXT_WINDOW)
            due = cursor.fetchone()[0]
        due = None if due is None else max(0.0, float(due))
        self._saw_windows(started, due)
        return due

    def _saw_windows(self, started: float, due: float | None) -> None:
        """Until when no window can close, from a look at them begun at ``started``."""
        self._windows_seen_until = started + min(WINDOW_LOOK, WINDOW_LOOK if due is None else due)

    # The status views, in the request's transaction.

    def _request_cursor(self) -> "StorageCursor | WorkerTransaction":
        if self.storage is not None and active_transaction() is not None:
            return StorageCursor(self.storage)
        return self._worker_connection(atomic=True)

    def emails(self, query: Query) -> list[dict[str, Any]]:
        self.write_outcomes()  # This process's worker's, that a reader expects to see.
        with self._request_cursor() as cursor:
            return status.emails(cursor, query)

    def email(self, bucket_id: str, email_id: str) -> dict[str, Any] | None:
        self.write_outcomes()
        with self._request_cursor() as cursor:
            return status.email(cursor, bucket_id, email_id)

    def change(self, bucket_id: str, email_id: str, wanted: str) -> dict[str, Any] | None:
        self.write_outcomes()
        with self._request_cursor() as cursor:
            return status.change(cursor, bucket_id, email_id, wanted, self.admission)

    def flush(self) -> None:
        self._outcomes.forget()
        with self._worker_connection() as cursor:
            cursor.execute(f"TRUNCATE {TABLE}")

    def close(self) -> None:
        try:
            self.write_outcomes()
        finally:
            self._close_listener()
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    def reset_after_fork(self) -> None:
        # The parent's connections are the parent's: a child never uses their sockets.
        self._reset()
