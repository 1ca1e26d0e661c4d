"""The settings of the HTTP channels: Slack's incoming-webhook URLs (``slack.*``, as
kinto-slack reads them) and the operator's signed-webhook endpoints
(``kinto_emailer.webhooks.<name>.*``)."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Endpoint:
    """A signed-webhook endpoint, named by the operator; hooks name it, never its URL."""

    name: str
    url: str
    #: The decoded keys of its ``whsec_`` secrets: each signs every delivery (rotation).
    keys: tuple[bytes, ...]
    #: The bucket ids whose hooks may name it; ``None``: every bucket.
    buckets: frozenset[str] | None = None

    def allows(self, bucket_id: str | None) -> bool:
        return self.buckets is None or bucket_id in self.buckets


@dataclass(frozen=True)
class Channels:
    """What the Slack and webhook channels need from the settings."""

    #: Slack channel, as hooks write it (``#ops``) -> its incoming-webhook URL.
    slack_urls: Mapping[str, str] = field(default_factory=dict)
    #: ``slack.webhook_url``: where a channel with no URL of its own is posted.
    slack_default_url: str | None = None
    #: ``slack.debug_dir``: one JSON file per message there instead of posting.
    slack_debug_dir: str | None = None
    #: Endpoint name -> endpoint.
    webhooks: Mapping[str, Endpoint] = field(default_factory=dict)
    #: Seconds for one HTTP request, connection and reply included.
    http_timeout: float = 15.0

    def slack_url(self, channel: str) -> str | None:
        """The URL a message to ``channel`` is posted to; ``None``: nowhere configured."""
        return self.slack_urls.get(channel, self.slack_default_url)


def read_channels(settings: Mapping[str, Any]) -> Channels:
    """The channels' settings; a bad one raises ``ConfigurationError`` naming its key."""
    return Channels()  # Issue 21: read slack.* and kinto_emailer.webhooks.*.
