"""The settings of the HTTP channels: Slack's incoming-webhook URLs (``slack.*``, as
kinto-slack reads them) and the operator's signed-webhook endpoints
(``kinto_emailer.webhooks.<name>.*``).

Their keys are named by the operator (a channel, an endpoint), so they are read here rather
than from the table; a ``kinto_emailer.webhooks.*`` key that is not one of an endpoint's is
refused like any unknown ``kinto_emailer.*`` key (``webhook_key_hint``).
"""

import base64
import binascii
import difflib
import os
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pyramid.exceptions import ConfigurationError
from pyramid.settings import aslist


SLACK_PREFIX = "slack."
SLACK_URL_SUFFIX = ".webhook_url"
SLACK_DEFAULT_KEY = "slack.webhook_url"
SLACK_DEBUG_DIR_KEY = "slack.debug_dir"
#: Kinto reads ``KINTO_<KEY>`` (and ``<KEY>``) from the environment: kinto-slack did too.
_SLACK_CHANNEL_ENV = re.compile(r"^KINTO_SLACK_(?P<channel>.+)_WEBHOOK_URL$")
WEBHOOKS_PREFIX = "kinto_emailer.webhooks."
#: What an endpoint's settings may say, and which it must.
WEBHOOK_FIELDS = ("url", "secret", "buckets")
WEBHOOK_REQUIRED = ("url", "secret")
#: Also what ``webhook-id`` and the signed content may hold: never a ``.``.
_ENDPOINT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_SECRET_PREFIX = "whsec_"
#: Standard Webhooks: symmetric keys of 24 to 64 bytes.
MIN_KEY_BYTES, MAX_KEY_BYTES = 24, 64


def slack_key(channel: str) -> str:
    """The name a channel's URL is configured under: ``#Team-Ops`` -> ``team_ops``.

    The environment has no ``#``, ``-`` or ``.`` in its names, nor lower case: ``#ops``,
    ``ops``, ``slack.ops.webhook_url`` and ``KINTO_SLACK_OPS_WEBHOOK_URL`` all meet here.
    """
    return channel.strip().removeprefix("#").lower().replace("-", "_").replace(".", "_")


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

    def __repr__(self) -> str:  # Never the keys, nor the URL's token, in a log or traceback.
        return f"Endpoint(name={self.name!r})"


@dataclass(frozen=True)
class Channels:
    """What the Slack and webhook channels need from the settings."""

    #: Slack channel, by its ``slack_key`` (``#ops`` -> ``ops``) -> its incoming-webhook URL.
    slack_urls: Mapping[str, str] = field(default_factory=dict)
    #: ``slack.webhook_url``: where a channel with no URL of its own is posted.
    slack_default_url: str | None = None
    #: ``slack.debug_dir``: one JSON file per message there instead of posting.
    slack_debug_dir: str | None = None
    #: Endpoint name -> endpoint.
    webhooks: Mapping[str, Endpoint] = field(default_factory=dict)
    #: Seconds for one HTTP request, connection and reply included
    #: (``kinto_emailer.http_timeout``).
    http_timeout: float = 15.0

    def offers(self, channel: str) -> bool:
        """Whether hooks of ``channel`` can be delivered here: emails always, Slack with a
        URL or ``slack.debug_dir``, webhooks with an endpoint. A write doesn't look for the
        other channels' hooks: reading them would cost a bucket's read on every write to a
        collection that has hooks of its own (each metadata key falls back on its own)."""
        if channel == "slack":
            return bool(self.slack_urls or self.slack_default_url or self.slack_debug_dir)
        if channel == "webhook":
            return bool(self.webhooks)
        return True

    def slack_url(self, channel: str) -> str | None:
        """The URL a message to ``channel`` (as a hook writes it, ``#ops``) is posted to;
        ``None``: nowhere configured."""
        return self.slack_urls.get(slack_key(channel), self.slack_default_url)

    def __repr__(self) -> str:  # URLs carry Slack's tokens: never in a log.
        return f"Channels(slack={sorted(self.slack_urls)}, webhooks={sorted(self.webhooks)})"


def _value(settings: Mapping[str, Any], key: str) -> str | None:
    for name in (key, "kinto." + key):
        value = settings.get(name)
        if value is not None and str(value).strip():
            return str(value).strip()
    return None


def _env(*names: str) -> str | None:
    for name in names:
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return None


def _http_url(key: str, raw: str) -> str:
    parts = urllib.parse.urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        # Not shown: an incoming-webhook URL is a secret of its own.
        raise ConfigurationError(
            f"Setting {key!r} must be an http:// or https:// URL with a host "
            f"(got one starting {parts.scheme + ':' if parts.scheme else 'without a scheme'})."
        )
    return raw


def _env_key(key: str) -> str:
    return key.replace(".", "_").replace("-", "_").upper()


def _keys(settings: Mapping[str, Any]) -> set[str]:
    return {str(k).removeprefix("kinto.") for k in settings}


def _read_slack(settings: Mapping[str, Any]) -> tuple[dict[str, str], str | None, str | None]:
    urls: dict[str, tuple[str, str]] = {}  # slack_key -> (setting or variable, URL)
    for key in sorted(_keys(settings)):
        if not (key.startswith(SLACK_PREFIX) and key.endswith(SLACK_URL_SUFFIX)):
            continue
        channel = key[len(SLACK_PREFIX) : -len(SLACK_URL_SUFFIX)]
        if not channel:
            continue  # ``slack.webhook_url``: the default.
        # As Kinto does for the keys of the ini file: the environment wins.
        value = _env("KINTO_" + _env_key(key), _env_key(key)) or _value(settings, key)
        if value:
            urls[slack_key(channel)] = (key, value)
    for name, value in sorted(os.environ.items()):
        match = _SLACK_CHANNEL_ENV.match(name)
        if match and value.strip():
            urls[slack_key(match.group("channel"))] = (name, value.strip())
    checked = {channel: _http_url(key, url) for channel, (key, url) in urls.items()}
    default = _env("KINTO_SLACK_WEBHOOK_URL", "SLACK_WEBHOOK_URL")
    default = default or _value(settings, SLACK_DEFAULT_KEY)
    if default:
        _http_url(SLACK_DEFAULT_KEY, default)
    debug_dir = _env("KINTO_SLACK_DEBUG_DIR") or _value(settings, SLACK_DEBUG_DIR_KEY)
    return checked, default, debug_dir


def webhook_key_hint(key: str) -> str | None:
    """Why ``key`` (``kinto_emailer.webhooks...``) is not an endpoint's setting, with the
    one it may stand for; ``None`` when it is one."""
    name, _, attribute = key.removeprefix(WEBHOOKS_PREFIX).rpartition(".")
    if not name:
        return f"write '{WEBHOOKS_PREFIX}<name>.url' (and .secret, .buckets)"
    if attribute in WEBHOOK_FIELDS:
        return None
    close = difflib.get_close_matches(attribute, WEBHOOK_FIELDS, n=1)
    if close:
        return f"did you mean '{WEBHOOKS_PREFIX}{name}.{close[0]}'?"
    return f"an endpoint's settings are {', '.join(WEBHOOK_FIELDS)}"


def _decode_secret(key: str, index: int, secret: str) -> bytes:
    where = f"Setting {key!r}: secret {index + 1}"
    # Never shown: the message says what is wrong with it, not what it is.
    if not secret.startswith(_SECRET_PREFIX):
        raise ConfigurationError(f"{where} must start with 'whsec_' (Standard Webhooks).")
    try:
        encoded = secret[len(_SECRET_PREFIX) :]
        # Unpadded base64 too, as the reference library reads it.
        decoded = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigurationError(f"{where} is not 'whsec_' followed by base64.") from None
    if not MIN_KEY_BYTES <= len(decoded) <= MAX_KEY_BYTES:
        raise ConfigurationError(
            f"{where} decodes to {len(decoded)} bytes: Standard Webhooks keys have "
            f"{MIN_KEY_BYTES} to {MAX_KEY_BYTES} (e.g. 'whsec_' + base64 of 32 random bytes)."
        )
    return decoded


def _read_webhooks(settings: Mapping[str, Any]) -> dict[str, Endpoint]:
    names = set()
    for key in _keys(settings):
        if key.startswith(WEBHOOKS_PREFIX):
            hint = webhook_key_hint(key)
            if hint is not None:
                raise ConfigurationError(f"Unknown setting {key!r}; {hint}")
            names.add(key.removeprefix(WEBHOOKS_PREFIX).rpartition(".")[0])
    endpoints = {}
    for name in sorted(names):
        prefix = f"{WEBHOOKS_PREFIX}{name}."
        if not _ENDPOINT_NAME.match(name):
            raise ConfigurationError(
                f"Settings '{prefix}*': an endpoint's name is 1 to 64 letters, digits, "
                f"'-' and '_', starting with a letter or digit; got {name!r}."
            )
        values = {field_: _value(settings, prefix + field_) for field_ in WEBHOOK_FIELDS}
        for required in WEBHOOK_REQUIRED:
            if values[required] is None:
                raise ConfigurationError(
                    f"Setting '{prefix}{required}' is missing: endpoint {name!r} needs a url "
                    "and a secret ('whsec_' + base64)."
                )
        url = _http_url(prefix + "url", str(values["url"]))
        secrets = str(values["secret"]).split()
        keys = tuple(_decode_secret(prefix + "secret", i, s) for i, s in enumerate(secrets))
        buckets = values["buckets"]
        allowed = frozenset(aslist(buckets)) if buckets else None
        endpoints[name] = Endpoint(name, url, keys, allowed)
    return endpoints


def read_channels(settings: Mapping[str, Any], http_timeout: float = 15.0) -> Channels:
    """The channels' settings; a bad one raises ``ConfigurationError`` naming its key.

    ``http_timeout`` is ``kinto_emailer.http_timeout``, read with the table.
    """
    slack_urls, default, debug_dir = _read_slack(settings)
    return Channels(
        slack_urls=slack_urls,
        slack_default_url=default,
        slack_debug_dir=debug_dir,
        webhooks=_read_webhooks(settings),
        http_timeout=http_timeout,
    )
