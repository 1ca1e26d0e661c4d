"""Every ``mail.*`` and ``kinto_emailer.*`` setting, read and checked once at start-up."""

import os
from dataclasses import dataclass

from pyramid.exceptions import ConfigurationError


DEFAULT_SENDER = "kinto@localhost"


@dataclass(frozen=True)
class EmailerSettings:
    default_sender: str
    queue_path: str | None
    debug_directory: str | None
    max_hooks: int
    max_recipients: int
    max_expanded_recipients: int
    max_template_length: int
    regex_timeout: float
    exposed_settings: dict


def _positive(settings, key, default, convert=int):
    raw = settings.get(key, default)
    try:
        value = convert(raw)
    except (TypeError, ValueError):
        raise ConfigurationError(f"Setting {key!r} must be a number, got {raw!r}.")
    if value <= 0:
        raise ConfigurationError(f"Setting {key!r} must be greater than zero, got {raw!r}.")
    return value


_TRUTHY = ("true", "yes", "on", "1", "t", "y")
_FALSY = ("", "false", "no", "off", "0", "f", "n", "none")


def _boolean(settings, key):
    raw = str(settings.get(key, "false")).strip().lower()
    if raw not in _TRUTHY + _FALSY:
        raise ConfigurationError(f"Setting {key!r} must be true or false, got {raw!r}.")
    return raw in _TRUTHY


def read_settings(settings) -> EmailerSettings:
    """Read the plugin's settings; a bad value raises ``ConfigurationError`` naming its key."""
    for key in ("mail.port", "mail.debug"):
        raw = settings.get(key)
        if raw not in (None, "") and not str(raw).strip().isdigit():
            raise ConfigurationError(f"Setting {key!r} must be a whole number, got {raw!r}.")
    if _boolean(settings, "mail.tls") and _boolean(settings, "mail.ssl"):
        raise ConfigurationError(
            "Settings 'mail.tls' and 'mail.ssl' exclude each other: "
            "use 'mail.ssl' for SMTPS (port 465) or 'mail.tls' for STARTTLS."
        )

    queue_path = settings.get("mail.queue_path") or None
    debug_directory = None
    if _boolean(settings, "mail.debug_mailer"):
        debug_directory = settings.get("mail.top_level_directory") or os.path.join(".", "mail")

    return EmailerSettings(
        default_sender=settings.get("mail.default_sender") or DEFAULT_SENDER,
        queue_path=queue_path,
        debug_directory=debug_directory,
        max_hooks=_positive(settings, "kinto_emailer.max_hooks", "50"),
        max_recipients=_positive(settings, "kinto_emailer.max_recipients", "100"),
        max_expanded_recipients=_positive(
            settings, "kinto_emailer.max_expanded_recipients", "1000"
        ),
        max_template_length=_positive(settings, "kinto_emailer.max_template_length", "65536"),
        regex_timeout=_positive(settings, "kinto_emailer.regex_timeout", "0.1", float),
        # The only settings a template may read: anything else could be a secret.
        exposed_settings={
            "project_name": str(settings.get("project_name", "")),
            "project_version": str(settings.get("project_version", "")),
            "url": str(settings.get("url", "")),
        },
    )
