"""What the status views read and change in the memory outbox: the emails that wait or are
sent, and the ended ones it keeps; cancelled, or queued again within the limits."""

import heapq
import threading
import time
from collections import OrderedDict, deque
from typing import TYPE_CHECKING, Any

from . import CANCELLED, Email
from . import status as status_views
from .limits import HOUR, HourlyLimit
from .memory_windows import MemoryWindows


if TYPE_CHECKING:
    from .status import Query


class MemoryStatus(MemoryWindows):
    """The status views' part of ``MemoryOutbox``, under its condition."""

    hourly: HourlyLimit
    _condition: threading.Condition
    _pending: dict[str, Email]
    _ended: "OrderedDict[str, Email]"
    _ended_bytes: int
    _ready: "OrderedDict[str | None, deque[Email]]"
    _later: list[tuple[float, int, Email]]

    def _enqueue(self, email: Email, refused: list[tuple[Email, str]]) -> str | None:
        raise NotImplementedError

    def _forget(self, email: Email, status: str, error: str | None = None) -> None:
        raise NotImplementedError

    def emails(self, query: "Query") -> list[dict[str, Any]]:
        with self._condition:
            every = [*self._pending.values(), *self._ended.values()]
            records = [status_views.describe(email) for email in every]
        return status_views.select(records, query)

    def _find(self, bucket_id: str, email_id: str) -> Email | None:
        email = self._pending.get(email_id) or self._ended.get(email_id)
        return email if email is not None and email.bucket_id == bucket_id else None

    def email(self, bucket_id: str, email_id: str) -> dict[str, Any] | None:
        with self._condition:
            email = self._find(bucket_id, email_id)
            return None if email is None else status_views.describe(email)

    def change(self, bucket_id: str, email_id: str, status: str) -> dict[str, Any] | None:
        with self._condition:
            email = self._find(bucket_id, email_id)
            if email is None:
                return None
            status_views.check_transition(email.status, status)
            if status == CANCELLED:
                self._unqueue(email)
                self._forget(email, CANCELLED)
            else:
                self._requeue(email)
            return status_views.describe(email)

    def _requeue(self, email: Email) -> None:
        """``email`` waits again if the limits admit it, as a new one; see ``change``."""
        now = time.monotonic()
        counted = email.counted_at is not None and now - email.counted_at < HOUR
        reason = None if counted else self.hourly.refuse(email.bucket_id)
        if reason is None:
            reason = self._enqueue(email, [])
        if reason is not None:
            raise status_views.QueueRefused(reason)
        if not counted:
            self.hourly.count(email.bucket_id)
            email.counted_at = now
        # Making room may already have pushed it out of the ended ones.
        if self._ended.pop(email.id, None) is not None:
            self._ended_bytes -= email.size
        if email.outgoing is not None:
            # Rendered: it names those still to try; those who took it get no second copy.
            still = list(email.outgoing.recipients)
            still += [r["address"] for r in email.refused if r["address"] not in still]
            email.outgoing.recipients = still
        email.attempts, email.refused = 0, []

    def _unqueue(self, email: Email) -> None:
        queue = self._ready.get(email.bucket_id)
        if queue is not None and email in queue:
            queue.remove(email)
            if not queue:
                del self._ready[email.bucket_id]
            return
        self._later = [entry for entry in self._later if entry[2] is not email]
        heapq.heapify(self._later)
