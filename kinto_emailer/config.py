"""Every ``mail.*`` and ``kinto_emailer.*`` setting, read and checked once at start-up."""

import os
import re
from dataclasses import dataclass

from pyramid.exceptions import ConfigurationError
from pyramid.settings import aslist


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
    # How emails leave: the SMTP server (pyramid_mailer's names) and the delivery worker.
    smtp_host: str = "localhost"
    smtp_port: int = 25
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_tls: bool = False
    smtp_ssl: bool = False
    smtp_debug: int = 0
    smtp_timeout: float = 10.0
    tls_verify: bool = True
    tls_ca_file: str | None = None
    queue_size: int = 10000
    queue_processor: bool = False
    queue_poll_interval: float = 1.0
    retry_max_attempts: int = 8
    retry_base_delay: float = 1.0
    retry_max_delay: float = 300.0
    shutdown_timeout: float = 10.0
    max_digest_items: int = 500
    # Where writers are not trusted: who writes hooks, and the domains they may mail.
    hook_write_principals: tuple[str, ...] = ()
    sender_domains: tuple[str, ...] = ()
    recipient_domains: tuple[str, ...] = ()


def _positive(settings, key, default, convert=int):
    raw = settings.get(key, default)
    try:
        value = convert(raw)
    except (TypeError, ValueError):
        raise ConfigurationError(f"Setting {key!r} must be a number, got {raw!r}.")
    if value <= 0:
        raise ConfigurationError(f"Setting {key!r} must be greater than zero, got {raw!r}.")
    return value


_DOMAIN = re.compile(r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*$")


def _domains(settings, key):
    domains = []
    for raw in aslist(settings.get(key) or "", flatten=True):
        try:
            domain = raw.strip(",").lower().encode("idna").decode("ascii")
        except UnicodeError:
            domain = ""
        if not _DOMAIN.match(domain):
            raise ConfigurationError(f"Setting {key!r} must list domain names, got {raw!r}.")
        domains.append(domain)
    return tuple(domains)


_TRUTHY = ("true", "yes", "on", "1", "t", "y")
_FALSY = ("", "false", "no", "off", "0", "f", "n", "none")


def _boolean(settings, key, default="false"):
    value = settings.get(key)
    raw = str(default if value in (None, "") else value).strip().lower()
    if raw not in _TRUTHY + _FALSY:
        raise ConfigurationError(f"Setting {key!r} must be true or false, got {raw!r}.")
    return raw in _TRUTHY


def read_settings(settings) -> EmailerSettings:
    """Read the plugin's settings; a bad value raises ``ConfigurationError`` naming its key."""
    for key in ("mail.port", "mail.debug"):
        raw = settings.get(key)
        if raw not in (None, "") and not str(raw).strip().isdigit():
            raise ConfigurationError(f"Setting {key!r} must be a whole number, got {raw!r}.")
    # Both read before comparing: a bad 'mail.ssl' must not hide behind 'mail.tls = false'.
    tls, ssl = _boolean(settings, "mail.tls"), _boolean(settings, "mail.ssl")
    if tls and ssl:
        raise ConfigurationError(
            "Settings 'mail.tls' and 'mail.ssl' exclude each other: "
            "use 'mail.ssl' for SMTPS (port 465) or 'mail.tls' for STARTTLS."
        )

    queue_path = settings.get("mail.queue_path") or None
    debug_directory = None
    if _boolean(settings, "mail.debug_mailer"):
        debug_directory = settings.get("mail.top_level_directory") or os.path.join(".", "mail")

    queue_processor = _boolean(settings, "kinto_emailer.queue_processor")
    if queue_processor and not queue_path:
        raise ConfigurationError(
            "Setting 'kinto_emailer.queue_processor' needs 'mail.queue_path': "
            "set the Maildir to deliver from, or remove 'kinto_emailer.queue_processor'."
        )
    tls_ca_file = settings.get("kinto_emailer.tls_ca_file") or None
    if tls_ca_file and not os.access(tls_ca_file, os.R_OK):
        raise ConfigurationError(
            f"Setting 'kinto_emailer.tls_ca_file' must name a readable PEM file, "
            f"got {tls_ca_file!r}."
        )

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
        smtp_host=settings.get("mail.host") or "localhost",
        smtp_port=int(settings.get("mail.port") or 25),
        smtp_username=settings.get("mail.username") or None,
        smtp_password=settings.get("mail.password") or None,
        smtp_tls=tls,
        smtp_ssl=ssl,
        smtp_debug=int(settings.get("mail.debug") or 0),
        smtp_timeout=_positive(settings, "kinto_emailer.smtp_timeout", "10", float),
        tls_verify=_boolean(settings, "kinto_emailer.tls_verify", "true"),
        tls_ca_file=tls_ca_file,
        queue_size=_positive(settings, "kinto_emailer.queue_size", "10000"),
        queue_processor=queue_processor,
        queue_poll_interval=_positive(settings, "kinto_emailer.queue_poll_interval", "1", float),
        retry_max_attempts=_positive(settings, "kinto_emailer.retry_max_attempts", "8"),
        retry_base_delay=_positive(settings, "kinto_emailer.retry_base_delay", "1", float),
        retry_max_delay=_positive(settings, "kinto_emailer.retry_max_delay", "300", float),
        shutdown_timeout=_positive(settings, "kinto_emailer.shutdown_timeout", "10", float),
        max_digest_items=_positive(settings, "kinto_emailer.max_digest_items", "500"),
        hook_write_principals=tuple(
            aslist(settings.get("kinto_emailer.hook_write_principals") or "")
        ),
        sender_domains=_domains(settings, "kinto_emailer.sender_domains"),
        recipient_domains=_domains(settings, "kinto_emailer.recipient_domains"),
    )
