"""The worker's side of the PostgreSQL outbox, on a connection of its own: claims held for a
lease, each outcome recorded while the claim is still this worker's, what falls due next."""

import functools
import json
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import psycopg2
import psycopg2.extras
from pyramid_mailer.message import Message

from .. import (
    FAILED,
    QUEUED,
    RETRYING,
    SENDING,
    SENT,
    Email,
    message_from_json,
    refused_error,
)
from . import windows
from .admission import PENDING_SQL
from .cursors import WorkerTransaction
from .queries import CLAIM, NEXT_DUE_AT
from .table import TABLE
from .waiting import Notifications


if TYPE_CHECKING:
    from ...config import EmailerSettings
    from ...smtp.mime import Outgoing


#: A clock that goes on while the host is suspended (Linux), for the leases: a worker whose
#: host slept must not think its lease is still young.
_lease_clock = (
    functools.partial(time.clock_gettime, time.CLOCK_BOOTTIME)
    if hasattr(time, "CLOCK_BOOTTIME")
    else time.monotonic
)


class Deliveries(Notifications):
    """The delivering part of ``PostgreSQLOutbox``."""

    settings: "EmailerSettings"
    worker_id: str
    _lock: threading.Lock
    _connection: Any
    _remaining: dict[str, list[str]]
    _held: dict[str, float]

    def _saw_windows(self, started: float, due: float | None) -> None:
        raise NotImplementedError

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
            cursor.execute(CLAIM, params)
            rows = cursor.fetchall()
        emails: list[Email] = []
        for row in sorted(rows, key=lambda r: r[0]):
            (id_, bucket_id, cid, hook, uri, action, event, message, remaining, size,
             attempts, created, refused, channel, destination, payload) = row  # fmt: skip
            email = Email(
                None if message is None else message_from_json(message),
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
                channel=channel,
                destination=destination,
                payload=payload,
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
        remaining = _remaining(email)
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
        remaining = _remaining(email)
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
            cursor.execute(f"SELECT extract(epoch FROM ({NEXT_DUE_AT}) - now())")
            due = cursor.fetchone()[0]
        return None if due is None else max(0.0, float(due))

    def next_wake(self) -> float | None:
        # One statement for both: the worker asks before each wait.
        started = time.monotonic()
        with self._worker_connection() as cursor:
            cursor.execute(
                f"SELECT extract(epoch FROM ({NEXT_DUE_AT}) - now()), "
                f"extract(epoch FROM ({windows.NEXT_WINDOW_AT}) - now())"
            )
            due, window = cursor.fetchone()
        window = None if window is None else max(0.0, float(window))
        self._saw_windows(started, window)
        return min((max(0.0, float(w)) for w in (due, window) if w is not None), default=None)


def _remaining(email: Email) -> str | None:
    """The recipients still to try, as the ``remaining`` column keeps them."""
    if email.outgoing is None:
        return None
    return json.dumps(list(email.outgoing.recipients))
