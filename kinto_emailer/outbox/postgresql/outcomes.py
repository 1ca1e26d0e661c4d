"""A burst's outcomes, written together: each ``sent``, ``retry``, ``failed`` and
``cancelled`` waits in the worker's memory, and one statement writes them all, in the same
round trip as the worker's next statement (its next claim, or its look at what falls due
next).

An outcome waits ``OUTCOMES_WAIT`` seconds at most before the next email is sent: a worker
killed meanwhile leaves those rows claimed, and another worker sends them again once their
leases end (at least once, as with an email whose reply was lost). Against a slow mail
server, each outcome is written before the next email goes, as one at a time would be.
"""

import threading
import time
from dataclasses import dataclass
from typing import Any

from .cursors import Statement
from .table import TABLE


#: Seconds an outcome may wait for others before the next email is sent.
OUTCOMES_WAIT = 0.05

#: One row per outcome, from arrays (``unnest``): the statement's text never changes. A
#: ``sent`` is written whoever holds the row now (the mail server has the email); the others
#: only while the claim is still this worker's.
WRITE_SQL = f"""
UPDATE {TABLE} o
   SET status = v.status, attempts = v.attempts, error = v.error,
       remaining = CASE WHEN v.status IN ('sent', 'cancelled') THEN o.remaining
                        ELSE v.remaining END,
       refused = v.refused,
       sent = CASE WHEN v.status = 'sent' THEN clock_timestamp() ELSE o.sent END,
       next_attempt = CASE WHEN v.status = 'retrying'
                           THEN now() + make_interval(secs => v.delay) ELSE o.next_attempt END,
       last_modified = clock_timestamp(), lease_until = NULL, worker = NULL
  FROM unnest(%(o_ids)s::bigint[], %(o_statuses)s::text[], %(o_attempts)s::int[],
              %(o_errors)s::text[], %(o_remaining)s::jsonb[], %(o_refused)s::jsonb[],
              %(o_delays)s::float8[])
       AS v(id, status, attempts, error, remaining, refused, delay)
 WHERE o.id = v.id
   AND (v.status = 'sent' OR (o.worker = %(o_worker)s AND o.status = 'sending'))
"""
WRITE = Statement(
    "kinto_emailer_outcomes",
    WRITE_SQL,
    (
        ("o_ids", "bigint[]"),
        ("o_statuses", "text[]"),
        ("o_attempts", "int[]"),
        ("o_errors", "text[]"),
        ("o_remaining", "jsonb[]"),
        ("o_refused", "jsonb[]"),
        ("o_delays", "float8[]"),
        ("o_worker", "text"),
    ),
)


@dataclass
class Outcome:
    id: int
    status: str  # ``sent``, ``retrying``, ``failed`` or ``cancelled``.
    attempts: int
    error: str | None
    remaining: str | None  # JSON; a ``sent`` or ``cancelled`` keeps the row's.
    refused: str  # JSON.
    delay: float | None = None  # A retry's.


class Outcomes:
    """The outcomes not written yet; safe from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: list[Outcome] = []
        self._since = 0.0  # ``time.monotonic()`` of the oldest.

    def add(self, outcome: Outcome) -> None:
        with self._lock:
            if not self._waiting:
                self._since = time.monotonic()
            self._waiting.append(outcome)

    def pending(self) -> bool:
        return bool(self._waiting)

    def overdue(self) -> bool:
        """Whether the oldest has waited ``OUTCOMES_WAIT``: to be written before the next email."""
        with self._lock:
            return bool(self._waiting) and time.monotonic() - self._since >= OUTCOMES_WAIT

    def take(self) -> list[Outcome]:
        with self._lock:
            taken, self._waiting = self._waiting, []
            return taken

    def give_back(self, outcomes: list[Outcome]) -> None:
        """Outcomes whose statement failed: written with the next one."""
        if not outcomes:
            return
        with self._lock:
            if not self._waiting:
                self._since = time.monotonic()
            self._waiting[:0] = outcomes

    def forget(self) -> None:
        self.take()


def write(outcomes: list[Outcome], worker: str) -> tuple[Statement, dict[str, Any]]:
    """The statement that writes ``outcomes`` of ``worker``'s claims, and its parameters."""
    return WRITE, {
        "o_ids": [o.id for o in outcomes],
        "o_statuses": [o.status for o in outcomes],
        "o_attempts": [o.attempts for o in outcomes],
        "o_errors": [o.error for o in outcomes],
        "o_remaining": [o.remaining for o in outcomes],
        "o_refused": [o.refused for o in outcomes],
        "o_delays": [o.delay for o in outcomes],
        "o_worker": worker,
    }
