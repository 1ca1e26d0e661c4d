"""The outbox in Kinto's PostgreSQL database: each email is a row written in the transaction
of the change that asks for it, and any process that reaches the database delivers it.

Workers claim rows with ``FOR UPDATE SKIP LOCKED`` and hold them for a lease
(``kinto_emailer.outbox_lease``): a worker that dies gives its rows up when the lease ends.
A commit wakes the workers at once: ``NOTIFY`` in the writing transaction, ``LISTEN`` in each
worker; ``kinto_emailer.queue_poll_interval`` is the fallback. Times are the database's, so
that the clocks of several hosts don't matter.
"""

import functools
import json
import os
import select
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import psycopg2
import psycopg2.extras
from pyramid.config import Configurator
from pyramid_mailer.message import Message

from .. import (
    DROPPED,
    ENDED,
    FAILED,
    QUEUED,
    RETRYING,
    SENDING,
    SENT,
    DraftCompleter,
    Email,
    Outbox,
    Window,
    active_transaction,
    message_from_json,
    message_to_json,
    refused_error,
)
from ..status import Query
from . import status, table, windows
from .admission import PENDING_SQL, Admission
from .cursors import Cursor, SessionCursor, StorageCursor, WorkerTransaction
from .table import CHANNEL, TABLE, dsn


if TYPE_CHECKING:
    from kinto.core.storage import StorageBase
    from kinto.core.storage.postgresql import Storage

    from ...config import EmailerSettings
    from ...smtp.mime import Outgoing


#: Windows closed per transaction.
BURST_OF_WINDOWS = 100
_ENDED_SQL = "(" + ", ".join(f"'{status}'" for status in ENDED) + ")"
_COLUMNS = (
    "bucket_id, collection_id, hook, uri, action, event, subject, recipients_count, "
    "message, size, status, error"
)
_CLAIMABLE = """
    (o.status IN ('queued', 'retrying') AND o.next_attempt <= now())
    OR (o.status = 'sending' AND o.lease_until < now())
"""
# Not greatest(0, ...) in SQL: it would turn "nothing pending" (NULL) into 0.
_NEXT_DUE_AT = (
    f"SELECT min(CASE WHEN status = 'sending' THEN lease_until ELSE next_attempt END) "
    f"FROM {TABLE} WHERE status IN {PENDING_SQL}"
)
#: A clock that goes on while the host is suspended (Linux), for the leases: a worker whose
#: host slept must not think its lease is still young.
_lease_clock = (
    functools.partial(time.clock_gettime, time.CLOCK_BOOTTIME)
    if hasattr(time, "CLOCK_BOOTTIME")
    else time.monotonic
)
#: Seconds the worker goes at most without looking for closed windows when none is due
#: sooner: one that another process opens meanwhile lasts a second at least.
WINDOW_LOOK = 0.5
# One email per bucket and turn: the n-th waiting email of every bucket before any (n+1)-th.
_CLAIM = f"""
WITH picked AS (
    SELECT o.id FROM {TABLE} o
    JOIN (
        SELECT id, row_number() OVER (PARTITION BY bucket_id ORDER BY id) AS turn
        FROM {TABLE} o WHERE {_CLAIMABLE}
    ) ranked ON ranked.id = o.id
    WHERE {_CLAIMABLE}
    ORDER BY ranked.turn, o.id
    LIMIT %(limit)s
    FOR UPDATE OF o SKIP LOCKED
)
UPDATE {TABLE} o
   SET status = 'sending', worker = %(worker)s, last_modified = clock_timestamp(),
       lease_until = now() + make_interval(secs => %(lease)s)
  FROM picked WHERE o.id = picked.id
RETURNING o.id, o.bucket_id, o.collection_id, o.hook, o.uri, o.action, o.event, o.message,
          o.remaining, o.size, o.attempts, extract(epoch FROM o.created) AS created, o.refused
"""


class PostgreSQLOutbox(Outbox):
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
            message = email.message
            assert message is not None  # Made in this process, or from a window's draft.
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
                    message.subject,
                    len(email.recipients),
                    message_to_json(message),
                    email.size,
                    status,
                    error,
                )
            )
        # The NOTIFY rides on the INSERT (one round trip); PostgreSQL sends it once, at commit.
        ids = cursor.insert_many(
            f"INSERT INTO {TABLE} ({_COLUMNS}) VALUES %s RETURNING id, pg_notify('{CHANNEL}', '')",
            rows,
        )
        for email, (id_, _) in zip(emails, ids):
            email.id = str(id_)
        return refused

    def gather(self, windows_: list[Window]) -> list[tuple[Window, str]]:
        if not windows_:
            return []
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

    # Delivering, on the worker's own connection.

    def _worker_connection(self, atomic: bool = False) -> "WorkerTransaction":
        """The worker's connection: ``atomic`` for several statements in one transaction."""
        return WorkerTransaction(self._lock, self._connect, atomic)

    def _connect(self) -> Any:
        if self._connection is None or self._connection.closed:
            self._connection = psycopg2.connect(self.url, connect_timeout=10)
        return self._connection

    def claim(self, limit: int) -> list[Email]:
        params = {"limit": limit, "worker": self.worker_id, "lease": self.settings.outbox_lease}
        held = self._hold_from(_lease_clock())
        with self._worker_connection() as cursor:
            cursor.execute(_CLAIM, params)
            rows = cursor.fetchall()
        emails: list[Email] = []
        for row in sorted(rows, key=lambda r: r[0]):
            (id_, bucket_id, cid, hook, uri, action, event, message, remaining, size,
             attempts, created, refused) = row  # fmt: skip
            email = Email(
                message_from_json(message),
                location=hook,
                bucket_id=bucket_id,
                collection_id=cid,
                uri=uri,
                action=action,
                event=event,
                id=str(id_),
                status=SENDING,
                attempts=attempts,
                created=float(created),
                size=size,
                refused=refused or [],
            )
            if remaining is not None:
                self._remaining[email.id] = remaining
            self._held[email.id] = held
            emails.append(email)
        return emails

    def prepare(self, email: Email, render: Callable[[Message], "Outgoing"]) -> None:
        super().prepare(email, render)
        remaining = self._remaining.pop(email.id, None)
        if remaining is not None and email.outgoing is not None:
            email.outgoing.recipients = remaining

    def _hold_from(self, start: float) -> float:
        """Until when a lease taken or renewed by a statement sent at ``start`` is surely
        ours: half of it, whatever the clocks of the database and of this host say."""
        return start + self.settings.outbox_lease / 2

    def renew(self, email: Email) -> bool:
        # A burst may take longer than one lease: each email is held anew as its turn comes,
        # once half of its lease has passed (before that, no worker can take it over: only
        # the lease's end lets one, and the views can't change an email being sent).
        now = _lease_clock()
        if self._held.get(email.id, now) > now:
            return True
        with self._worker_connection() as cursor:
            cursor.execute(
                f"UPDATE {TABLE} SET lease_until = now() + make_interval(secs => %(lease)s) "
                "WHERE id = %(id)s AND status = 'sending' AND worker = %(worker)s",
                {
                    "id": int(email.id),
                    "lease": self.settings.outbox_lease,
                    "worker": self.worker_id,
                },
            )
            renewed = cursor.rowcount == 1
        if renewed:
            self._held[email.id] = self._hold_from(now)
        else:
            self._held.pop(email.id, None)
        return renewed

    def _update(self, email: Email, sets: str, **params: Any) -> None:
        # Only while the claim is ours: past the lease, another worker may hold the row now
        # (a ``sent`` is recorded whoever holds it: the mail server has the email).
        mine = "" if email.status == SENT else " AND worker = %(worker)s AND status = 'sending'"
        self._held.pop(email.id, None)
        with self._worker_connection() as cursor:
            cursor.execute(
                f"UPDATE {TABLE} SET {sets}, refused = %(refused)s, "
                "last_modified = clock_timestamp(), lease_until = NULL, worker = NULL "
                f"WHERE id = %(id)s{mine}",
                {
                    "id": int(email.id),
                    "worker": self.worker_id,
                    "refused": json.dumps(email.refused),
                    **params,
                },
            )

    def sent(self, email: Email) -> None:
        email.status = SENT
        self._update(
            email,
            "status = 'sent', sent = clock_timestamp(), attempts = %(attempts)s, "
            "error = %(error)s",
            attempts=email.attempts,
            error=refused_error(email.refused),
        )

    def retry(self, email: Email, delay: float, error: str) -> None:
        email.status = RETRYING
        remaining = None
        if email.outgoing is not None:
            remaining = json.dumps(list(email.outgoing.recipients))
        self._update(
            email,
            "status = 'retrying', attempts = %(attempts)s, error = %(error)s, "
            "remaining = %(remaining)s, next_attempt = now() + make_interval(secs => %(delay)s)",
            attempts=email.attempts,
            error=error,
            remaining=remaining,
            delay=delay,
        )

    def failed(self, email: Email, error: str) -> None:
        email.status = FAILED
        # Who is still to try, as for a retry: queued again, it goes to them only.
        remaining = None
        if email.outgoing is not None:
            remaining = json.dumps(list(email.outgoing.recipients))
        self._update(
            email,
            "status = 'failed', attempts = %(attempts)s, error = %(error)s, "
            "remaining = %(remaining)s",
            attempts=email.attempts,
            error=error,
            remaining=remaining,
        )

    def release(self, emails: list[Email]) -> None:
        if not emails:
            return
        for email in emails:
            self._held.pop(email.id, None)
        with self._worker_connection() as cursor:
            cursor.execute(
                f"UPDATE {TABLE} SET status = CASE WHEN attempts > 0 THEN 'retrying' "
                "ELSE 'queued' END, lease_until = NULL, worker = NULL, next_attempt = now(), "
                "last_modified = clock_timestamp() WHERE id = ANY(%(ids)s) AND worker = %(w)s",
                {"ids": [int(e.id) for e in emails], "w": self.worker_id},
            )
        for email in emails:
            email.status = RETRYING if email.attempts else QUEUED

    def pending(self) -> int:
        with self._worker_connection() as cursor:
            cursor.execute(f"SELECT count(*) FROM {TABLE} WHERE status IN {PENDING_SQL}")
            return cursor.fetchone()[0]

    def next_due(self) -> float | None:
        with self._worker_connection() as cursor:
            cursor.execute(f"SELECT extract(epoch FROM ({_NEXT_DUE_AT}) - now())")
            due = cursor.fetchone()[0]
        return None if due is None else max(0.0, float(due))

    def next_wake(self) -> float | None:
        # One statement for both: the worker asks before each wait.
        started = time.monotonic()
        with self._worker_connection() as cursor:
            cursor.execute(
                f"SELECT extract(epoch FROM ({_NEXT_DUE_AT}) - now()), "
                f"extract(epoch FROM ({windows.NEXT_WINDOW_AT}) - now())"
            )
            due, window = cursor.fetchone()
        window = None if window is None else max(0.0, float(window))
        self._saw_windows(started, window)
        return min((max(0.0, float(w)) for w in (due, window) if w is not None), default=None)

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

    # The status views, in the request's transaction.

    def _request_cursor(self) -> "StorageCursor | WorkerTransaction":
        if self.storage is not None and active_transaction() is not None:
            return StorageCursor(self.storage)
        return self._worker_connection(atomic=True)

    def emails(self, query: Query) -> list[dict[str, Any]]:
        with self._request_cursor() as cursor:
            return status.emails(cursor, query)

    def email(self, bucket_id: str, email_id: str) -> dict[str, Any] | None:
        with self._request_cursor() as cursor:
            return status.email(cursor, bucket_id, email_id)

    def change(self, bucket_id: str, email_id: str, wanted: str) -> dict[str, Any] | None:
        with self._request_cursor() as cursor:
            return status.change(cursor, bucket_id, email_id, wanted, self.admission)

    def purge(self) -> int:
        days = self.settings.outbox_retention_days
        with self._worker_connection() as cursor:
            cursor.execute(
                f"DELETE FROM {TABLE} WHERE status IN {_ENDED_SQL} "
                "AND last_modified < now() - make_interval(secs => %(seconds)s)",
                {"seconds": days * 86400},
            )
            return cursor.rowcount

    def flush(self) -> None:
        with self._worker_connection() as cursor:
            cursor.execute(f"TRUNCATE {TABLE}")

    def close(self) -> None:
        self._close_listener()
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def reset_after_fork(self) -> None:
        # The parent's connections are the parent's: a child never uses their sockets.
        self._reset()
