"""The suite's time-window digests: gathered, closed once, bounded like the queue."""

import threading
import time
from typing import Any

from .. import DROPPED, Email, Outbox
from .base import OutboxTestCase
from .fixtures import email, message_of, window_part


class WindowTests(OutboxTestCase):
    """The parts of a time window, and the one email it becomes."""

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
