"""Reading the table from Kinto's settings: unknown keys refused, each value converted, then
the settings that only make sense together checked together."""

import difflib
from collections.abc import Mapping
from typing import Any

from pyramid.exceptions import ConfigurationError
from pyramid.settings import aslist

from .channels import WEBHOOKS_PREFIX, read_channels, webhook_key_hint
from .table import ROWS, EmailerSettings


PLUGIN_PREFIX = "kinto_emailer."
#: Kinto's own prefix: ``kinto.kinto_emailer.x`` in an ini file is ``kinto_emailer.x``.
KINTO_PREFIX = "kinto."
POSTGRESQL_STORAGE = "kinto.core.storage.postgresql"


def _raw(settings: Mapping[str, Any], key: str) -> str | None:
    # Kinto adds the unprefixed key (after its environment overrides); a bare ini has either.
    for name in (key, KINTO_PREFIX + key):
        value = settings.get(name)
        if value is not None and str(value).strip() != "":
            return str(value).strip()
    return None


def _known(key: str) -> bool:
    if key.startswith(WEBHOOKS_PREFIX):  # An endpoint's, named by the operator.
        return webhook_key_hint(key) is None
    return key in ROWS


def unknown_setting(settings: Mapping[str, Any]) -> str | None:
    """The first ``kinto_emailer.*`` key that is not a setting of the plugin, if any."""
    keys = {key.removeprefix(KINTO_PREFIX) for key in settings}
    unknown = sorted(k for k in keys if k.startswith(PLUGIN_PREFIX) and not _known(k))
    return unknown[0] if unknown else None


def _refuse_unknown(settings: Mapping[str, Any]) -> None:
    key = unknown_setting(settings)
    if key is None:
        return
    hint = webhook_key_hint(key) if key.startswith(WEBHOOKS_PREFIX) else None
    if hint is None:
        known = [k for k in ROWS if k.startswith(PLUGIN_PREFIX)]
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.8)
        hint = f"did you mean {close[0]!r}?" if close else "kinto-emailer has no such setting."
    raise ConfigurationError(f"Unknown setting {key!r}; {hint}")


def _refuse_kinto_slack(settings: Mapping[str, Any]) -> None:
    includes = settings.get("includes") or settings.get("kinto.includes") or ""
    includes = aslist(includes) if isinstance(includes, str) else list(includes)
    if "kinto_slack" in includes:
        raise ConfigurationError(
            "Setting 'kinto.includes' lists both kinto_slack and kinto_emailer, which posts "
            "kinto-slack's hooks itself: remove kinto_slack from kinto.includes (its metadata "
            "and slack.* settings keep working), or every message would be posted twice."
        )


def read_settings(settings: Mapping[str, Any]) -> EmailerSettings:
    """Read the plugin's settings; a bad one raises ``ConfigurationError`` naming its key."""
    _refuse_unknown(settings)
    _refuse_kinto_slack(settings)
    values = {}
    for key, row in ROWS.items():
        raw = _raw(settings, key)
        raw = row.metadata["default"] if raw is None else raw
        values[row.name] = row.metadata["convert"](key, raw)
    channels = read_channels(settings, values["http_timeout"])
    emailer_settings = EmailerSettings(**values, channels=channels)
    _check_together(emailer_settings)
    return emailer_settings


def _check_together(settings: EmailerSettings) -> None:
    if settings.smtp_tls and settings.smtp_ssl:
        raise ConfigurationError(
            "Settings 'mail.tls' and 'mail.ssl' exclude each other: "
            "use 'mail.ssl' for SMTPS (port 465) or 'mail.tls' for STARTTLS."
        )
    if settings.outbox == "postgresql":
        if settings.storage_backend != POSTGRESQL_STORAGE:
            raise ConfigurationError(
                "Setting 'kinto_emailer.outbox = postgresql' needs "
                f"'kinto.storage_backend = {POSTGRESQL_STORAGE}', got "
                f"{settings.storage_backend or 'the memory backend'!r}: the outbox is a table "
                "of the storage database."
            )
        if settings.queue_path:
            raise ConfigurationError(
                "Settings 'kinto_emailer.outbox = postgresql' and 'mail.queue_path' exclude "
                "each other: emails wait in the database, or in the Maildir."
            )
    anyone = {"system.Everyone", "system.Authenticated"} & set(settings.account_create_principals)
    if "account:" in settings.verified_author_prefixes and anyone:
        raise ConfigurationError(
            "Setting 'kinto_emailer.verified_author_prefixes' lists 'account:', but "
            f"'account_create_principals' lets {sorted(anyone)[0]} create accounts named after "
            "any address: remove 'account:', or let only administrators create accounts."
        )
    if settings.queue_processor and not settings.queue_path:
        raise ConfigurationError(
            "Setting 'kinto_emailer.queue_processor' needs 'mail.queue_path': "
            "set the Maildir to deliver from, or remove 'kinto_emailer.queue_processor'."
        )
