"""The suite's claims across processes: two workers, leases renewed and expired."""

import time

from .. import Email
from .base import OutboxTestCase
from .fixtures import email


class ClaimsTests(OutboxTestCase):
    """Two outboxes on one queue (``shared`` backends only)."""

    def test_two_workers_share_the_emails_without_overlap(self) -> None:
        if not self.shared:
            self.skipTest(f"{self.outbox.name} outbox: one process's, no other worker shares it")
        other = self.make_outbox()
        self.outbox.put([email(subject=str(i)) for i in range(10)])
        mine, theirs = self.outbox.claim(6), other.claim(6)
        assert len(mine) == 6 and len(theirs) == 4
        assert not set(self.subjects(mine)) & set(self.subjects(theirs))
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
        # Counted by the worker that sent it: its outcomes may wait for its next statement.
        assert other.pending() == 0
        other.close()
