"""Slack and webhook hooks, from a change to what a loopback receiver gets and what the status
views say, through the real Kinto app and outbox: the same filters, placeholders and
transaction as emails."""

import datetime

import transaction
from standardwebhooks import Webhook

from tests.http_receiver import SECRET, HTTPChannelsMixin
from tests.support import HookWebTest, per_outbox, record_hook
from tests.test_review import SOURCE, ReviewWebTest


def slack(**fields):
    """A Slack hook on records, to #ops."""
    return {"channel": "#ops", "template": "{action} {id}", "resource_name": "record", **fields}


def webhook(**fields):
    """A webhook hook on records, to the endpoint ``audit``."""
    return {"endpoint": "audit", "resource_name": "record", **fields}


def texts(posted):
    return [request.json["text"] for request in posted]


def metadata(slack_hooks=(), webhook_hooks=()):
    found = {}
    if slack_hooks:
        found["kinto-slack"] = {"hooks": list(slack_hooks)}
    if webhook_hooks:
        found["kinto-webhooks"] = {"hooks": list(webhook_hooks)}
    return found


class ListedMixin:
    def listed(self, channel, bucket_id="b"):
        """The status views' records of ``channel``."""
        url = f"/buckets/{bucket_id}/emails?channel={channel}"
        return self.app.get(url, headers=self.headers).json["data"]


class SlackTest(ListedMixin, HTTPChannelsMixin, HookWebTest):
    def test_a_record_change_posts_one_slack_message_to_its_channel_s_url(self):
        template = "{user_id} {action}d {resource_name} {id} in {bucket_id}/{collection_id}"
        self.create_collection(data=metadata([slack(template=template + ": {new[title]}")]))
        record = self.create_record(data={"title": "Hello"}).json["data"]
        user_id = self.app.get("/", headers=self.headers).json["user"]["id"]
        [request] = self.posted()
        assert request.path == "/ops"  # Its channel's URL, not the default.
        text = f"{user_id} created record {record['id']} in b/c: Hello"
        assert request.json == {"channel": "#ops", "text": text}
        assert request.headers["Content-Type"] == "application/json"
        [listed] = self.listed("slack")
        uri = f"/buckets/b/collections/c/records/{record['id']}"
        assert {k: listed[k] for k in ("destination", "status", "hook", "uri", "action")} == {
            "destination": "#ops",
            "status": "sent",
            "hook": "/buckets/b/collections/c#slack/0",
            "uri": uri,
            "action": "create",
        }
        assert (listed["bucket_id"], listed["collection_id"]) == ("b", "c")
        assert listed["event"] == "kinto.core.events.AfterResourceChanged"

    def test_a_channel_without_a_url_of_its_own_is_posted_to_the_default(self):
        self.create_collection(data=metadata([slack(channel="#General-News")]))
        self.create_record()
        [request] = self.posted()
        assert (request.path, request.json["channel"]) == ("/default", "#General-News")

    def test_placeholder_values_are_escaped_for_slack_and_the_template_is_not(self):
        self.create_collection(data=metadata([slack(template="<{uri}|{new[title]}> &")]))
        record = self.create_record(data={"title": "<!channel> & <https://x|bank>"}).json["data"]
        uri = f"/buckets/b/collections/c/records/{record['id']}"
        assert texts(self.posted()) == [f"<{uri}|&lt;!channel&gt; &amp; &lt;https://x|bank&gt;> &"]

    def test_filters_and_patterns_choose_as_for_emails(self):
        hooks = [
            slack(resource_name="collection"),
            slack(action="^(create|delete)$", template="first"),
            slack(channel="#general", record_id="^nope", template="never"),
        ]
        self.create_collection(data=metadata(hooks))
        assert len(self.posted()) == 1  # The collection's creation.
        self.receiver.clear()
        self.create_record()
        assert texts(self.posted()) == ["first"]
        on_records = [e["hook"] for e in self.listed("slack") if "/records/" in e["uri"]]
        assert on_records == ["/buckets/b/collections/c#slack/1"]

    def test_each_key_falls_back_on_the_bucket_on_its_own(self):
        # The collection has email hooks only: the bucket's Slack hooks apply to it.
        bucket_hooks = {**self.hooked(), **metadata([slack(template="from the bucket")])}
        self.app.patch_json("/buckets/b", {"data": bucket_hooks}, headers=self.headers)
        self.create_collection(data=self.hooked(record_hook()))
        self.create_record()
        assert texts(self.posted()) == ["from the bucket"]
        assert [e["hook"] for e in self.listed("slack")] == ["/buckets/b#slack/0"]
        self.emails(1)  # And the collection's email.

    def test_a_digest_posts_one_message_per_request_with_its_items(self):
        hook = slack(digest=True, template="{count} changes", item_template="<{id}> {new[t]}")
        self.create_collection(data=metadata([hook]))
        body = {
            "defaults": {"method": "PUT"},
            "requests": [
                {"path": f"/buckets/b/collections/c/records/r{n}", "body": {"data": {"t": "<b>"}}}
                for n in (1, 2)
            ],
        }
        self.app.post_json("/batch", body, headers=self.headers)
        assert texts(self.posted()) == ["2 changes\n\n<r1> &lt;b&gt;\n<r2> &lt;b&gt;"]
        assert [e["hook"] for e in self.listed("slack")] == ["/buckets/b/collections/c#slack/0"]


class WebhookTest(ListedMixin, HTTPChannelsMixin, HookWebTest):
    def test_a_record_change_posts_a_signed_webhook_whose_body_describes_it(self):
        self.create_collection(data=metadata(webhook_hooks=[webhook()]))
        record = self.create_record(data={"title": "Hello"}).json["data"]
        user_id = self.app.get("/", headers=self.headers).json["user"]["id"]
        [request] = self.posted()
        assert request.path == "/audit"
        assert request.headers["Content-Type"] == "application/json"
        webhook_id = request.headers["webhook-id"]
        assert webhook_id.startswith("msg_") and "." not in webhook_id
        # As a receiver checks it, with the spec's reference library.
        body = Webhook(SECRET).verify(request.body, request.headers)
        assert set(body) == {"type", "timestamp", "data"}
        assert body["type"] == "kinto.record.create"
        moment = datetime.datetime.fromtimestamp(
            record["last_modified"] / 1000, datetime.timezone.utc
        )
        assert body["timestamp"] == moment.isoformat(timespec="milliseconds")[:-6] + "Z"
        uri = f"/buckets/b/collections/c/records/{record['id']}"
        assert body["data"] == {
            "bucket_id": "b",
            "collection_id": "c",
            "id": record["id"],
            "uri": uri,
            "action": "create",
            "resource_name": "record",
            "user_id": user_id,
            "timestamp": record["last_modified"],
            "new": record,
            "old": {},
            "event": "kinto.core.events.AfterResourceChanged",
        }
        [listed] = self.listed("webhook")
        assert (listed["destination"], listed["status"]) == ("audit", "sent")
        assert listed["hook"] == "/buckets/b/collections/c#webhook/0"
        assert "127.0.0.1" not in str(listed) and SECRET not in str(listed)

    def test_a_deletion_carries_the_tombstone_and_the_old_record(self):
        self.create_collection(data=metadata(webhook_hooks=[webhook(action="delete")]))
        record = self.create_record(data={"title": "Gone"}).json["data"]
        self.app.delete(f"/buckets/b/collections/c/records/{record['id']}", headers=self.headers)
        [request] = self.posted()
        body = Webhook(SECRET).verify(request.body, request.headers)
        assert body["type"] == "kinto.record.delete"
        assert body["data"]["new"]["deleted"] is True and body["data"]["old"] == record

    def test_each_change_and_hook_has_an_id_of_its_own(self):
        hooks = [webhook(), webhook(resource_name="record")]
        self.create_collection(data=metadata(webhook_hooks=hooks))
        self.create_record()
        self.create_record()
        ids = [request.headers["webhook-id"] for request in self.posted()]
        assert len(ids) == 4 == len(set(ids))

    def test_a_collection_change_is_a_collection_type(self):
        self.create_collection(data=metadata(webhook_hooks=[webhook(resource_name="collection")]))
        self.app.patch_json("/buckets/b/collections/c", {"data": {"x": 1}}, headers=self.headers)
        types = sorted(request.json["type"] for request in self.posted())
        assert types == ["kinto.collection.create", "kinto.collection.update"]


class EveryChannelScenarios:
    """On the memory and PostgreSQL outboxes."""

    @classmethod
    def extra_settings(cls):
        return {**super().extra_settings(), "includes": "kinto_emailer tests.failing_plugin"}

    def hook_everything(self):
        hooks = {
            **self.hooked(record_hook()),
            **metadata([slack(resource_name="record")], [webhook(resource_name="record")]),
        }
        self.create_collection(data=hooks)

    def test_one_change_sends_an_email_a_slack_message_and_a_webhook(self):
        self.hook_everything()
        self.create_record()
        self.emails(1)
        assert sorted(request.path for request in self.posted()) == ["/audit", "/ops"]

    def test_a_rolled_back_write_posts_nothing(self):
        self.hook_everything()
        # In the event, after the listener ran; then at commit, once the outbox's rows (on
        # PostgreSQL) were written in the transaction.
        for explosion in (True, "at commit"):
            self.create_record(data={"explode": explosion}, status=500)
            transaction.abort()  # As the thread's next request does: a failed commit stays.
        body = {
            "defaults": {"method": "POST", "path": "/buckets/b/collections/c/records"},
            "requests": [{"body": {"data": {}}}, {"body": {"data": {"explode": True}}}],
        }
        self.app.post_json("/batch", body, headers=self.headers, status=500)
        assert self.posted() == []
        self.no_email()
        listed = self.app.get("/buckets/b/emails", headers=self.headers).json["data"]
        assert listed == []
        # The next write posts as usual.
        self.create_record()
        assert sorted(request.path for request in self.posted()) == ["/audit", "/ops"]


per_outbox(EveryChannelScenarios, type("Base", (HTTPChannelsMixin, HookWebTest), {}), globals())


class ReviewTest(HTTPChannelsMixin, ReviewWebTest):
    """kinto-signer's review events, to Slack and to a webhook."""

    def source_metadata(self):
        requested = "kinto_signer.events.ReviewRequested"
        return metadata(
            [
                slack(
                    event=requested,
                    resource_name="collection",
                    template="{user_id} asks: {comment}",
                )
            ],
            [webhook(event="^kinto_signer\\.events\\.Review", resource_name="collection")],
        )

    def test_review_events_post_to_slack_and_to_the_webhook_with_their_own_type(self):
        self.request_review("Three <new> entries")
        self.app.patch_json(SOURCE, {"data": {"status": "to-sign"}}, headers=self.bob)
        posted = self.posted()
        user_id = self.app.get("/", headers=self.headers).json["user"]["id"]
        [message] = [request.json for request in posted if request.path == "/ops"]
        assert message == {"channel": "#ops", "text": f"{user_id} asks: Three &lt;new&gt; entries"}
        bodies = [
            Webhook(SECRET).verify(request.body, request.headers)
            for request in posted
            if request.path == "/audit"
        ]
        assert [body["type"] for body in bodies] == [
            "kinto.review.requested",
            "kinto.review.approved",
        ]
        requested = bodies[0]["data"]
        assert (requested["comment"], requested["changes_count"]) == ("Three <new> entries", 3)
        assert requested["event"] == "kinto_signer.events.ReviewRequested"
        assert (requested["bucket_id"], requested["id"]) == ("source", "c")
        assert requested["new"]["status"] == "to-review"


class StoredBeforeValidationTest(HTTPChannelsMixin, HookWebTest):
    def test_a_hook_that_cannot_be_built_is_skipped_and_the_write_succeeds(self):
        self.create_collection(data=self.hooked(record_hook()))
        stored = {
            **self.hooked(record_hook()),
            **metadata([{"channel": 5, "template": "x"}, slack()], [{"endpoint": None}]),
        }
        self.store_unchecked(stored, collection_id="c")
        record = self.create_record().json["data"]
        [request] = self.posted()
        assert (request.path, request.json["text"]) == ("/ops", f"create {record['id']}")
        self.emails(1)
