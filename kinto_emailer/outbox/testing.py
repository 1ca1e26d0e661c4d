"""The behaviour every outbox shares: one suite, run by each backend's test class.

A backend's test class mixes ``OutboxTests`` in and defines ``make_outbox(**settings)``;
``shared`` says whether two outboxes made that way see the same emails (two processes).
"""

import json
import threading
import time
import unittest
from collections.abc import Iterable
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from pyramid_mailer.message import Message

from ..compose.drafts import mark
from ..smtp import mime
from . import (
    CANCELLED,
    DROPPED,
    FAILED,
    QUEUED,
    RETRYING,
    SENDING,
    SENT,
    Email,
    Outbox,
    StatusUnavailable,
    Window,
    message_to_json,
    refusal,
)
from .status import FIELDS, Query, QueueRefused, TransitionError


if TYPE_CHECKING:  # Mixed into a TestCase by each backend's test class.
    _TestCase = unittest.TestCase
else:
    _TestCase = object


DEFAULTS = {
    "queue_size": 10000,
    "queue_bytes": 0,
    "max_emails_per_hour": 0,
    "outbox_lease": 60.0,
    "outbox_retention_days": 7,
    "queue_poll_interval": 0.05,
}


def outbox_settings(**overrides: Any) -> SimpleNamespace:
    """What an outbox reads of ``EmailerSettings``, with ``overrides``."""
    return SimpleNamespace(**{**DEFAULTS, **overrides})


def email(
    bucket_id: str = "b",
    subject: str = "hello",
    body: str = "text",
    to: str | list[str] = "alice@example.com",
    **fields: Any,
) -> Email:
    message = Message(
        subject=subject,
        sender="kinto@example.com",
        recipients=[to] if isinstance(to, str) else to,
        body=body,
        extra_headers={"Message-ID": f"<{subject}.{time.time_ns()}@kinto-emailer>"},
    )
    fields.setdefault("collection_id", "c")
    return Email(message, location=f"/buckets/{bucket_id}#0", bucket_id=bucket_id, **fields)


def message_of(email: Email) -> Message:
    """The message of an email made in this process, such as a window's."""
    assert email.message is not None
    return email.message


def window_part(
    lines: list[str],
    seconds: int = 1,
    author: str | None = None,
    to: Iterable[str] = ("alice@example.com",),
    location: str = "/buckets/b#0",
    preamble: str = "",
    **draft: Any,
) -> Window:
    """A request's part of the time window of hook ``location``, as ``Digests`` makes it;
    ``preamble``: its body's text before the items."""
    message = Message(
        subject=f"{mark('n', 'count')} changes",
        sender="kinto@example.com",
        recipients=list(to),
        body=preamble + mark("n", "items"),
    )
    draft = {"nonce": "n", "messages": [json.loads(message_to_json(message))], **draft}
    return Window(
        location=location,
        seconds=seconds,
        draft=draft,
        lines=list(lines),
        count=len(lines),
        author=author,
        max_items=draft.pop("max_items", 10),
        bucket_id="b",
        collection_id="c",
    )


def render(message: Message) -> mime.Outgoing:
    return mime.render(message, "kinto@example.com")


class OutboxTests(_TestCase):
    shared = False
    #: Whether claims are leases that end (else they end with their process).
    leased = True

    outbox: Outbox

    def make_outbox(self, **settings: Any) -> Outbox:
        raise NotImplementedError

    def setUp(self) -> None:
        super().setUp()
        self.outbox = self.make_outbox()

    def subjects(self, emails: list[Email]) -> list[str]:
        return [e.subject or "" for e in emails]

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

    def test_two_workers_share_the_emails_without_overlap(self) -> None:
        if not self.shared:
            self.skipTest(f"{self.outbox.name} outbox: one process's, no other worker shares it")
        other = self.make_outbox()
        self.outbox.put([email(subject=str(i)) for i in range(10)])
        mine, theirs = self.outbox.claim(6), other.claim(6)
        assert len(mine) == 6 and len(theirs) == 4
        assert not set(self.subjects(mine)) & set(self.subjects(theirs))
        other.close()

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

    def test_a_renewed_lease_keeps_the_claim(self) -> None:
        if not self.shared or not self.leased:
            self.skipTest(f"{self.outbox.name} outbox: no leases, a claim ends with its process")
        self.outbox = self.make_outbox(outbox_lease=0.5)
        other = self.make_outbox(outbox_lease=0.5)
        self.outbox.put([email(subject="slow")])
        claimed = self.outbox.claim(1)
        for _ in range(4):
            time.sleep(0.25)
            assert self.outbox.renew(claimed[0])
            assert other.claim(1) == []
        other.close()

    def test_an_expired_lease_lets_another_worker_take_over(self) -> None:
        if not self.shared or not self.leased:
            self.skipTest(f"{self.outbox.name} outbox: no leases, a claim ends with its process")
        self.outbox = self.make_outbox(outbox_lease=0.2)
        other = self.make_outbox(outbox_lease=0.2)
        self.outbox.put([email(subject="abandoned")])
        claimed = self.outbox.claim(1)
        assert self.subjects(claimed) == ["abandoned"]
        assert other.claim(1) == []
        deadline = time.monotonic() + 10
        taken: list[Email] = []
        while not taken and time.monotonic() < deadline:
            taken = other.claim(1)
            time.sleep(0.05)
        assert self.subjects(taken) == ["abandoned"]
        # The first worker, late in its burst, finds that it is no longer its own to send.
        assert self.outbox.renew(claimed[0]) is False
        assert other.renew(taken[0]) is True
        # Its failure, late too, leaves the email to the worker that holds it now.
        claimed[0].attempts = 1
        self.outbox.failed(claimed[0], "421 too late")
        assert self.outbox.pending() == 1
        other.sent(taken[0])
        assert self.outbox.pending() == 0
        other.close()

    # Queued again from the status views (issue 24).

    def needs_status(self) -> None:
        if not self.outbox.keeps_status:
            self.skipTest(f"{self.outbox.name} outbox: keeps no status")

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

    # Time-window digests.

    def needs_windows(self) -> None:
        if not self.outbox.windowed:
            self.skipTest(
                f"{self.outbox.name} outbox: no time windows, such hooks are refused at save"
            )

    def closed_windows(
        self, count: int, outbox: Outbox | None = None, timeout: float = 10
    ) -> list[Email]:
        """The emails of ``count`` closed windows, waiting at most ``timeout`` seconds."""
        outbox = outbox or self.outbox
        deadline, emails = time.monotonic() + timeout, list[Email]()
        while len(emails) < count and time.monotonic() < deadline:
            outbox.close_windows()
            emails += outbox.claim(10)
            time.sleep(0.05)
        return emails

    def test_a_window_gathers_every_part_into_one_email_once_it_closes(self) -> None:
        self.needs_windows()
        self.outbox.gather([window_part(["one"], seconds=2)])
        self.outbox.gather([window_part(["two", "three"], seconds=2)])
        # Open: nothing to send, and the worker knows when to look again.
        assert self.outbox.close_windows() == []
        assert self.outbox.claim(10) == []
        next_window = self.outbox.next_window()
        assert next_window is not None and 0 < next_window <= 2
        (closed,) = self.closed_windows(1)
        assert message_of(closed).subject == "3 changes"
        assert message_of(closed).body == "one\ntwo\nthree"
        assert (closed.bucket_id, closed.location) == ("b", "/buckets/b#0")
        assert self.outbox.next_window() is None
        assert self.closed_windows(1, timeout=0.5) == []

    def test_the_worker_wakes_for_the_sooner_of_a_retry_and_a_window(self) -> None:
        self.needs_windows()
        assert self.outbox.next_wake() is None  # Nothing waits: only a wake-up ends the wait.
        self.outbox.gather([window_part(["one"], seconds=60)])
        window = self.outbox.next_wake()
        assert window is not None and 50 < window <= 60
        self.outbox.put([email(subject="retried")])
        (retried,) = self.outbox.claim(10)
        retried.attempts = 1
        self.outbox.retry(retried, 5, "451 try again")
        due = self.outbox.next_wake()
        assert due is not None and 0 < due <= 5

    def test_a_part_after_the_window_closed_opens_the_next_window(self) -> None:
        self.needs_windows()
        self.outbox.gather([window_part(["first"])])
        deadline = time.monotonic() + 10
        while self.outbox.next_window() and time.monotonic() < deadline:
            time.sleep(0.05)
        # Closed, but not yet sent: the late part is not added to it.
        self.outbox.gather([window_part(["late"])])
        emails = self.closed_windows(2)
        assert sorted(message_of(e).body for e in emails) == ["first", "late"]

    def test_a_window_lists_its_first_items_then_how_many_more(self) -> None:
        self.needs_windows()
        self.outbox.gather([window_part(["1", "2"], max_items=3)])
        self.outbox.gather([window_part(["3", "4", "5"], max_items=3)])
        (closed,) = self.closed_windows(1)
        assert message_of(closed).body == "1\n2\n3\nand 2 more"

    def test_notify_author_false_spares_whoever_made_every_change(self) -> None:
        self.needs_windows()
        to = ("alice@example.com", "bob@example.com")
        spare: dict[str, Any] = {"to": to, "notify_author": False}
        self.outbox.gather([window_part(["a"], author="alice@example.com", **spare)])
        self.outbox.gather([window_part(["b"], author="alice@example.com", **spare)])
        (closed,) = self.closed_windows(1)
        assert message_of(closed).recipients == ["bob@example.com"]
        # Bob changed something too: alice hears of it.
        self.outbox.gather([window_part(["a"], author="alice@example.com", **spare)])
        self.outbox.gather([window_part(["b"], author="bob@example.com", **spare)])
        (closed,) = self.closed_windows(1)
        assert message_of(closed).recipients == list(to)

    def test_a_part_that_joins_an_open_window_brings_no_draft(self) -> None:
        self.needs_windows()
        self.outbox.gather([window_part(["one"])])
        later = window_part(["two"])
        later.draft = {"nonce": object()}  # Unusable: any use of it raises.
        assert self.outbox.gather([later]) == []
        (closed,) = self.closed_windows(1)
        assert message_of(closed).body == "one\ntwo"

    def test_open_windows_count_in_queue_bytes(self) -> None:
        self.needs_windows()
        preamble = "x" * 100_000
        size = window_part(["a"], preamble=preamble).open()
        self.outbox = self.make_outbox(queue_bytes=size * 3 // 2)
        # Open for a minute: the changes below all join it, however slow the machine.
        assert self.outbox.gather([window_part(["a"], seconds=60, preamble=preamble)]) == []
        # Joined by many changes, it still holds one draft: another has no room.
        for n in range(100):
            part = window_part([str(n)], seconds=60, preamble=preamble)
            assert self.outbox.gather([part]) == []
        other = window_part(["b"], location="/buckets/b#1", preamble=preamble)
        ((refused, reason),) = self.outbox.gather([other])
        assert refused is other
        assert reason == (
            f"queue full (kinto_emailer.queue_bytes = {size * 3 // 2}): time window not opened"
        )
        # Nor does an email that would pass the bound with it; a small one fits.
        ((email_, _),) = self.outbox.put([email(body=preamble)])
        assert email_.status == DROPPED
        assert self.outbox.put([email(body="small")]) == []

    def test_a_closed_window_gives_its_bytes_back(self) -> None:
        self.needs_windows()
        preamble = "x" * 100_000
        size = window_part(["a"], preamble=preamble).open()
        self.outbox = self.make_outbox(queue_bytes=size * 3 // 2)
        assert self.outbox.gather([window_part(["a"], preamble=preamble)]) == []
        (closed,) = self.closed_windows(1)
        self.outbox.sent(closed)
        # Nothing waits now: a window as large opens again.
        assert self.outbox.gather([window_part(["b"], preamble=preamble)]) == []

    def test_two_workers_send_one_email_per_window(self) -> None:
        self.needs_windows()
        if not self.shared:
            self.skipTest(f"{self.outbox.name} outbox: one process's, no other worker shares it")
        other = self.make_outbox()
        self.outbox.gather([window_part(["mine"])])
        other.gather([window_part(["theirs"])])
        emails: list[Email] = []
        start = threading.Barrier(2)

        def close(outbox: Outbox) -> None:
            start.wait()
            emails.extend(self.closed_windows(1, outbox, timeout=3))

        workers = [threading.Thread(target=close, args=(o,)) for o in (self.outbox, other)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        assert [message_of(e).subject for e in emails] == ["2 changes"]
        assert message_of(emails[0]).body == "mine\ntheirs"
        other.close()

    # The status views (``web/emails.py``): what each outbox that keeps a status answers.

    def records(self, bucket_id: str = "b", **query: Any) -> list[dict[str, Any]]:
        return self.outbox.emails(Query(bucket_id, **query))

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
