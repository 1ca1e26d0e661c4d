"""The outbox of one process: emails wait in memory, in bounded per-bucket queues; ended
ones are kept a while for the status views."""

import heapq
import itertools
import threading
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from pyramid_mailer.message import Message

from . import (
    CANCELLED,
    DROPPED,
    FAILED,
    QUEUED,
    RETRYING,
    SENDING,
    SENT,
    DraftCompleter,
    Email,
    Window,
    refused_error,
)
from .limits import HourlyLimit, Usage, make_room
from .memory_status import MemoryStatus


if TYPE_CHECKING:
    from kinto.core.storage import StorageBase

    from ..config import EmailerSettings
    from ..smtp.mime import Outgoing


class MemoryOutbox(MemoryStatus):
    """Lost when the process ends; what it holds is bounded in count and in bytes."""

    name = "memory"
    windowed = True
    description = "the memory outbox (kinto_emailer.outbox)"
    sent_through = description

    def __init__(self, settings: "EmailerSettings", drafts: DraftCompleter):
        self.settings = settings
        self.drafts = drafts  # Completes a window's emails when it closes.
        self.hourly = HourlyLimit(settings.max_emails_per_hour)
        self._reset()

    @classmethod
    def from_settings(
        cls,
        settings: "EmailerSettings",
        render: Callable[[Message], "Outgoing"],
        drafts: DraftCompleter,
        storage: "StorageBase | None" = None,
    ) -> "MemoryOutbox":
        return cls(settings, drafts)

    def _reset(self) -> None:
        self._condition = threading.Condition()
        self._clear()

    def _clear(self) -> None:
        # bucket_id -> deque of emails due now; served in turn.
        self._ready: OrderedDict[str | None, deque[Email]] = OrderedDict()
        self._later: list[tuple[float, int, Email]] = []  # Heap of (due, sequence, email).
        self._sequence = itertools.count()
        self._claimed: set[Email] = set()
        self._bytes: Usage = Counter()  # Pending bytes by bucket.
        self._count: Usage = Counter()  # Pending emails by bucket.
        self._pending: dict[str, Email] = {}  # id -> email, while it waits or is sent.
        # id -> email, oldest end first: for the status views.
        self._ended: OrderedDict[str, Email] = OrderedDict()
        self._ended_bytes = 0
        self._woken = False
        # Hook location -> (when it closes, the part that opened it, joined by the others).
        self._windows: dict[str, tuple[float, Window]] = {}
        # Windows closed by a later part, not yet put.
        self._closed: list[Window] = []

    def put(self, emails: list[Email]) -> list[tuple[Email, str]]:
        refused: list[tuple[Email, str]] = []
        with self._condition:
            for email in emails:
                reason = self.hourly.refuse(email.bucket_id)
                if reason is None:
                    reason = self._enqueue(email, refused)
                if reason is not None:
                    self._end(email, DROPPED, reason)
                    refused.append((email, reason))
                    continue
                self.hourly.count(email.bucket_id)
                email.counted_at = time.monotonic()
        return refused

    def _enqueue(self, email: Email, refused: list[tuple[Email, str]]) -> str | None:
        """``None`` once ``email`` waits, else why it can't (the queue is full)."""

        def evict_newest(bucket_id: str | None, reason: str) -> Email | None:
            queue = self._ready.get(bucket_id)
            if not queue:
                return None
            victim = queue.pop()
            if not queue:
                del self._ready[bucket_id]
            self._forget(victim, DROPPED, reason)
            return victim

        reason, victims = make_room(email, self._count, self._bytes, self.settings, evict_newest)
        refused += victims
        if reason is not None:
            return reason
        self._set(email, QUEUED)
        self._pending[email.id] = email
        self._ready.setdefault(email.bucket_id, deque()).append(email)
        self._count[email.bucket_id] += 1
        self._bytes[email.bucket_id] += email.size
        self._woken = True
        self._condition.notify_all()
        return None

    def claim(self, limit: int) -> list[Email]:
        claimed: list[Email] = []
        with self._condition:
            now = time.monotonic()
            while self._later and self._later[0][0] <= now:
                email = heapq.heappop(self._later)[2]
                self._ready.setdefault(email.bucket_id, deque()).append(email)
            while self._ready and len(claimed) < limit:
                bucket_id, queue = next(iter(self._ready.items()))
                claimed.append(queue.popleft())
                # One email per bucket and turn: a backlog never holds another bucket's email.
                self._ready.move_to_end(bucket_id)
                if not queue:
                    del self._ready[bucket_id]
            for email in claimed:
                self._set(email, SENDING)
                self._claimed.add(email)
        return claimed

    def sent(self, email: Email) -> None:
        with self._condition:
            self._forget(email, SENT, refused_error(email.refused))

    def failed(self, email: Email, error: str) -> None:
        with self._condition:
            self._forget(email, FAILED, error)

    def cancelled(self, email: Email, reason: str) -> None:
        with self._condition:
            self._forget(email, CANCELLED, reason)

    def retry(self, email: Email, delay: float, error: str) -> None:
        with self._condition:
            self._claimed.discard(email)
            self._set(email, RETRYING, error)
            due = time.monotonic() + delay
            heapq.heappush(self._later, (due, next(self._sequence), email))
            self._condition.notify_all()

    def release(self, emails: list[Email]) -> None:
        with self._condition:
            for email in emails:
                self._claimed.discard(email)
                self._set(email, RETRYING if email.attempts else QUEUED, email.error)
                self._ready.setdefault(email.bucket_id, deque()).appendleft(email)
                self._ready.move_to_end(email.bucket_id, last=False)
            self._condition.notify_all()

    def _set(self, email: Email, status: str, error: str | None = None) -> None:
        email.status, email.error, email.last_modified = status, error, time.time()
        if status == SENT:
            email.sent = email.last_modified

    def _forget(self, email: Email, status: str, error: str | None = None) -> None:
        """``email`` stops waiting: sent, given up, cancelled or dropped."""
        self._claimed.discard(email)
        del self._pending[email.id]
        self._count[email.bucket_id] -= 1
        self._bytes[email.bucket_id] -= email.size
        self._drop_empty(email.bucket_id)
        self._end(email, status, error)

    def _drop_empty(self, bucket_id: str | None) -> None:
        # The bytes of a bucket count its open windows too: it may hold bytes and no email.
        if not self._count[bucket_id]:
            del self._count[bucket_id]
        if not self._bytes[bucket_id]:
            del self._bytes[bucket_id]

    def _end(self, email: Email, status: str, error: str | None = None) -> None:
        self._set(email, status, error)
        self._ended[email.id] = email
        self._ended_bytes += email.size
        # Kept for the status views within the queue's own bounds: the oldest go first.
        settings = self.settings
        bytes_bound = settings.queue_bytes or float("inf")  # 0: no bound, as in ``queue_full``.
        while len(self._ended) > settings.queue_size or self._ended_bytes > bytes_bound:
            _, oldest = self._ended.popitem(last=False)
            self._ended_bytes -= oldest.size
        self._condition.notify_all()

    def hurry(self) -> None:
        with self._condition:
            # Windows close now too: their emails are sent before the process ends.
            self._windows = {key: (0.0, window) for key, (_, window) in self._windows.items()}
            self._later = [(0.0, sequence, email) for _, sequence, email in self._later]
            heapq.heapify(self._later)
            self._condition.notify_all()

    def abandon(self) -> list[Email]:
        """Everything still waiting, forgotten: this process is ending."""
        with self._condition:
            left = list(self._pending.values())
            for email in left:
                self._forget(email, DROPPED, "not delivered at shutdown")
            self._ready.clear()
            self._later.clear()
        return left

    def pending(self) -> int:
        with self._condition:
            return sum(self._count.values())

    def next_due(self) -> float | None:
        with self._condition:
            if self._ready:
                return 0.0
            if self._later:
                return max(0.0, self._later[0][0] - time.monotonic())
        return None

    def wait(self, timeout: float | None) -> bool:
        with self._condition:
            if not self._woken:
                self._condition.wait(timeout)
            woken, self._woken = self._woken, False
            return woken

    def wake(self) -> None:
        with self._condition:
            self._woken = True
            self._condition.notify_all()

    def wait_idle(self, timeout: float | None) -> bool:
        """Wait until nothing is pending; False when ``timeout`` seconds passed first."""
        with self._condition:
            return self._condition.wait_for(lambda: not self._count, timeout)

    def purge(self) -> int:
        horizon = time.time() - self.settings.outbox_retention_days * 86400
        with self._condition:
            old = [email for email in self._ended.values() if email.last_modified < horizon]
            for email in old:
                del self._ended[email.id]
                self._ended_bytes -= email.size
        return len(old)

    def flush(self) -> None:
        with self._condition:
            self._clear()  # The worker waits on this condition: it stays.
            self._condition.notify_all()
        self.hourly.reset()

    def reset_after_fork(self) -> None:
        # The parent's emails are the parent's to send; its lock may have been held.
        self._reset()
        self.hourly.reset()
