"""The suite's Slack messages and webhooks: kept with their channel, destination and payload,
counted by the limits, and listed, cancelled and queued again by the status views."""

from .. import CANCELLED, QUEUED, SENT, payload_size
from ..status import FIELDS
from .base import OutboxTestCase
from .fixtures import email, posted


class ChannelsTests(OutboxTestCase):
    """What an outbox that holds every channel keeps of a Slack message or a webhook."""

    def test_a_posted_item_is_claimed_with_its_channel_destination_and_payload(self) -> None:
        self.needs_channels()
        slack, webhook = posted("slack"), posted("webhook")
        self.outbox.put([slack, webhook])
        claimed = {e.channel: e for e in self.outbox.claim(10)}
        assert set(claimed) == {"slack", "webhook"}
        for item in (slack, webhook):
            again = claimed[item.channel]
            assert (again.destination, again.payload) == (item.destination, item.payload)
            assert again.message is None and again.recipients == []
            assert again.size == item.size == payload_size(item.payload or {})
        # The keys keep their order: every attempt of a webhook signs the same bytes.
        assert list((claimed["webhook"].payload or {})["body"]) == ["type", "timestamp", "data"]

    def test_the_byte_limit_counts_a_posted_item(self) -> None:
        self.needs_channels()
        if not self.outbox.bounded_queue:
            self.skipTest(f"{self.outbox.name} outbox: no queue bounds")
        small = posted(text="x" * 1000)
        self.outbox = self.make_outbox(queue_bytes=small.size + small.size // 2)
        assert self.outbox.put([small]) == []
        big = posted(text="x" * 5000)
        ((refused, reason),) = self.outbox.put([big])
        assert refused is big and "kinto_emailer.queue_bytes" in reason

    def test_the_status_views_list_every_channel_with_its_destination(self) -> None:
        self.needs_status()
        self.needs_channels()
        self.outbox.put([email(subject="mail"), posted("slack"), posted("webhook")])
        records = self.records()
        assert all(set(FIELDS) <= set(r) for r in records)
        shown = {(r["channel"], r["destination"], r["subject"]) for r in records}
        assert shown == {
            ("email", None, "mail"),
            ("slack", "#ops", None),
            ("webhook", "ops", None),
        }
        (hook,) = self.records(filters=[("channel", ("webhook",))])
        assert (hook["recipients_count"], hook["recipients"], hook["refused"]) == (0, [], [])
        found = self.outbox.email("b", hook["id"])
        assert found is not None and found["destination"] == "ops"
        assert len(self.records(filters=[("channel", ("slack", "email"))])) == 2
        assert [r["destination"] for r in self.records(filters=[("destination", ("#ops",))])] == [
            "#ops"
        ]

    def test_a_webhook_is_cancelled_then_queued_again_with_the_same_id(self) -> None:
        self.needs_status()
        self.needs_channels()
        item = posted("webhook")
        self.outbox.put([item])
        (claimed,) = self.outbox.claim(10)
        claimed.attempts = 1
        self.outbox.retry(claimed, 3600, "HTTP 503 Service Unavailable")
        cancelled = self.outbox.change("b", claimed.id, CANCELLED)
        assert cancelled is not None and cancelled["status"] == CANCELLED
        queued = self.outbox.change("b", claimed.id, QUEUED)
        assert queued is not None and (queued["status"], queued["attempts"]) == (QUEUED, 0)
        (again,) = self.outbox.claim(10)
        assert again.payload == item.payload  # Its webhook-id: receivers see a retry.
        again.attempts = 1
        self.outbox.sent(again)
        record = self.outbox.email("b", again.id)
        assert record is not None and record["status"] == SENT and record["sent"] is not None
