"""What the PostgreSQL outbox admits: the tenancy limits (``max_emails_per_hour``,
``queue_size``, ``queue_bytes``) over the rows of every process sharing the database, read
in the writing request's transaction."""

import threading
import time
from collections import Counter
from typing import TYPE_CHECKING

from .. import PENDING, Email
from ..limits import HOUR, Usage, hourly_reason, make_room
from .table import TABLE


if TYPE_CHECKING:
    from ...config import EmailerSettings
    from .cursors import Cursor


#: The SQL list of the statuses of emails that wait: ``('queued', 'sending', 'retrying')``.
PENDING_SQL = "(" + ", ".join(f"'{status}'" for status in PENDING) + ")"
#: Rows the hourly limit counts: emails queued (or queued again) within the hour, but those
#: the limits dropped; not the windows, whose emails are counted when they close.
COUNTED_IN_HOUR = (
    "queued_at > now() - make_interval(secs => %(hour)s) "
    "AND status NOT IN ('dropped', 'collecting', 'closing')"
)
#: What holds bytes of the queue: the emails that wait, and the open time windows.
HOLDING_SQL = (
    "(" + ", ".join(f"'{status}'" for status in (*PENDING, "collecting", "closing")) + ")"
)
#: Seconds a process trusts the outbox's usage it read while far from the queue's bounds.
USAGE_TTL = 1.0
#: The first key of the advisory locks that serialize the hourly count of each bucket.
HOURLY_LOCKS = 0x6B65  # "ke"


class Admission:
    """One per outbox; safe from any thread."""

    def __init__(self, settings: "EmailerSettings"):
        self.settings = settings
        self._lock = threading.Lock()
        self._usage = (float("-inf"), 0, 0)  # When the pending emails were counted, and sums.

    def admit(
        self, cursor: "Cursor", emails: list[Email], hourly: bool = True
    ) -> list[tuple[Email, str]]:
        """The emails refused, with why: the limits, over every process's rows; ``hourly``:
        whether they count in the hour (an email queued again that it counts already not)."""
        settings = self.settings
        refused: list[tuple[Email, str]] = []
        buckets = sorted({email.bucket_id for email in emails}, key=lambda bucket: bucket or "")
        if settings.max_emails_per_hour and hourly:
            # Until commit: concurrent writes to a bucket would each count the rows without
            # the others' (READ COMMITTED), and together pass the limit. Sorted: no deadlock.
            for bucket_id in buckets:
                cursor.execute(
                    "SELECT pg_advisory_xact_lock(%(space)s, hashtext(%(bucket)s))",
                    {"space": HOURLY_LOCKS, "bucket": bucket_id},
                )
            cursor.execute(
                f"SELECT bucket_id, count(*) FROM {TABLE} WHERE bucket_id = ANY(%(buckets)s) "
                f"AND {COUNTED_IN_HOUR} GROUP BY bucket_id",
                {"buckets": buckets, "hour": HOUR},
            )
            sent = Counter(dict(cursor.fetchall()))
            for email in emails:
                if sent[email.bucket_id] >= settings.max_emails_per_hour:
                    refused.append((email, hourly_reason(settings.max_emails_per_hour)))
                else:
                    sent[email.bucket_id] += 1
        if (settings.queue_bytes or settings.queue_size) and not self._far_from_bounds(emails):
            usage = self._read_usage(cursor)
            count: Usage = Counter({bucket: n for bucket, n, _ in usage if n})
            size: Usage = Counter({bucket: int(s) for bucket, _, s in usage})
            already = {id(email) for email, _ in refused}
            for email in emails:
                if id(email) in already:
                    continue
                evict = _Evictor(cursor, count, size)
                reason, victims = make_room(email, count, size, settings, evict)
                if reason is not None:
                    refused.append((email, reason))
                else:
                    count[email.bucket_id] += 1
                    size[email.bucket_id] += email.size
                refused += victims
        for email, reason in refused:
            email.error = reason
        return refused

    def _read_usage(self, cursor: "Cursor") -> list[tuple[str, int, int]]:
        """``(bucket_id, emails waiting, bytes)`` of every bucket; open windows' bytes count."""
        cursor.execute(
            f"SELECT bucket_id, count(*) FILTER (WHERE status IN {PENDING_SQL}), "
            f"coalesce(sum(size), 0) FROM {TABLE} WHERE status IN {HOLDING_SQL} "
            "GROUP BY bucket_id"
        )
        usage = cursor.fetchall()
        with self._lock:
            self._usage = (
                time.monotonic(),
                sum(n for _, n, _ in usage),
                sum(int(s) for *_, s in usage),
            )
        return usage

    def room_for_window(self, cursor: "Cursor", bucket_id: str | None, size: int) -> str | None:
        """Why a window of ``size`` bytes (its draft and lines) can't open; ``None``: it can."""
        queue_bytes = self.settings.queue_bytes
        if not queue_bytes:
            return None
        if size <= queue_bytes and self._far_from_bounds([Email(None, size=size)]):
            return None
        used = sum(int(s) for *_, s in self._read_usage(cursor))
        if used + size <= queue_bytes:
            return None
        return f"queue full (kinto_emailer.queue_bytes = {queue_bytes}): time window not opened"

    def readmit(self, cursor: "Cursor", email: Email, counted: bool) -> str | None:
        """Why ``email``, ended, can't be queued again; ``counted``: whether the hour counts
        it already. ``None``: admitted."""
        refused = self.admit(cursor, [email], hourly=not counted)
        return next((reason for victim, reason in refused if victim is email), None)

    def _far_from_bounds(self, emails: list[Email]) -> bool:
        """Whether the usage this process read lately, plus what it added since, leaves
        ``emails`` under half the queue's bounds: then the bounds can't be reached by the
        writes of other processes within ``USAGE_TTL``, and the read is spared."""
        settings, added = self.settings, sum(email.size for email in emails)
        with self._lock:
            read_at, count, size = self._usage
            if time.monotonic() - read_at > USAGE_TTL:
                return False
            count, size = count + len(emails), size + added
            if count > settings.queue_size / 2 or size > settings.queue_bytes / 2:
                return False
            self._usage = (read_at, count, size)
        return True


class _Evictor:
    """Drops the newest waiting row of a bucket, for ``make_room``."""

    def __init__(self, cursor: "Cursor", count: Usage, size: Usage):
        self.cursor, self.count, self.size = cursor, count, size

    def __call__(self, bucket_id: str | None, reason: str) -> Email | None:
        self.cursor.execute(
            f"UPDATE {TABLE} SET status = 'dropped', error = %(reason)s, "
            "last_modified = clock_timestamp() WHERE id = ("
            f"SELECT id FROM {TABLE} WHERE bucket_id = %(bucket)s AND status = 'queued' "
            "ORDER BY id DESC LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING id, size, hook",
            {"reason": reason, "bucket": bucket_id},
        )
        row = self.cursor.fetchone()
        if row is None:
            return None
        self.count[bucket_id] -= 1
        self.size[bucket_id] -= row[1]
        return Email(None, location=row[2], bucket_id=bucket_id, id=str(row[0]), size=row[1])
