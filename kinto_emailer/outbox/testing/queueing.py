"""The suite's queue: emails put, claimed once, sent, failed, retried, released, purged."""

import time

from .. import QUEUED, RETRYING, SENDING
from .base import OutboxTestCase
from .fixtures import email


class QueueingTests(OutboxTestCase):
    """One outbox's queue, from put to purge."""

    def test_put_emails_are_claimed_once_each(self) -> None:
        assert self.outbox.put([email(subject="one"), email(subject="two")]) == []
        assert self.outbox.pending() == 2
        claimed = self.outbox.claim(10)
        assert sorted(self.subjects(claimed)) == ["one", "two"]
        assert {e.status for e in claimed} == {SENDING}
        assert self.outbox.claim(10) == []
        assert self.outbox.pending() == 2

    def test_sent_and_failed_emails_are_no_longer_pending(self) -> None:
        self.outbox.put([email(subject="one"), email(subject="two")])
        first, second = self.outbox.claim(10)
        self.outbox.sent(first)
        assert self.outbox.pending() == 1
        second.attempts = 1
        self.outbox.failed(second, "550 no such user")
        assert self.outbox.pending() == 0
        assert self.outbox.claim(10) == []

    def test_a_retry_waits_for_its_delay(self) -> None:
        self.outbox.put([email(subject="later"), email(subject="now")])
        later, now = sorted(self.outbox.claim(10), key=lambda e: e.subject or "")
        later.attempts = now.attempts = 1
        self.outbox.retry(later, 3600, "451 try again")
        self.outbox.retry(now, 0, "451 try again")
        assert later.status == RETRYING
        again = self.outbox.claim(10)
        assert self.subjects(again) == ["now"]
        assert again[0].attempts == 1
        assert self.outbox.pending() == 2
        assert self.outbox.next_due() is not None

    def test_released_emails_are_claimed_again(self) -> None:
        self.outbox.put([email(subject="one")])
        claimed = self.outbox.claim(10)
        self.outbox.release(claimed)
        assert claimed[0].status == QUEUED
        assert self.subjects(self.outbox.claim(10)) == ["one"]

    def test_buckets_are_served_in_turn(self) -> None:
        if not self.outbox.bounded_queue:
            self.skipTest(f"{self.outbox.name} outbox: files wait in the order they were written")
        backlog = [email("busy", subject=f"busy {i}") for i in range(20)]
        self.outbox.put(backlog)
        self.outbox.put([email("quiet", subject="quiet")])
        first = self.outbox.claim(2)
        assert sorted(str(e.bucket_id) for e in first) == ["busy", "quiet"]

    def test_purge_forgets_ended_emails_after_the_retention_only(self) -> None:
        self.outbox = self.make_outbox(outbox_retention_days=1 / 86400)  # One second.
        self.outbox.put([email(subject="sent"), email(subject="waiting")])
        sent = [e for e in self.outbox.claim(10) if e.subject == "sent"]
        self.outbox.sent(sent[0])
        time.sleep(1.1)
        self.outbox.purge()
        assert self.outbox.pending() == 1
        assert self.outbox.purge() == 0

    def test_wake_ends_a_wait(self) -> None:
        self.outbox.wake()
        assert self.outbox.wait(5) is True
