"""The suite's status contract: what the status views list, and what they queue again."""

from .. import CANCELLED, DROPPED, FAILED, QUEUED, SENDING, SENT, StatusUnavailable, refusal
from ..status import FIELDS, QueueRefused, TransitionError
from .base import OutboxTestCase
from .fixtures import email, render


class StatusTests(OutboxTestCase):
    """What an outbox that keeps a status answers ``web/emails.py``."""

    # Queued again from the status views (issue 24).

    def test_queued_again_a_dropped_email_passes_the_hourly_limit_as_a_new_one(self) -> None:
        self.needs_status()
        self.outbox = self.make_outbox(max_emails_per_hour=2)
        ((dropped, _),) = self.outbox.put([email("a", subject=str(i)) for i in range(3)])
        with self.assertRaises(QueueRefused) as refused:
            self.outbox.change("a", dropped.id, QUEUED)
        assert "kinto_emailer.max_emails_per_hour = 2" in str(refused.exception)
        record = self.outbox.email("a", dropped.id)
        assert record is not None and record["status"] == DROPPED
        # The two the hour counts already are not counted again: they may be queued again.
        for claimed in self.outbox.claim(10):
            claimed.attempts = 1
            self.outbox.failed(claimed, "550 no such user")
            again = self.outbox.change("a", claimed.id, QUEUED)
            assert again is not None and again["status"] == QUEUED
        assert self.outbox.pending() == 2
        with self.assertRaises(QueueRefused):
            self.outbox.change("a", dropped.id, QUEUED)

    def test_queued_again_a_dropped_email_needs_room_in_the_queue(self) -> None:
        self.needs_status()
        if not self.outbox.bounded_queue:
            self.skipTest("no queue bounds")
        self.outbox = self.make_outbox(queue_size=2)
        ((dropped, _),) = self.outbox.put([email("a", subject=str(i)) for i in range(3)])
        with self.assertRaises(QueueRefused) as refused:
            self.outbox.change("a", dropped.id, QUEUED)
        assert "kinto_emailer.queue_size = 2" in str(refused.exception)
        assert self.outbox.pending() == 2

    def test_queued_again_an_email_goes_to_those_who_have_not_taken_it(self) -> None:
        self.needs_status()
        to = ["taken@example.com", "grey@example.com", "gone@example.com"]
        self.outbox.put([email(to=to)])
        (claimed,) = self.outbox.claim(10)
        self.outbox.prepare(claimed, render)
        assert claimed.outgoing is not None
        # As the sender leaves it: taken accepted, grey answered 451, gone 550.
        claimed.outgoing.recipients = ["grey@example.com"]
        claimed.refused = [refusal("gone@example.com", 550, "5.1.1 no such user")]
        claimed.attempts = 1
        self.outbox.retry(claimed, 3600, "451 4.3.0 try later")
        record = self.outbox.email("b", claimed.id)
        assert record is not None and record["refused"] == claimed.refused
        self.outbox.change("b", claimed.id, CANCELLED)
        record = self.outbox.change("b", claimed.id, QUEUED)
        assert record is not None
        assert (record["attempts"], record["refused"], record["error"]) == (0, [], None)
        (again,) = self.outbox.claim(10)
        self.outbox.prepare(again, render)
        assert again.outgoing is not None
        assert again.outgoing.recipients == ["grey@example.com", "gone@example.com"]

    def test_sent_to_some_recipients_only_says_who_was_refused(self) -> None:
        self.needs_status()
        self.outbox.put([email(to=["alice@example.com", "gone@example.com"])])
        (claimed,) = self.outbox.claim(10)
        claimed.refused = [refusal("gone@example.com", 550, "5.1.1 no such user")]
        claimed.attempts = 1
        self.outbox.sent(claimed)
        record = self.outbox.email("b", claimed.id)
        assert record is not None and record["status"] == "sent"
        assert record["refused"] == claimed.refused
        assert record["error"] == (
            "refused for some recipients: 550 5.1.1 no such user (1 recipient(s))"
        )

    # The status views (``web/emails.py``): what each outbox that keeps a status answers.

    def test_without_a_status_the_status_views_are_unavailable(self) -> None:
        if self.outbox.keeps_status:
            self.skipTest(f"{self.outbox.name} outbox: keeps a status")
        self.outbox.put([email(subject="one")])
        for ask in (
            lambda: self.records(),
            lambda: self.outbox.email("b", "1"),
            lambda: self.outbox.change("b", "1", CANCELLED),
        ):
            with self.assertRaises(StatusUnavailable):
                ask()

    def test_the_status_views_list_a_bucket_s_emails_only(self) -> None:
        self.needs_status()
        self.outbox.put([email("b", subject="one"), email("b", subject="two"), email("x")])
        records = self.records()
        assert sorted(r["subject"] for r in records) == ["one", "two"]
        assert {r["status"] for r in records} == {QUEUED}
        assert all(set(FIELDS) <= set(r) for r in records)
        assert [r["subject"] for r in self.records("x")] == ["hello"]
        assert self.records("nobody") == []

    def test_the_status_views_filter_on_the_status_and_the_collections(self) -> None:
        self.needs_status()
        self.outbox.put([email(subject="sent", collection_id="c1"), email(subject="waiting")])
        (sent,) = [e for e in self.outbox.claim(10) if e.subject == "sent"]
        self.outbox.sent(sent)
        subjects = lambda **query: sorted(r["subject"] for r in self.records(**query))  # noqa: E731
        assert subjects(filters=[("status", (SENT,))]) == ["sent"]
        assert subjects(filters=[("status", (QUEUED, SENDING, SENT))]) == ["sent", "waiting"]
        assert subjects(filters=[("status", (FAILED,))]) == []
        assert subjects(collection_ids=["c1"]) == ["sent"]
        assert subjects(collection_ids=[]) == []

    def test_the_status_views_page_in_their_order(self) -> None:
        self.needs_status()
        self.outbox.put([email(subject=str(n)) for n in range(5)])
        ids = [r["id"] for r in self.records()]
        assert ids == sorted(ids, key=int, reverse=True)  # Newest first (``DEFAULT_SORT``).
        assert [r["id"] for r in self.records(limit=2, offset=2)] == ids[2:4]
        oldest = self.records(sort=(("id", False),), limit=1)
        assert [r["id"] for r in oldest] == [ids[-1]]

    def test_one_email_s_record_in_its_own_bucket_only(self) -> None:
        self.needs_status()
        self.outbox.put([email(subject="one")])
        (record,) = self.records()
        found = self.outbox.email("b", record["id"])
        assert found is not None and found["subject"] == "one"
        assert self.outbox.email("other", record["id"]) is None
        assert self.outbox.email("b", "999999") is None

    def test_a_waiting_email_is_cancelled_then_queued_again(self) -> None:
        self.needs_status()
        self.outbox.put([email(subject="one")])
        (record,) = self.records()
        cancelled = self.outbox.change("b", record["id"], CANCELLED)
        assert cancelled is not None and cancelled["status"] == CANCELLED
        assert self.outbox.pending() == 0
        assert self.outbox.claim(10) == []
        queued = self.outbox.change("b", record["id"], QUEUED)
        assert queued is not None and queued["status"] == QUEUED
        assert self.subjects(self.outbox.claim(10)) == ["one"]

    def test_a_failed_email_is_queued_again_and_a_sent_one_is_not(self) -> None:
        self.needs_status()
        self.outbox.put([email(subject="failed"), email(subject="sent")])
        for claimed in self.outbox.claim(10):
            claimed.attempts = 1
            if claimed.subject == "sent":
                self.outbox.sent(claimed)
            else:
                self.outbox.failed(claimed, "550 no such user")
        by_subject = {r["subject"]: r for r in self.records()}
        again = self.outbox.change("b", by_subject["failed"]["id"], QUEUED)
        assert again is not None and again["status"] == QUEUED
        for wanted in (QUEUED, CANCELLED, "sending", 1):
            with self.assertRaises(TransitionError):
                self.outbox.change("b", by_subject["sent"]["id"], wanted)  # type: ignore[arg-type]
        record = self.outbox.email("b", by_subject["sent"]["id"])
        assert record is not None and record["status"] == SENT
        assert self.outbox.change("b", "999999", CANCELLED) is None
