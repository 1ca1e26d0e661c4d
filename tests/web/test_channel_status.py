"""Slack messages and webhooks in the status views, beside emails, through the real app on
the memory and PostgreSQL outboxes: listed with their channel and destination, filtered on
them, queued again. They are put in the outbox as the listener would (composing them from
hooks is the other half of issue 21)."""

from unittest import mock

import transaction

from kinto_emailer.config.channels import Channels, Endpoint
from kinto_emailer.outbox.testing import posted
from tests.http_receiver import Receiver, Reply
from tests.support import EmailerWebTest, per_outbox, record_hook


class ChannelStatusScenarios:
    """Mixed into one test class per outbox."""

    @classmethod
    def setUpClass(cls):
        cls.receiver = Receiver()
        channels = Channels(
            slack_urls={"ops": cls.receiver.url("/slack")},
            webhooks={"ops": Endpoint("ops", cls.receiver.url("/webhook"), (b"k" * 24,))},
        )
        with mock.patch("kinto_emailer.config.reading.read_channels", return_value=channels):
            super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        cls.receiver.stop()

    def setUp(self):
        super().setUp()
        self.delivery = self.app.app.registry.emailer.delivery
        self.addCleanup(self.delivery.outbox.flush)
        self.receiver.received.clear()
        self.create_bucket()
        self.create_collection(data=self.hooked(record_hook()))

    def put(self, *items):
        """As the listener does: in a transaction of their own (the request's, on PostgreSQL)."""
        with transaction.manager:
            self.delivery.put(list(items))
        self.drain()

    def list(self, query=""):
        return self.app.get(f"/buckets/b/emails{query}", headers=self.headers).json["data"]

    def test_emails_slack_messages_and_webhooks_are_listed_with_channel_and_destination(self):
        self.create_record()
        self.put(posted("slack"), posted("webhook"))
        assert len(self.receiver.wait_for(2)) == 2
        listed = {(e["channel"], e["destination"], e["status"]) for e in self.list()}
        assert listed == {
            ("email", None, "sent"),
            ("slack", "#ops", "sent"),
            ("webhook", "ops", "sent"),
        }
        for record in self.list():
            assert "127.0.0.1" not in str(record)  # Never a URL.
        assert [e["channel"] for e in self.list("?channel=webhook")] == ["webhook"]
        assert sorted(e["channel"] for e in self.list("?in_channel=slack,webhook")) == [
            "slack",
            "webhook",
        ]
        assert [e["destination"] for e in self.list("?destination=%23ops")] == ["#ops"]

    def test_a_webhook_gone_is_queued_again_and_sent_with_the_same_id(self):
        self.receiver.script(Reply(410, body=b"gone for now"))
        item = posted("webhook")
        self.put(item)
        (failed,) = self.list("?channel=webhook")
        assert failed["status"] == "failed" and "HTTP 410" in failed["error"]
        self.app.patch_json(
            f"/buckets/b/emails/{failed['id']}",
            {"data": {"status": "queued"}},
            headers=self.headers,
        )
        self.drain()
        first, second = self.receiver.wait_for(2)
        assert first.headers["webhook-id"] == second.headers["webhook-id"] == item.payload["id"]
        assert first.body == second.body
        (sent,) = self.list("?channel=webhook")
        assert (sent["status"], sent["attempts"]) == ("sent", 1)


per_outbox(ChannelStatusScenarios, EmailerWebTest, globals())
