"""The limits of a bucket count its Slack messages and webhooks as they count emails, through
the real app and outbox, on memory and PostgreSQL: the hourly limit, and the request's bytes
(an item is sized from its payload, the JSON that is posted)."""

import uuid

from standardwebhooks import Webhook

from tests.http_receiver import SECRET, HTTPChannelsMixin
from tests.support import EmailerWebTest, per_outbox, record_hook


HOURLY = 3
REQUEST_BYTES = 25000
TEXT = "x" * 10000  # A payload of about 10 kB: two fit in a request, not three.


def dropped_lines(logs):
    return [line for line in logs.output if " dropped: " in line]


class ChannelLimits:
    @classmethod
    def extra_settings(cls):
        return {
            **super().extra_settings(),
            "kinto_emailer.max_emails_per_hour": str(HOURLY),
            "kinto_emailer.max_request_bytes": str(REQUEST_BYTES),
        }

    def hooked_bucket(self, metadata):
        bucket_id = f"t-{uuid.uuid4().hex[:10]}"
        self.app.put_json(f"/buckets/{bucket_id}", {"data": {}}, headers=self.headers)
        self.app.put_json(
            f"/buckets/{bucket_id}/collections/c", {"data": metadata}, headers=self.headers
        )
        return bucket_id

    def write(self, bucket_id, text="x"):
        path = f"/buckets/{bucket_id}/collections/c/records"
        self.app.post_json(path, {"data": {"text": text}}, headers=self.headers, status=201)

    def test_the_hourly_limit_counts_emails_slack_messages_and_webhooks_together(self):
        busy = self.hooked_bucket(
            {
                **self.hooked(record_hook("busy")),
                "kinto-slack": {
                    "hooks": [{"channel": "#ops", "template": "{id}", "resource_name": "record"}]
                },
                "kinto-webhooks": {"hooks": [{"endpoint": "audit", "resource_name": "record"}]},
            }
        )
        with self.assertLogs("kinto_emailer.outcomes", "ERROR") as logs:
            self.write(busy)  # An email, a Slack message and a webhook: the hour's three.
            self.write(busy)  # None of the three.
        assert sorted(r.path for r in self.posted()) == ["/audit", "/ops"]
        self.emails(1)
        dropped = dropped_lines(logs)
        assert len(dropped) == 3, logs.output
        reason = f"kinto_emailer.max_emails_per_hour = {HOURLY}"
        assert all(reason in line for line in dropped)
        kinds = sorted(line.split(":", 2)[2].split(" dropped: ")[0] for line in dropped)
        assert kinds == ["Email", "Slack message", "Webhook"]

    def test_a_request_s_bytes_count_slack_and_webhook_payloads(self):
        slack = {"channel": "#ops", "template": "{new[text]}", "resource_name": "record"}
        webhook = {"endpoint": "audit", "resource_name": "record"}
        bucket_id = self.hooked_bucket(
            {"kinto-slack": {"hooks": [slack]}, "kinto-webhooks": {"hooks": [webhook, webhook]}}
        )
        with self.assertLogs("kinto_emailer.outcomes", "ERROR") as logs:
            self.write(bucket_id, text=TEXT)
        posted = self.posted()
        # The Slack message and the first webhook fit (10 kB each); the second does not.
        assert sorted(r.path for r in posted) == ["/audit", "/ops"]
        by_path = {r.path: r for r in posted}
        assert by_path["/ops"].json["text"] == TEXT
        body = Webhook(SECRET).verify(by_path["/audit"].body, by_path["/audit"].headers)
        assert body["data"]["new"]["text"] == TEXT
        (dropped,) = dropped_lines(logs)
        assert dropped.split(":", 2)[2].startswith("Webhook dropped: ")
        assert f"hook=/buckets/{bucket_id}/collections/c#webhook/1 " in dropped
        assert f"request too large (kinto_emailer.max_request_bytes = {REQUEST_BYTES})" in dropped

    def test_a_payload_smaller_than_the_request_s_bytes_is_not_dropped(self):
        webhook = {"endpoint": "audit", "resource_name": "record"}
        bucket_id = self.hooked_bucket({"kinto-webhooks": {"hooks": [webhook] * 2}})
        self.write(bucket_id, text="x" * 100)
        assert len(self.posted()) == 2


per_outbox(ChannelLimits, type("Base", (HTTPChannelsMixin, EmailerWebTest), {}), globals())
