"""What every part of the shared outbox suite stands on: the outbox under test, and the
skips of what a backend does not support."""

import time
import unittest
from typing import TYPE_CHECKING, Any

from .. import Email, Outbox
from ..status import Query


if TYPE_CHECKING:  # Mixed into a TestCase by each backend's test class.
    _TestCase = unittest.TestCase
else:
    _TestCase = object


class OutboxTestCase(_TestCase):
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

    def needs_status(self) -> None:
        if not self.outbox.keeps_status:
            self.skipTest(f"{self.outbox.name} outbox: keeps no status")

    def needs_channels(self) -> None:
        if not {"slack", "webhook"} <= self.outbox.channels:
            self.skipTest(
                f"{self.outbox.name} outbox: emails only, other hooks are refused at save"
            )

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

    def records(self, bucket_id: str = "b", **query: Any) -> list[dict[str, Any]]:
        return self.outbox.emails(Query(bucket_id, **query))
