"""Slack and webhook hooks, from a change to the items the outbox receives, through the real
Kinto app: the same filters, placeholders and transaction as emails."""

import datetime

from tests.compose.http_items import HTTP_SETTINGS, HTTPItemsMixin
from tests.support import HookWebTest, per_outbox, record_hook
from tests.test_review import SOURCE, ReviewWebTest


def slack(**fields):
    """A Slack hook on records, to #ops."""
    return {"channel": "#ops", "template": "{action} {id}", "resource_name": "record", **fields}


def webhook(**fields):
    """A webhook hook on records, to the endpoint ``audit``."""
    return {"endpoint": "audit", "resource_name": "record", **fields}


def metadata(slack_hooks=(), webhook_hooks=()):
    found = {}
    if slack_hooks:
        found["kinto-slack"] = {"hooks": list(slack_hooks)}
    if webhook_hooks:
        found["kinto-webhooks"] = {"hooks": list(webhook_hooks)}
    return found


class SlackTest(HTTPItemsMixin, HookWebTest):
    def test_a_record_change_makes_one_slack_message_for_its_channel(self):
        template = "{user_id} {action}d {resource_name} {id} in {bucket_id}/{collection_id}"
        self.create_collection(data=metadata([slack(template=template + ": {new[title]}")]))
        record = self.create_record(data={"title": "Hello"}).json["data"]
        user_id = self.app.get("/", headers=self.headers).json["user"]["id"]
        [item] = self.received()
        text = f"{user_id} created record {record['id']} in b/c: Hello"
        assert item.payload == {"channel": "#ops", "text": text}
        assert (item.channel, item.destination, item.message) == ("slack", "#ops", None)
        assert item.location == "/buckets/b/collections/c#slack/0"
        assert (item.bucket_id, item.collection_id, item.action) == ("b", "c", "create")
        assert item.uri == f"/buckets/b/collections/c/records/{record['id']}"
        assert item.event == "kinto.core.events.AfterResourceChanged"

    def test_placeholder_values_are_escaped_for_slack_and_the_template_is_not(self):
        self.create_collection(data=metadata([slack(template="<{uri}|{new[title]}> &")]))
        record = self.create_record(data={"title": "<!channel> & <https://x|bank>"}).json["data"]
        [item] = self.received()
        uri = f"/buckets/b/collections/c/records/{record['id']}"
        assert item.payload["text"] == f"<{uri}|&lt;!channel&gt; &amp; &lt;https://x|bank&gt;> &"

    def test_filters_and_patterns_choose_as_for_emails(self):
        hooks = [
            slack(resource_name="collection"),
            slack(action="^(create|delete)$", template="first"),
            slack(channel="#general", record_id="^nope", template="never"),
        ]
        self.create_collection(data=metadata(hooks))
        self.received()
        self.items.clear()
        self.create_record()
        assert [(i.location, i.payload["text"]) for i in self.received()] == [
            ("/buckets/b/collections/c#slack/1", "first")
        ]

    def test_each_key_falls_back_on_the_bucket_on_its_own(self):
        # The collection has email hooks only: the bucket's Slack hooks apply to it.
        bucket_hooks = {**self.hooked(), **metadata([slack(template="from the bucket")])}
        self.app.patch_json("/buckets/b", {"data": bucket_hooks}, headers=self.headers)
        self.create_collection(data=self.hooked(record_hook()))
        self.create_record()
        [item] = self.received()
        assert (item.location, item.payload["text"]) == ("/buckets/b#slack/0", "from the bucket")
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
        [item] = self.received()
        assert item.payload["text"] == "2 changes\n\n<r1> &lt;b&gt;\n<r2> &lt;b&gt;"
        assert item.location == "/buckets/b/collections/c#slack/0"


class WebhookTest(HTTPItemsMixin, HookWebTest):
    def test_a_record_change_makes_a_webhook_whose_body_describes_it(self):
        self.create_collection(data=metadata(webhook_hooks=[webhook()]))
        record = self.create_record(data={"title": "Hello"}).json["data"]
        user_id = self.app.get("/", headers=self.headers).json["user"]["id"]
        [item] = self.received()
        assert (item.channel, item.destination, item.message) == ("webhook", "audit", None)
        assert item.location == "/buckets/b/collections/c#webhook/0"
        assert set(item.payload) == {"id", "body"}
        assert item.payload["id"].startswith("msg_") and "." not in item.payload["id"]
        body = item.payload["body"]
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

    def test_a_deletion_carries_the_tombstone_and_the_old_record(self):
        self.create_collection(data=metadata(webhook_hooks=[webhook(action="delete")]))
        record = self.create_record(data={"title": "Gone"}).json["data"]
        self.app.delete(f"/buckets/b/collections/c/records/{record['id']}", headers=self.headers)
        [item] = self.received()
        data = item.payload["body"]["data"]
        assert item.payload["body"]["type"] == "kinto.record.delete"
        assert data["new"]["deleted"] is True and data["old"] == record

    def test_each_change_and_hook_has_an_id_of_its_own(self):
        hooks = [webhook(), webhook(resource_name="record")]
        self.create_collection(data=metadata(webhook_hooks=hooks))
        self.received()
        self.items.clear()
        self.create_record()
        self.create_record()
        ids = [item.payload["id"] for item in self.received()]
        assert len(ids) == 4 == len(set(ids))

    def test_a_collection_change_is_a_collection_type(self):
        self.create_collection(data=metadata(webhook_hooks=[webhook(resource_name="collection")]))
        self.app.patch_json("/buckets/b/collections/c", {"data": {"x": 1}}, headers=self.headers)
        types = [item.payload["body"]["type"] for item in self.received()]
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

    def test_one_change_makes_an_email_a_slack_message_and_a_webhook(self):
        self.hook_everything()
        self.create_record()
        self.emails(1)
        assert sorted(item.channel for item in self.received()) == ["slack", "webhook"]

    def test_a_rolled_back_write_puts_nothing(self):
        self.hook_everything()
        self.create_record(data={"explode": True}, status=500)
        body = {
            "defaults": {"method": "POST", "path": "/buckets/b/collections/c/records"},
            "requests": [{"body": {"data": {}}}, {"body": {"data": {"explode": True}}}],
        }
        self.app.post_json("/batch", body, headers=self.headers, status=500)
        assert self.received() == []
        self.no_email()


per_outbox(EveryChannelScenarios, type("Base", (HTTPItemsMixin, HookWebTest), {}), globals())


class ReviewTest(HTTPItemsMixin, ReviewWebTest):
    """kinto-signer's review events, to Slack and to a webhook."""

    @classmethod
    def extra_settings(cls):
        return {**super().extra_settings(), **HTTP_SETTINGS}

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
        self.received()
        self.items.clear()
        self.request_review("Three <new> entries")
        self.app.patch_json(SOURCE, {"data": {"status": "to-sign"}}, headers=self.bob)
        items = self.received()
        user_id = self.app.get("/", headers=self.headers).json["user"]["id"]
        [message] = [item.payload for item in items if item.channel == "slack"]
        assert message == {"channel": "#ops", "text": f"{user_id} asks: Three &lt;new&gt; entries"}
        bodies = [item.payload["body"] for item in items if item.channel == "webhook"]
        assert [body["type"] for body in bodies] == [
            "kinto.review.requested",
            "kinto.review.approved",
        ]
        requested = bodies[0]["data"]
        assert (requested["comment"], requested["changes_count"]) == ("Three <new> entries", 3)
        assert requested["event"] == "kinto_signer.events.ReviewRequested"
        assert (requested["bucket_id"], requested["id"]) == ("source", "c")
        assert requested["new"]["status"] == "to-review"


class StoredBeforeValidationTest(HTTPItemsMixin, HookWebTest):
    def test_a_hook_that_cannot_be_built_is_skipped_and_the_write_succeeds(self):
        self.create_collection(data=self.hooked(record_hook()))
        stored = {
            **self.hooked(record_hook()),
            **metadata([{"channel": 5, "template": "x"}, slack()], [{"endpoint": None}]),
        }
        self.store_unchecked(stored, collection_id="c")
        record = self.create_record().json["data"]
        [item] = self.received()
        assert (item.location, item.payload["text"]) == (
            "/buckets/b/collections/c#slack/1",
            f"create {record['id']}",
        )
        self.emails(1)
