"""The worker's side of the PostgreSQL outbox, on a connection of its own: claims held for a
lease, each outcome recorded while the claim is still this worker's, what falls due next."""

import functools
import json
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import psycopg2
import psycopg2.extras
from pyramid_mailer.message import Message

from ...log_values import quoted
from .. import (
    CANCELLED,
    FAILED,
    QUEUED,
    RETRYING,
    SENDING,
    SENT,
    Email,
    message_from_json,
    refused_error,
)
from . import outcomes, windows
from .cursors import PsycopgCursor, Statement, WorkerTransaction
from .queries import CLAIM, NEXT_DUE_AT, PENDING_COUNT, PURGE, PURGE_BATCH, RELEASE, RENEW
from .waiting import Notifications


logger = logging.getLogger("kinto_emailer.outbox")


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
    _outcomes: outcomes.Outcomes

    def _saw_windows(self, started: float, due: float | None) -> None:
        raise NotImplementedError

    # Delivering, on the worker's own connection.

    def _worker_connection(self, atomic: bool = False) -> "WorkerTransaction":
        """The worker's connection: ``atomic`` for several statements in one transaction."""
        return WorkerTransaction(self._lock, self._connect, atomic, self.settings.outbox_prepared)

    def _connect(self) -> Any:
        if self._connection is None or self._connection.closed:
            self._connection = psycopg2.connect(self.url, connect_timeout=10)
        return self._connection

    def _with_outcomes(
        self,
        cursor: "PsycopgCursor",
        sql: Statement | str | None = None,
        params: dict[str, Any] | None = None,
    ) -> None:
        """Run ``sql`` after writing the outcomes that wait: one round trip, one transaction."""
        waiting = self._outcomes.take()
        try:
            texts = [] if sql is None else [cursor.text(sql)]
            if waiting:
                write, written = outcomes.write(waiting, self.worker_id)
                texts.insert(0, cursor.text(write))
                params = {**written, **(params or {})}
            if texts:
                cursor.execute(";\n".join(texts), params)
        except (ValueError, psycopg2.DataError) as e:
            # What the outcomes carry can't be written: given back, they would fail every
            # later statement. Their rows go back to the queue once their leases end.
            if waiting:
                logger.warning(
                    "Could not record the outcomes of %d email(s): %s", len(waiting), quoted(e)
                )
            raise
        except BaseException:
            self._outcomes.give_back(waiting)  # Written with the next statement.
            raise

    def write_outcomes(self) -> None:
        """Write the outcomes that wait, now: before a read that must see them."""
        if self._outcomes.pending():
            with self._worker_connection() as cursor:
                self._with_outcomes(cursor)

    def claim(self, limit: int) -> list[Email]:
        params = {"limit": limit, "worker": self.worker_id, "lease": self.settings.outbox_lease}
        held = self._hold_from(_lease_clock())
        with self._worker_connection() as cursor:
            self._with_outcomes(cursor, CLAIM, params)
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
        # A burst may take longer than one lease: once half of it has passed, every email the
        # burst still holds is held anew, in one statement (before that, no worker can take
        # them over: only the lease's end lets one, and the views can't change an email being
        # sent). The outcomes that waited too long are written on the way.
        now = _lease_clock()
        if self._held.get(email.id, now) > now:
            if self._outcomes.overdue():
                self.write_outcomes()
            return True
        ids = {email.id, *list(self._held)}
        params = {
            "ids": [int(id_) for id_ in ids],
            "lease": self.settings.outbox_lease,
            "worker": self.worker_id,
        }
        with self._worker_connection() as cursor:
            self._with_outcomes(cursor, RENEW, params)
            renewed = {str(id_) for (id_,) in cursor.fetchall()}
        held = self._hold_from(now)
        for id_ in ids:
            if id_ in renewed:
                self._held[id_] = held
            else:  # Taken over by another worker: its outcome is no longer ours to write.
                self._held.pop(id_, None)
        return email.id in renewed

    def _record(self, email: Email, error: str | None, **outcome: Any) -> None:
        """Keep ``email``'s outcome, to be written with the burst's others."""
        self._held.pop(email.id, None)
        self._outcomes.add(
            outcomes.Outcome(
                id=int(email.id),
                status=email.status,
                attempts=email.attempts,
                # A mail server's reply may hold a NUL byte, which PostgreSQL's text refuses.
                error=None if error is None else _without_nul(error),
                refused=json.dumps(_without_nul(email.refused)),
                **outcome,
            )
        )

    def sent(self, email: Email) -> None:
        email.status = SENT
        self._record(email, refused_error(email.refused), remaining=None)

    def retry(self, email: Email, delay: float, error: str) -> None:
        email.status = RETRYING
        self._record(email, error, remaining=_remaining(email), delay=delay)

    def failed(self, email: Email, error: str) -> None:
        email.status = FAILED
        # Who is still to try, as for a retry: queued again, it goes to them only.
        self._record(email, error, remaining=_remaining(email))

    def cancelled(self, email: Email, reason: str) -> None:
        email.status = CANCELLED
        self._record(email, reason, remaining=None)  # The row's is kept: queued again, as it was.

    def release(self, emails: list[Email]) -> None:
        if not emails:
            return
        for email in emails:
            self._held.pop(email.id, None)
        with self._worker_connection() as cursor:
            self._with_outcomes(
                cursor, RELEASE, {"ids": [int(e.id) for e in emails], "w": self.worker_id}
            )
        for email in emails:
            email.status = RETRYING if email.attempts else QUEUED

    def pending(self) -> int:
        with self._worker_connection() as cursor:
            self._with_outcomes(cursor, PENDING_COUNT)
            return cursor.fetchone()[0]

    def purge(self) -> int:
        # In batches, each its own short transaction: never a long lock, nor a long vacuum
        # debt for the writers' table; rows locked elsewhere wait for the next purge.
        seconds, purged = self.settings.outbox_retention_days * 86400, 0
        while True:
            with self._worker_connection() as cursor:
                self._with_outcomes(cursor, PURGE, {"seconds": seconds, "batch": PURGE_BATCH})
                purged += cursor.rowcount
            if cursor.rowcount < PURGE_BATCH:
                return purged

    def next_due(self) -> float | None:
        with self._worker_connection() as cursor:
            self._with_outcomes(cursor, f"SELECT extract(epoch FROM ({NEXT_DUE_AT}) - now())")
            due = cursor.fetchone()[0]
        return None if due is None else max(0.0, float(due))

    def next_wake(self) -> float | None:
        # One statement for both: the worker asks before each wait.
        started = time.monotonic()
        with self._worker_connection() as cursor:
            self._with_outcomes(cursor, NEXT_WAKE)
            due, window = cursor.fetchone()
        window = None if window is None else max(0.0, float(window))
        self._saw_windows(started, window)
        return min((max(0.0, float(w)) for w in (due, window) if w is not None), default=None)


#: When the next email falls due and the next window closes, in seconds from now.
NEXT_WAKE = Statement(
    "kinto_emailer_next_wake",
    f"SELECT extract(epoch FROM ({NEXT_DUE_AT}) - now()), "
    f"extract(epoch FROM ({windows.NEXT_WINDOW_AT}) - now())",
    (),
)


def _without_nul(value: Any) -> Any:
    """``value`` (text, or lists and objects of it) without its NUL characters."""
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, (list, tuple)):
        return [_without_nul(item) for item in value]
    if isinstance(value, dict):
        return {key: _without_nul(item) for key, item in value.items()}
    return value


def _remaining(email: Email) -> str | None:
    """The recipients still to try, as the ``remaining`` column keeps them."""
    if email.outgoing is None:
        return None
    return json.dumps(list(email.outgoing.recipients))
