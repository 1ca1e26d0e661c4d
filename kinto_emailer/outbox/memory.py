"""The outbox of one process: emails wait in memory, in bounded per-bucket queues."""

import heapq
import itertools
import threading
import time
from collections import Counter, OrderedDict, deque

from ..drafts import complete
from . import CANCELLED, DROPPED, FAILED, QUEUED, RETRYING, SENDING, SENT, Email, Outbox, Window
from .limits import HourlyLimit, make_room


WINDOW_ORIGIN = ("bucket_id", "collection_id", "uri", "action", "event")
_MIXED = object()  # A window's author when several people made its changes.


class MemoryOutbox(Outbox):
    """Lost when the process ends; what it holds is bounded in count and in bytes."""

    name = "memory"
    windowed = True

    def __init__(self, settings):
        self.settings = settings
        self.hourly = HourlyLimit(settings.max_emails_per_hour)
        self._reset()

    def _reset(self):
        self._condition = threading.Condition()
        self._ready = OrderedDict()  # bucket_id -> deque of emails due now; served in turn.
        self._later = []  # Heap of (due, sequence, email): retries.
        self._sequence = itertools.count()
        self._claimed = set()
        self._bytes = Counter()  # Pending bytes by bucket.
        self._count = Counter()  # Pending emails by bucket.
        self._woken = False
        self._windows = {}  # Hook location -> (closes, the first part, its later parts).
        self._closed = []  # (first part, later parts) of windows closed by a later part.

    def put(self, emails: list[Email]) -> list[tuple[Email, str]]:
        refused = []
        with self._condition:
            for email in emails:
                reason = self.hourly.refuse(email.bucket_id)
                if reason is None:
                    reason = self._make_room(email, refused)
                if reason is not None:
                    email.status, email.error = DROPPED, reason
                    refused.append((email, reason))
                    continue
                self.hourly.count(email.bucket_id)
                email.status = QUEUED
                self._ready.setdefault(email.bucket_id, deque()).append(email)
                self._count[email.bucket_id] += 1
                self._bytes[email.bucket_id] += email.size
            self._woken = True
            self._condition.notify_all()
        return refused

    def _make_room(self, email, refused):
        def evict_newest(bucket_id, reason):
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
        return reason

    def claim(self, limit: int) -> list[Email]:
        claimed = []
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
                email.status = SENDING
                self._claimed.add(email)
        return claimed

    def sent(self, email: Email) -> None:
        with self._condition:
            self._forget(email, SENT)

    def failed(self, email: Email, error: str) -> None:
        with self._condition:
            self._forget(email, FAILED, error)

    def cancel(self, email: Email) -> None:
        with self._condition:
            self._forget(email, CANCELLED)

    def _forget(self, email, status, error=None):
        self._claimed.discard(email)
        email.status, email.error = status, error
        self._count[email.bucket_id] -= 1
        self._bytes[email.bucket_id] -= email.size
        if not self._count[email.bucket_id]:
            del self._count[email.bucket_id], self._bytes[email.bucket_id]
        self._condition.notify_all()

    def retry(self, email: Email, delay: float, error: str) -> None:
        with self._condition:
            self._claimed.discard(email)
            email.status, email.error = RETRYING, error
            due = time.monotonic() + delay
            heapq.heappush(self._later, (due, next(self._sequence), email))
            self._condition.notify_all()

    def release(self, emails: list[Email]) -> None:
        with self._condition:
            for email in emails:
                self._claimed.discard(email)
                email.status = RETRYING if email.attempts else QUEUED
                self._ready.setdefault(email.bucket_id, deque()).appendleft(email)
                self._ready.move_to_end(email.bucket_id, last=False)
            self._condition.notify_all()

    def gather(self, windows: list[Window]) -> None:
        with self._condition:
            now = time.monotonic()
            for window in windows:
                closes, first, parts = self._windows.get(window.location, (now, None, []))
                if closes <= now:
                    if first is not None:  # Closed, not yet sent: this part opens the next.
                        self._closed.append((first, parts))
                    self._windows[window.location] = (now + window.seconds, window, [])
                else:
                    parts.append(window)
            self._woken = True
            self._condition.notify_all()

    def close_windows(self) -> list[tuple[Email, str]]:
        with self._condition:
            now = time.monotonic()
            closed = [key for key, (closes, *_) in self._windows.items() if closes <= now]
            windows = [self._windows.pop(key)[1:] for key in closed] + self._closed
            self._closed = []
        return [refused for w in windows for refused in self.put(_emails_of(*w))]

    def next_window(self) -> float | None:
        with self._condition:
            closes = [closes for closes, *_ in self._windows.values()]
            closes += [0.0] if self._closed else []
        return max(0.0, min(closes) - time.monotonic()) if closes else None

    def hurry(self) -> None:
        with self._condition:
            # Windows close now too: their emails are sent before the process ends.
            self._windows = {k: (0.0, *rest) for k, (_, *rest) in self._windows.items()}
            self._later = [(0.0, sequence, email) for _, sequence, email in self._later]
            heapq.heapify(self._later)
            self._condition.notify_all()

    def abandon(self) -> list[Email]:
        """Everything still waiting, forgotten: this process is ending."""
        with self._condition:
            left = [e for queue in self._ready.values() for e in queue]
            left += [email for *_, email in self._later] + list(self._claimed)
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

    def reset_after_fork(self) -> None:
        # The parent's emails are the parent's to send; its lock may have been held.
        self._reset()
        self.hourly.reset()


def _emails_of(first: Window, parts: list[Window]) -> list[Email]:
    """The emails of a closed window: ``first`` opened it, ``parts`` joined it."""
    lines, count, author = list(first.lines), first.count, first.author
    origin = {name: getattr(first, name) for name in WINDOW_ORIGIN}
    for part in parts:
        lines += part.lines[: max(0, first.max_items - len(lines))]
        count += part.count
        author = author if author == part.author else _MIXED
        for name, value in origin.items():
            if getattr(part, name) != value:
                origin[name] = None
    author = None if author is _MIXED else author
    messages = complete(first.draft, lines, count, author)
    return [Email(message, first.location, **origin) for message in messages]
