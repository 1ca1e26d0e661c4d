"""Validation of ``kinto-slack`` and ``kinto-webhooks`` metadata when buckets and collections
are saved: 400s (errno 107) that name the field and the fix."""

from kinto.core.testing import get_user_headers

from tests.http_receiver import HTTPChannelsMixin
from tests.support import HookWebTest, MaildirQueueMixin


SLACK_HOOK = {"channel": "#ops", "template": "{action} {id}"}
WEBHOOK_HOOK = {"endpoint": "audit"}


def slack(*hooks):
    return {"kinto-slack": {"hooks": list(hooks)}}


def webhooks(*hooks):
    return {"kinto-webhooks": {"hooks": list(hooks)}}


class HTTPHookTest(HTTPChannelsMixin, HookWebTest):
    def refused_metadata(self, data, key, bucket_id="b"):
        response = self.app.put_json(
            f"/buckets/{bucket_id}/collections/c", {"data": data}, headers=self.headers, status=400
        )
        body = response.json
        assert (body["errno"], body["details"][0]["name"]) == (107, f"data.{key}"), body
        return body["message"]

    def refused_slack(self, *hooks):
        return self.refused_metadata(slack(*hooks), "kinto-slack")

    def refused_webhooks(self, *hooks, bucket_id="b"):
        return self.refused_metadata(webhooks(*hooks), "kinto-webhooks", bucket_id)


class SlackHooksTest(HTTPHookTest):
    def test_kinto_slack_hooks_as_remote_settings_has_them_are_accepted(self):
        hook = {
            "event": "kinto_remote_settings.signer.events.ReviewRequested",
            "channel": "#team-component",
            "template": "{user_id} requested review of {collection_id} ({root_url}{uri})",
            "collection_id": "^experiment-.*",
        }
        self.create_collection(data=slack(hook, SLACK_HOOK))
        stored = self.app.get("/buckets/b/collections/c", headers=self.headers).json["data"]
        assert stored["kinto-slack"]["hooks"][0] == hook

    def test_a_typo_is_refused_with_the_field_it_stands_for(self):
        message = self.refused_slack({"chanel": "#ops", "template": "x"})
        assert message == (
            'data.kinto-slack in body: Unknown field "chanel" in hook 0; did you mean "channel"?'
        )

    def test_missing_channel_or_template_is_refused(self):
        assert self.refused_slack({"template": "x"}).endswith('Missing "channel"')
        assert self.refused_slack({"channel": "#ops"}).endswith('Missing "template"')

    def test_a_bad_pattern_or_filter_value_is_refused(self):
        assert 'Invalid regular expression in "record_id"' in self.refused_slack(
            {**SLACK_HOOK, "record_id": "^(unclosed"}
        )
        message = self.refused_slack({**SLACK_HOOK, "action": "created"})
        assert 'Invalid "action" "created"' in message and 'did you mean "create"?' in message

    def test_an_unknown_placeholder_is_refused_and_unsubscribe_links_are_for_emails(self):
        assert 'Invalid placeholder "{titl}" in "template"' in self.refused_slack(
            {"channel": "#ops", "template": "{titl}"}
        )
        assert 'Invalid placeholder "{unsubscribe_url}" in "template"' in self.refused_slack(
            {"channel": "#ops", "template": "{unsubscribe_url}"}
        )
        # On a plugin's own event too (where unknown placeholders are accepted).
        review = {"channel": "#ops", "event": "kinto_signer.events.ReviewRequested"}
        assert 'Invalid placeholder "{unsubscribe_url}" in "template"' in self.refused_slack(
            {**review, "template": "{unsubscribe_url}"}
        )

    def test_digest_placeholders_need_a_digest_and_windows_are_refused(self):
        message = self.refused_slack({"channel": "#ops", "template": "{count} changes"})
        assert message.endswith('Placeholder "{count}" in "template" needs "digest": true')
        message = self.refused_slack({**SLACK_HOOK, "digest": True, "digest_window": 60})
        assert message.endswith(
            '"digest_window" is not available on Slack hooks: remove it, and "digest": true '
            "posts one message per request"
        )
        self.create_collection(data=slack({**SLACK_HOOK, "digest": True, "item_template": "{id}"}))

    def test_too_many_hooks_are_refused(self):
        message = self.refused_slack(*[SLACK_HOOK] * 51)
        assert message.endswith("Too many hooks: 51 (kinto_emailer.max_hooks is 50)")

    def test_metadata_that_is_not_an_object_is_refused(self):
        message = self.refused_metadata({"kinto-slack": ["#ops"]}, "kinto-slack")
        assert message == 'data.kinto-slack in body: "kinto-slack" must be an object'


class SlackWithoutDefaultTest(HTTPHookTest):
    @classmethod
    def extra_settings(cls):
        return {"slack.ops.webhook_url": cls.receiver.url("/ops")}

    def test_a_channel_with_no_url_and_no_default_is_refused(self):
        message = self.refused_slack({"channel": "#general", "template": "x"})
        assert message.endswith(
            'No Slack URL for channel "#general": the server has neither '
            "slack.general.webhook_url nor slack.webhook_url (channels with a URL: #ops); "
            "name one of those, or ask the server's operator to add it"
        )
        assert "127.0.0.1" not in message

    def test_a_channel_with_its_own_url_is_accepted(self):
        self.create_collection(data=slack({"channel": "ops", "template": "x"}, SLACK_HOOK))


class WebhookHooksTest(HTTPHookTest):
    def test_an_endpoint_of_the_operator_is_accepted(self):
        self.create_collection(data=webhooks(WEBHOOK_HOOK, {**WEBHOOK_HOOK, "action": "delete"}))

    def test_a_url_is_refused(self):
        message = self.refused_webhooks({"endpoint": "https://example.com/hook"})
        assert message.endswith(
            '"endpoint" names one of the server\'s endpoints, never a URL (endpoints of '
            "bucket b: audit); ask the server's operator to add yours "
            "(kinto_emailer.webhooks.<name>.url)"
        )

    def test_an_unknown_endpoint_is_refused(self):
        message = self.refused_webhooks({"endpoint": "audti"})
        assert message.endswith('Unknown endpoint "audti" (endpoints of bucket b: audit)')

    def test_an_endpoint_reserved_to_other_buckets_is_refused_and_theirs_accepted(self):
        message = self.refused_webhooks({"endpoint": "reserved"})
        assert message.endswith(
            'Endpoint "reserved" is reserved to other buckets than b '
            "(kinto_emailer.webhooks.reserved.buckets; endpoints of bucket b: audit)"
        )
        self.create_bucket("other")
        self.create_collection("other", "c", data=webhooks({"endpoint": "reserved"}))

    def test_a_typo_and_a_missing_endpoint_are_refused(self):
        message = self.refused_webhooks({"endpiont": "audit"})
        assert 'Unknown field "endpiont" in hook 0; did you mean "endpoint"?' in message
        assert self.refused_webhooks({"action": "create"}).endswith('Missing "endpoint"')

    def test_bucket_hooks_are_checked_too(self):
        response = self.app.patch_json(
            "/buckets/b",
            {"data": webhooks({"endpoint": "nope"})},
            headers=self.headers,
            status=400,
        )
        assert response.json["details"][0]["name"] == "data.kinto-webhooks"


class HookWritePrincipalsTest(HTTPHookTest):
    @classmethod
    def extra_settings(cls):
        return {**super().extra_settings(), "kinto_emailer.hook_write_principals": "account:admin"}

    def test_only_the_principals_write_slack_and_webhook_hooks(self):
        for data, key in (
            (slack(SLACK_HOOK), "kinto-slack"),
            (webhooks(WEBHOOK_HOOK), "kinto-webhooks"),
        ):
            response = self.app.put_json(
                "/buckets/b/collections/c", {"data": data}, headers=self.headers, status=403
            )
            assert response.json["message"] == (
                f'Changing "{key}" needs one of the principals of '
                "kinto_emailer.hook_write_principals"
            )
        bob = {**self.headers, **get_user_headers("bob")}
        self.app.put_json("/buckets/b/collections/plain", {"data": {}}, headers=bob, status=403)


class MaildirRefusesHTTPHooksTest(MaildirQueueMixin, HTTPHookTest):
    processor = False

    def test_slack_and_webhook_hooks_are_refused_with_the_maildir_outbox(self):
        message = self.refused_slack(SLACK_HOOK)
        assert message == (
            'data.kinto-slack in body: "kinto-slack" hooks are not available with the Maildir '
            "outbox (mail.queue_path), which holds email only: remove them, or use "
            "kinto_emailer.outbox"
        )
        assert "not available with the Maildir outbox" in self.refused_webhooks(WEBHOOK_HOOK)
