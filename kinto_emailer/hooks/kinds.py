"""The kinds of hooks, one per channel: the metadata key they live under, their schema, and
how each hook is named (``/buckets/b/collections/c#slack/0``) in logs and status views."""

from dataclasses import dataclass

import colander

from . import http_schema, schema, selection


@dataclass(frozen=True)
class HookKind:
    #: The metadata key, on a collection or else on its bucket.
    key: str
    #: ``Email.channel`` of the messages its hooks make.
    channel: str
    #: What a hook's name adds before its index: ``#0`` for email hooks, as in 4.x.
    label: str
    schema: type[colander.MappingSchema]
    #: What one of its messages is called in logs and previews.
    noun: str

    def where(self, location: str, index: int) -> str:
        return f"{location}#{self.label}{index}"


EMAIL = HookKind(selection.METADATA_KEY, "email", "", schema.Hook, "email")
SLACK = HookKind("kinto-slack", "slack", "slack/", http_schema.SlackHook, "Slack message")
WEBHOOK = HookKind("kinto-webhooks", "webhook", "webhook/", http_schema.WebhookHook, "webhook")
KINDS = (EMAIL, SLACK, WEBHOOK)
