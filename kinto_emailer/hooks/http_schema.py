"""The shape of a ``kinto-slack`` hook (kinto-slack's fields) and of a ``kinto-webhooks``
hook (an operator's endpoint), and their 400s when saved: the same filters and templates as
email hooks (``schema``), and what the server's settings can deliver."""

from typing import Any

import colander

from ..config.channels import slack_key
from . import schema
from .fields import Flag, Seconds, Text, no_line_break


#: Slack's own limit on a channel's name.
MAX_CHANNEL_LENGTH = 80


def _slack_configured(settings: Any) -> str:
    channels = settings.channels
    names = ", ".join(f"#{name}" for name in sorted(channels.slack_urls))
    return f"channels with a URL: {names}" if names else "no channel has a URL"


class SlackHook(schema.Filters):
    channel = colander.SchemaNode(Text(), missing_msg='Missing "channel"', validator=no_line_break)
    template = colander.SchemaNode(Text(allow_empty=True), missing_msg='Missing "template"')
    digest = colander.SchemaNode(Flag(), missing=colander.drop)
    # Known, to be refused with a reason rather than as a typo.
    digest_window = colander.SchemaNode(Seconds(1, 86400), missing=colander.drop)
    item_template = colander.SchemaNode(Text(allow_empty=True), missing=colander.drop)

    def validator(self, node: colander.SchemaNode, hook: dict[str, Any]) -> None:
        settings = self.bindings["settings"]
        channel = hook["channel"]
        if not channel.strip() or len(channel) > MAX_CHANNEL_LENGTH:
            raise colander.Invalid(
                node["channel"],
                f'"channel" must name a Slack channel such as "#ops" '
                f"(1 to {MAX_CHANNEL_LENGTH} characters)",
            )
        if settings.channels.slack_url(channel) is None:
            key = slack_key(channel)
            raise colander.Invalid(
                node["channel"],
                f'No Slack URL for channel "{channel}": the server has neither '
                f"slack.{key}.webhook_url nor slack.webhook_url ({_slack_configured(settings)}); "
                "name one of those, or ask the server's operator to add it",
            )
        if "digest_window" in hook:
            raise colander.Invalid(
                node["digest_window"],
                '"digest_window" is not available on Slack hooks: remove it, and "digest": '
                "true posts one message per request",
            )
        schema.check_digest_fields(node, hook, settings)
        schema.check_texts(node, hook, settings, ("template", "item_template"), email=False)


def _looks_like_url(value: str) -> bool:
    return "://" in value or value.lower().startswith(("http:", "https:", "www."))


class WebhookHook(schema.Filters):
    endpoint = colander.SchemaNode(
        Text(), missing_msg='Missing "endpoint"', validator=no_line_break
    )

    def validator(self, node: colander.SchemaNode, hook: dict[str, Any]) -> None:
        settings, bucket_id = self.bindings["settings"], self.bindings["bucket_id"]
        name = hook["endpoint"]
        endpoints = settings.channels.webhooks
        usable = sorted(n for n, e in endpoints.items() if e.allows(bucket_id))
        available = f"endpoints of bucket {bucket_id}: {', '.join(usable) or 'none'}"
        if _looks_like_url(name):
            raise colander.Invalid(
                node["endpoint"],
                f'"endpoint" names one of the server\'s endpoints, never a URL ({available}); '
                "ask the server's operator to add yours (kinto_emailer.webhooks.<name>.url)",
            )
        endpoint = endpoints.get(name)
        if endpoint is None:
            raise colander.Invalid(node["endpoint"], f'Unknown endpoint "{name}" ({available})')
        if not endpoint.allows(bucket_id):
            raise colander.Invalid(
                node["endpoint"],
                f'Endpoint "{name}" is reserved to other buckets than {bucket_id} '
                f"(kinto_emailer.webhooks.{name}.buckets; {available})",
            )
