"""The behaviour every outbox shares: one suite, run by each backend's test class.

A backend's test class mixes ``OutboxTests`` in and defines ``make_outbox(**settings)``;
``shared`` says whether two outboxes made that way see the same emails (two processes).
"""

import time
from types import SimpleNamespace

from pyramid_mailer.message import Message

from . import DROPPED, QUEUED, RETRYING, SENDING, Email


DEFAULTS = {
    "queue_size": 10000,
    "queue_bytes": 0,
    "max_emails_per_hour": 0,
    "outbox_lease": 60.0,
    "outbox_retention_days": 7,
    "queue_poll_interval": 0.05,
}


def outbox_settings(**overrides):
    return SimpleNamespace(**{**DEFAULTS, **overrides})


def email(bucket_id="b", subject="hello", body="text", to="alice@example.com", **fields):
    message = Message(
        subject=subject,
        sender="kinto@example.com",
        recipients=[to],
        body=body,
        extra_headers={"Message-ID": f"<{subject}.{time.time_ns()}@kinto-emailer>"},
    )
    fields.setdefault("collection_id", "c")
    return Email(message, location=f"/buckets/{bucket_id}#0", bucket_id=bucket_id, **fields)


class OutboxTests:
    shared = False

    def make_outbox(self, **settings):
        raise NotImplementedError

    def setUp(self):
        super().setUp()
        self.outbox = self.make_outbox()

    def subjects(self, emails):
        return [e.message.subject for e in emails]

    def test_put_emails_are_claimed_once_each(self):
        assert self.outbox.put([email(subject="one"), email(subject="two")]) == []
        assert self.outbox.pending() == 2
        claimed = self.outbox.claim(10)
        assert sorted(self.subjects(claimed)) == ["one", "two"]
        assert {e.status for e in claimed} == {SENDING}
        assert self.outbox.claim(10) == []
        assert self.outbox.pending() == 2

    def test_sent_and_failed_emails_are_no_longer_pending(self):
        self.outbox.put([email(subject="one"), email(subject="two")])
        first, second = self.outbox.claim(10)
        self.outbox.sent(first)
        assert self.outbox.pending() == 1
        second.attempts = 1
        self.outbox.failed(second, "550 no such user")
        assert self.outbox.pending() == 0
        assert self.outbox.claim(10) == []

    def test_a_retry_waits_for_its_delay(self):
        self.outbox.put([email(subject="later"), email(subject="now")])
        later, now = sorted(self.outbox.claim(10), key=lambda e: e.message.subject)
        later.attempts = now.attempts = 1
        self.outbox.retry(later, 3600, "451 try again")
        self.outbox.retry(now, 0, "451 try again")
        assert later.status == RETRYING
        again = self.outbox.claim(10)
        assert self.subjects(again) == ["now"]
        assert again[0].attempts == 1
        assert self.outbox.pending() == 2
        assert self.outbox.next_due() is not None

    def test_released_emails_are_claimed_again(self):
        self.outbox.put([email(subject="one")])
        claimed = self.outbox.claim(10)
        self.outbox.release(claimed)
        assert claimed[0].status == QUEUED
        assert self.subjects(self.outbox.claim(10)) == ["one"]

    def test_buckets_are_served_in_turn(self):
        backlog = [email("busy", subject=f"busy {i}") for i in range(20)]
        self.outbox.put(backlog)
        self.outbox.put([email("quiet", subject="quiet")])
        first = self.outbox.claim(2)
        assert sorted(e.bucket_id for e in first) == ["busy", "quiet"]

    def test_a_full_queue_drops_from_the_bucket_that_fills_it(self):
        self.outbox = self.make_outbox(queue_size=5)
        assert self.outbox.put([email("busy", subject=f"busy {i}") for i in range(5)]) == []
        # The busy bucket's own email finds no room...
        refused = self.outbox.put([email("busy", subject="busy 5")])
        assert [(e.message.subject, e.status) for e, _ in refused] == [("busy 5", DROPPED)]
        assert "kinto_emailer.queue_size" in refused[0][1]
        # ...another bucket's takes the place of the busy bucket's newest.
        refused = self.outbox.put([email("quiet", subject="quiet")])
        assert [e.bucket_id for e, _ in refused] == ["busy"]
        claimed = self.outbox.claim(10)
        assert "quiet" in self.subjects(claimed)
        assert len(claimed) == 5

    def test_queue_bytes_bound_what_waits(self):
        self.outbox = self.make_outbox(queue_bytes=5000)
        big = email(body="x" * 6000)
        refused = self.outbox.put([big])
        assert [e for e, _ in refused] == [big]
        assert "kinto_emailer.queue_bytes" in refused[0][1]
        refused = self.outbox.put([email(body="x" * 1500, subject=str(i)) for i in range(4)])
        assert len(refused) == 1
        assert self.outbox.pending() == 3

    def test_the_hourly_limit_counts_per_bucket(self):
        self.outbox = self.make_outbox(max_emails_per_hour=3)
        refused = self.outbox.put([email("a", subject=str(i)) for i in range(5)])
        assert [e.message.subject for e, _ in refused] == ["3", "4"]
        assert "kinto_emailer.max_emails_per_hour = 3" in refused[0][1]
        # Sending doesn't give the hour back.
        for claimed in self.outbox.claim(10):
            self.outbox.sent(claimed)
        assert len(self.outbox.put([email("a", subject="5")])) == 1
        assert self.outbox.put([email("b", subject="other bucket")]) == []

    def test_purge_forgets_ended_emails_after_the_retention_only(self):
        self.outbox = self.make_outbox(outbox_retention_days=1 / 86400)  # One second.
        self.outbox.put([email(subject="sent"), email(subject="waiting")])
        sent = [e for e in self.outbox.claim(10) if e.message.subject == "sent"]
        self.outbox.sent(sent[0])
        time.sleep(1.1)
        self.outbox.purge()
        assert self.outbox.pending() == 1
        assert self.outbox.purge() == 0

    def test_wake_ends_a_wait(self):
        self.outbox.wake()
        assert self.outbox.wait(5) is True

    def test_two_workers_share_the_emails_without_overlap(self):
        if not self.shared:
            self.skipTest("one process's outbox")
        other = self.make_outbox()
        self.outbox.put([email(subject=str(i)) for i in range(10)])
        mine, theirs = self.outbox.claim(6), other.claim(6)
        assert len(mine) == 6 and len(theirs) == 4
        assert not set(self.subjects(mine)) & set(self.subjects(theirs))
        other.close()

    def test_an_expired_lease_lets_another_worker_take_over(self):
        if not self.shared:
            self.skipTest("one process's outbox")
        self.outbox = self.make_outbox(outbox_lease=0.2)
        other = self.make_outbox(outbox_lease=0.2)
        self.outbox.put([email(subject="abandoned")])
        claimed = self.outbox.claim(1)
        assert self.subjects(claimed) == ["abandoned"]
        assert other.claim(1) == []
        deadline = time.monotonic() + 10
        taken = []
        while not taken and time.monotonic() < deadline:
            taken = other.claim(1)
            time.sleep(0.05)
        assert self.subjects(taken) == ["abandoned"]
        # The first worker, late in its burst, finds that it is no longer its own to send.
        assert self.outbox.renew(claimed[0]) is False
        assert other.renew(taken[0]) is True
        other.close()
