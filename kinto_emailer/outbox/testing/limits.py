"""The suite's bounds: queue size and bytes, the hourly limit, and who is dropped."""

from .. import DROPPED
from .base import OutboxTestCase
from .fixtures import email


class LimitsTests(OutboxTestCase):
    """What an outbox refuses, and which bucket pays for it."""

    def test_a_full_queue_drops_from_the_bucket_that_fills_it(self) -> None:
        if not self.outbox.bounded_queue:
            self.skipTest(f"{self.outbox.name} outbox: no queue bounds, its queue is the disk")
        self.outbox = self.make_outbox(queue_size=5)
        assert self.outbox.put([email("busy", subject=f"busy {i}") for i in range(5)]) == []
        # The busy bucket's own email finds no room...
        refused = self.outbox.put([email("busy", subject="busy 5")])
        assert [(e.subject, e.status) for e, _ in refused] == [("busy 5", DROPPED)]
        assert "kinto_emailer.queue_size" in refused[0][1]
        # ...another bucket's takes the place of the busy bucket's newest.
        refused = self.outbox.put([email("quiet", subject="quiet")])
        assert [e.bucket_id for e, _ in refused] == ["busy"]
        claimed = self.outbox.claim(10)
        assert "quiet" in self.subjects(claimed)
        assert len(claimed) == 5

    def test_queue_bytes_bound_what_waits(self) -> None:
        if not self.outbox.bounded_queue:
            self.skipTest(f"{self.outbox.name} outbox: no queue bounds, its queue is the disk")
        small = [email(body="x" * 1500, subject=str(i)) for i in range(4)]
        # Room for three of them.
        self.outbox = self.make_outbox(queue_bytes=3 * small[0].size + small[0].size // 2)
        big = email(body="x" * 6 * 1500)
        refused = self.outbox.put([big])
        assert [e for e, _ in refused] == [big]
        assert "kinto_emailer.queue_bytes" in refused[0][1]
        refused = self.outbox.put(small)
        assert len(refused) == 1
        assert self.outbox.pending() == 3

    def test_the_hourly_limit_counts_per_bucket(self) -> None:
        self.outbox = self.make_outbox(max_emails_per_hour=3)
        refused = self.outbox.put([email("a", subject=str(i)) for i in range(5)])
        assert [e.subject for e, _ in refused] == ["3", "4"]
        assert "kinto_emailer.max_emails_per_hour = 3" in refused[0][1]
        # Sending doesn't give the hour back.
        for claimed in self.outbox.claim(10):
            self.outbox.sent(claimed)
        assert len(self.outbox.put([email("a", subject="5")])) == 1
        assert self.outbox.put([email("b", subject="other bucket")]) == []

    def test_the_queue_bounds_hold_across_processes(self) -> None:
        if not self.shared or not self.outbox.bounded_queue:
            self.skipTest(f"{self.outbox.name} outbox: one process's, or without queue bounds")
        self.outbox = self.make_outbox(queue_size=10)
        other = self.make_outbox(queue_size=10)
        assert self.outbox.put([email("a", subject=f"a{i}") for i in range(4)]) == []
        assert other.put([email("b", subject=f"b{i}") for i in range(4)]) == []
        # The first counted 4 a moment ago; 4 more would pass half: it counts again, sees 8.
        refused = self.outbox.put([email("a", subject=f"a{i}") for i in range(4, 8)])
        assert len(refused) == 2
        assert self.outbox.pending() == 10
        other.close()
