"""The limits that keep one bucket from starving the others, shared by the outboxes."""

import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from typing import TYPE_CHECKING


if TYPE_CHECKING:
    from ..config import EmailerSettings
    from . import Email

#: Pending emails, or bytes, by bucket.
Usage = Counter[str | None]


HOUR = 3600.0


class HourlyLimit:
    """``kinto_emailer.max_emails_per_hour`` per bucket, over a sliding hour, in this process."""

    def __init__(self, limit: int):
        self.limit = limit
        self.reset()

    def reset(self) -> None:
        self._lock = threading.Lock()
        # bucket_id -> deque of monotonic times, at most ``limit`` long.
        self._times: dict[str | None, deque[float]] = {}

    def refuse(self, bucket_id: str | None) -> str | None:
        """Why one more email for ``bucket_id`` is refused, or ``None``."""
        if not self.limit:
            return None
        with self._lock:
            times = self._times.get(bucket_id)
            if times is None:
                return None
            horizon = time.monotonic() - HOUR
            while times and times[0] <= horizon:
                times.popleft()
            if len(times) < self.limit:
                return None
        return hourly_reason(self.limit)

    def count(self, bucket_id: str | None) -> None:
        if self.limit:
            with self._lock:
                times = self._times.setdefault(bucket_id, deque(maxlen=self.limit))
                times.append(time.monotonic())


def hourly_reason(limit: int) -> str:
    return f"hourly limit of the bucket reached (kinto_emailer.max_emails_per_hour = {limit})"


def queue_full(
    email: "Email", count: Usage, size: Usage, settings: "EmailerSettings"
) -> tuple[Usage, str] | None:
    """``(usage by bucket, reason)`` of the first limit that ``email`` would exceed."""
    if settings.queue_size and sum(count.values()) + 1 > settings.queue_size:
        return count, f"queue full (kinto_emailer.queue_size = {settings.queue_size})"
    if settings.queue_bytes and sum(size.values()) + email.size > settings.queue_bytes:
        return size, f"queue full (kinto_emailer.queue_bytes = {settings.queue_bytes})"
    return None


def make_room(
    email: "Email",
    count: Usage,
    size: Usage,
    settings: "EmailerSettings",
    evict_newest: Callable[[str | None, str], "Email | None"],
) -> tuple[str | None, list[tuple["Email", str]]]:
    """``(reason, victims)``: why ``email`` can't be queued (``None`` once it fits), and the
    emails dropped to make room, with why.

    The bucket that fills the queue gives way: while the queue is full and another bucket
    holds more than the email's own, that bucket loses its newest waiting email:
    ``evict_newest(bucket_id, reason)`` drops it, updating ``count`` and ``size`` (pending
    emails and bytes by bucket), and returns it, or ``None`` when there is none.
    """
    if settings.queue_bytes and email.size > settings.queue_bytes:
        return f"larger than the queue (kinto_emailer.queue_bytes = {settings.queue_bytes})", []
    victims: list[tuple[Email, str]] = []
    while (full := queue_full(email, count, size, settings)) is not None:
        usage, reason = full
        biggest = max(usage, key=lambda bucket: usage[bucket], default=None)
        if biggest is None or usage[email.bucket_id] >= usage[biggest]:
            return reason, victims
        why = f"{reason}, to make room for another bucket's email"
        victim = evict_newest(biggest, why)
        if victim is None:
            return reason, victims
        victims.append((victim, why))
    return None, victims
