"""Slack messages and webhooks in the status views, beside emails, through the real app on
the memory and PostgreSQL outboxes: made by real ``kinto-slack`` and ``kinto-webhooks`` hooks
and delivered to a loopback receiver, listed with their channel and destination, filtered on
them, queued again."""

from standardwebhooks import Webhook

from tests.http_receiver import SECRET, HTTPChannelsMixin, Reply
from tests.support import HookWebTest, per_outbox, record_hook


SLACK = {"kinto-slack": {"hooks": [{"channel": "#ops", "template": "{id}"}]}}
WEBHOOK = {"kinto-webhooks": {"hooks": [{"endpoint": "audit", "resource_name": "record"}]}}


class ChannelStatusScenarios:
    """Mixed into one test class per outbox."""

    def list(self, query=""):
        return self.app.get(f"/buckets/b/emails{query}", headers=self.headers).json["data"]

    def test_emails_slack_messages_and_webhooks_are_listed_with_channel_and_destination(self):
        hooks = {**self.hooked(record_hook()), **SLACK, **WEBHOOK}
        self.create_collection(data=hooks)
        self.posted()
        self.receiver.clear()
        self.create_record()
        assert sorted(r.path for r in self.posted()) == ["/audit", "/ops"]
        listed = {(e["channel"], e["destination"], e["status"], e["hook"]) for e in self.list()}
        assert listed == {
            ("email", None, "sent", "/buckets/b/collections/c#0"),
            # The collection's creation too: the Slack hook has no resource_name.
            ("slack", "#ops", "sent", "/buckets/b/collections/c#slack/0"),
            ("webhook", "audit", "sent", "/buckets/b/collections/c#webhook/0"),
        }
        assert len(self.list("?channel=slack")) == 2
        for record in self.list():
            assert "127.0.0.1" not in str(record) and SECRET not in str(record)
        assert [e["channel"] for e in self.list("?channel=webhook")] == ["webhook"]
        assert sorted(e["channel"] for e in self.list("?in_channel=email,webhook")) == [
            "email",
            "webhook",
        ]
        assert {e["destination"] for e in self.list("?destination=%23ops")} == {"#ops"}

    def test_a_webhook_gone_is_failed_then_queued_again_and_sent_with_the_same_id(self):
        self.create_collection(data=WEBHOOK)
        self.receiver.script(Reply(410, body=b"gone for now"))
        self.create_record()
        assert len(self.posted()) == 1  # A 410 is not retried.
        (failed,) = self.list("?channel=webhook")
        assert (failed["status"], failed["attempts"]) == ("failed", 1)
        assert "HTTP 410" in failed["error"] and "gone for now" in failed["error"]
        self.app.patch_json(
            f"/buckets/b/emails/{failed['id']}",
            {"data": {"status": "queued"}},
            headers=self.headers,
        )
        first, second = self.posted()
        assert first.headers["webhook-id"] == second.headers["webhook-id"]
        assert first.body == second.body
        Webhook(SECRET).verify(second.body, second.headers)
        (sent,) = self.list("?channel=webhook")
        assert (sent["status"], sent["attempts"]) == ("sent", 1)

    def test_a_slack_refusal_is_retried_then_delivered(self):
        self.create_collection(data=SLACK)
        self.posted()
        self.receiver.clear()
        self.receiver.script(Reply(500, body=b"rollup_error"))
        record = self.create_record().json["data"]
        first, second = self.posted()
        assert first.path == second.path == "/ops"
        assert first.json == second.json == {"channel": "#ops", "text": record["id"]}
        sent = [e for e in self.list("?channel=slack") if e["uri"].endswith(record["id"])]
        assert [(e["status"], e["attempts"]) for e in sent] == [("sent", 2)]

    def test_a_503_is_retried_with_the_same_webhook_id_and_body(self):
        self.create_collection(data=WEBHOOK)
        self.receiver.script(Reply(503, {"Retry-After": "0"}, b"busy"))
        self.create_record()
        first, second = self.posted()
        assert first.headers["webhook-id"] == second.headers["webhook-id"]
        assert first.body == second.body
        for request in (first, second):  # Each attempt signed anew, both verify.
            Webhook(SECRET).verify(request.body, request.headers)
        (sent,) = self.list("?channel=webhook")
        assert (sent["status"], sent["attempts"]) == ("sent", 2)


per_outbox(ChannelStatusScenarios, type("Base", (HTTPChannelsMixin, HookWebTest), {}), globals())
