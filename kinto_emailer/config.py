"""Every ``mail.*`` and ``kinto_emailer.*`` setting, read and checked once at start-up.

``EmailerSettings`` is the table: one line per setting gives its attribute, its key, its
default as it would be written in the ini file, and its conversion. Adding a setting is
adding a line; its key is then known, and any other ``kinto_emailer.*`` key is refused.
"""

import difflib
import hashlib
import hmac
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from pyramid.exceptions import ConfigurationError
from pyramid.settings import aslist

from .addresses import parse_address


PLUGIN_PREFIX = "kinto_emailer."
#: Kinto's own prefix: ``kinto.kinto_emailer.x`` in an ini file is ``kinto_emailer.x``.
KINTO_PREFIX = "kinto."
#: The only settings a template may read: anything else could be a secret.
EXPOSED_SETTINGS = ("project_name", "project_version", "url")
DEFAULT_SENDER = "kinto@localhost"

_TRUTHY = ("true", "yes", "on", "1", "t", "y")
_FALSY = ("false", "no", "off", "0", "f", "n", "none")


# Conversions: ``(key, raw text) -> value``; they raise ``ConfigurationError`` naming the key.


def text(key: str, raw: str) -> str:
    return raw


def optional(key: str, raw: str) -> str | None:
    return raw or None


# ASCII only: ``int`` and ``float`` also read "²", "١" or "1_0", and ``float`` "nan" and "inf".
_WHOLE = re.compile(r"[0-9]{1,30}", re.ASCII)
_DECIMAL = re.compile(
    r"(?:[0-9]{1,30}(?:\.[0-9]{0,30})?|\.[0-9]{1,30})(?:[eE][+-]?[0-9]{1,3})?", re.ASCII
)


@dataclass(frozen=True)
class Number:
    """A conversion that reads a finite number within ``[low, high]`` (``(low, high]`` when
    ``low_open``); its ``range`` says so in words, for the error message and the docs."""

    kind: type[int] | type[float]
    low: float
    high: float
    low_open: bool = False
    unit: str = ""
    optional: bool = False

    @property
    def range(self) -> str:
        what = "a whole number" if self.kind is int else "a number"
        if self.unit:
            what += f" of {self.unit}"
        low, high = _plain(self.low), _plain(self.high)
        if self.low_open:
            return f"{what} greater than {low} and at most {high}"
        return f"{what} from {low} to {high}"

    def __call__(self, key: str, raw: str) -> Any:
        if self.optional and not raw:
            return None
        pattern = _WHOLE if self.kind is int else _DECIMAL
        value = self.kind(raw) if pattern.fullmatch(raw) else None
        if value is None or not math.isfinite(value) or not self._within(value):
            raise ConfigurationError(f"Setting {key!r} must be {self.range}, got {raw!r}.")
        return value

    def _within(self, value: float) -> bool:
        above = value > self.low if self.low_open else value >= self.low
        return above and value <= self.high


def _plain(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else str(number)


# The bounds, chosen so that every use stays finite (a lease added to a date, a back-off
# doubled ``retry_max_attempts`` times, a count compared in SQL) and sensible.
PORT = Number(int, 1, 65535)
COUNT = Number(int, 1, 1_000_000)
BYTES = Number(int, 1, 10**12, unit="bytes")
SECONDS = Number(float, 0, 3600, low_open=True, unit="seconds")
UP_TO_A_DAY = Number(float, 0, 86400, low_open=True, unit="seconds")


def boolean(key: str, raw: str) -> bool:
    if raw.lower() not in _TRUTHY + _FALSY:
        raise ConfigurationError(f"Setting {key!r} must be true or false, got {raw!r}.")
    return raw.lower() in _TRUTHY


def address(key: str, raw: str) -> str:
    if parse_address(raw) is None:
        raise ConfigurationError(
            f"Setting {key!r} must be an email address such as 'Kinto <kinto@example.com>', "
            f"got {raw!r}."
        )
    return raw


def readable_file(key: str, raw: str) -> str | None:
    if raw and not os.access(raw, os.R_OK):
        raise ConfigurationError(f"Setting {key!r} must name a readable PEM file, got {raw!r}.")
    return raw or None


_DOMAIN = re.compile(r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*$")


def domains(key: str, raw: str) -> tuple[str, ...]:
    found = []
    for entry in aslist(raw, flatten=True):
        try:
            domain = entry.strip(",").lower().encode("idna").decode("ascii")
        except UnicodeError:
            domain = ""
        if not _DOMAIN.match(domain):
            raise ConfigurationError(f"Setting {key!r} must list domain names, got {entry!r}.")
        found.append(domain)
    return tuple(found)


def words(key: str, raw: str) -> tuple[str, ...]:
    return tuple(aslist(raw))


_PRINCIPAL_PREFIX = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*:$")


def principal_prefixes(key: str, raw: str) -> tuple[str, ...]:
    found = []
    for entry in aslist(raw, flatten=True):
        if not _PRINCIPAL_PREFIX.match(entry):
            raise ConfigurationError(
                f"Setting {key!r} must list user id prefixes, each an authentication "
                f"policy's name and a colon such as 'ldap:', got {entry!r}."
            )
        found.append(entry)
    return tuple(found)


OUTBOXES = ("memory", "postgresql")
POSTGRESQL_STORAGE = "kinto.core.storage.postgresql"


def outbox_choice(key: str, raw: str) -> str:
    if raw not in OUTBOXES:
        raise ConfigurationError(
            f"Setting {key!r} must be one of {', '.join(OUTBOXES)}, got {raw!r}."
        )
    return raw


def setting(key: str, default: str, convert: Callable[[str, str], Any]) -> Any:
    """One row of the table: read ``key`` (``default`` when unset or empty) with ``convert``;
    a ``Number`` conversion's ``range`` is kept with it, for the docs."""
    range_ = getattr(convert, "range", None)
    return field(metadata={"key": key, "default": default, "convert": convert, "range": range_})


@dataclass(frozen=True)
class EmailerSettings:
    # Emails: pyramid_mailer's names.
    default_sender: str = setting("mail.default_sender", DEFAULT_SENDER, address)
    queue_path: str | None = setting("mail.queue_path", "", optional)
    debug_mailer: bool = setting("mail.debug_mailer", "false", boolean)
    top_level_directory: str | None = setting("mail.top_level_directory", "", optional)
    smtp_host: str = setting("mail.host", "localhost", text)
    smtp_port: int = setting("mail.port", "25", PORT)
    smtp_username: str | None = setting("mail.username", "", optional)
    smtp_password: str | None = setting("mail.password", "", optional)
    smtp_tls: bool = setting("mail.tls", "false", boolean)
    smtp_ssl: bool = setting("mail.ssl", "false", boolean)
    smtp_debug: int = setting("mail.debug", "0", Number(int, 0, 2))
    # Hooks: limits on what metadata may ask for.
    max_hooks: int = setting("kinto_emailer.max_hooks", "50", COUNT)
    max_recipients: int = setting("kinto_emailer.max_recipients", "100", COUNT)
    max_expanded_recipients: int = setting("kinto_emailer.max_expanded_recipients", "1000", COUNT)
    max_template_length: int = setting(
        "kinto_emailer.max_template_length", "65536", Number(int, 1, 10_000_000, unit="characters")
    )
    max_digest_items: int = setting("kinto_emailer.max_digest_items", "500", COUNT)
    regex_timeout: float = setting(
        "kinto_emailer.regex_timeout", "0.1", Number(float, 0, 10, low_open=True, unit="seconds")
    )
    # Delivery: the worker, its retries, TLS.
    smtp_timeout: float = setting("kinto_emailer.smtp_timeout", "10", SECONDS)
    # Empty: six times smtp_timeout (connecting, or one email, is a few steps).
    exchange_timeout: float | None = setting(
        "kinto_emailer.smtp_exchange_timeout",
        "",
        Number(float, 0, 86400, low_open=True, unit="seconds", optional=True),
    )
    tls_verify: bool = setting("kinto_emailer.tls_verify", "true", boolean)
    tls_ca_file: str | None = setting("kinto_emailer.tls_ca_file", "", readable_file)
    queue_size: int = setting("kinto_emailer.queue_size", "10000", COUNT)
    queue_processor: bool = setting("kinto_emailer.queue_processor", "false", boolean)
    queue_poll_interval: float = setting(
        "kinto_emailer.queue_poll_interval", "1", Number(float, 0.01, 3600, unit="seconds")
    )
    retry_max_attempts: int = setting(
        "kinto_emailer.retry_max_attempts", "8", Number(int, 1, 1000)
    )
    retry_base_delay: float = setting("kinto_emailer.retry_base_delay", "1", SECONDS)
    retry_max_delay: float = setting("kinto_emailer.retry_max_delay", "300", UP_TO_A_DAY)
    shutdown_timeout: float = setting("kinto_emailer.shutdown_timeout", "10", SECONDS)
    # Where writers are not trusted: who writes hooks, and the domains they may mail.
    hook_write_principals: tuple[str, ...] = setting(
        "kinto_emailer.hook_write_principals", "", words
    )
    sender_domains: tuple[str, ...] = setting("kinto_emailer.sender_domains", "", domains)
    recipient_domains: tuple[str, ...] = setting("kinto_emailer.recipient_domains", "", domains)
    # Whose user id proves their address (``"notify_author": false``): none unless declared.
    verified_author_prefixes: tuple[str, ...] = setting(
        "kinto_emailer.verified_author_prefixes", "", principal_prefixes
    )
    # Empty: derived from Kinto's userid_hmac_secret.
    unsubscribe_secret: str | None = setting("kinto_emailer.unsubscribe_secret", "", optional)
    # The outbox: where emails wait, and the limits that keep buckets from starving others.
    outbox: str = setting("kinto_emailer.outbox", "memory", outbox_choice)
    outbox_worker: bool = setting("kinto_emailer.outbox_worker", "true", boolean)
    outbox_lease: float = setting("kinto_emailer.outbox_lease", "60", UP_TO_A_DAY)
    outbox_retention_days: float = setting(
        "kinto_emailer.outbox_retention_days",
        "7",
        Number(float, 0, 3650, low_open=True, unit="days"),
    )
    queue_bytes: int = setting("kinto_emailer.queue_bytes", "50000000", BYTES)
    max_request_bytes: int = setting("kinto_emailer.max_request_bytes", "5000000", BYTES)
    max_emails_per_hour: int = setting(
        "kinto_emailer.max_emails_per_hour", "0", Number(int, 0, 1_000_000)
    )
    # Kinto's own settings that the plugin reads.
    heartbeat_timeout: float = setting("heartbeat_timeout_seconds", "10", SECONDS)
    project_name: str = setting("project_name", "", text)
    project_version: str = setting("project_version", "", text)
    url: str = setting("url", "", text)
    storage_backend: str = setting("storage_backend", "", text)
    storage_url: str = setting("storage_url", "", text)
    userid_hmac_secret: str = setting("userid_hmac_secret", "", text)
    account_create_principals: tuple[str, ...] = setting("account_create_principals", "", words)

    @property
    def debug_directory(self) -> str | None:
        """Where the debug mailer writes its ``.eml`` files; ``None`` when it is off."""
        if not self.debug_mailer:
            return None
        return self.top_level_directory or os.path.join(".", "mail")

    @property
    def smtp_exchange_timeout(self) -> float:
        """The time one SMTP exchange (connecting, or one email) may take as a whole."""
        return self.exchange_timeout or 6 * self.smtp_timeout

    @property
    def outbox_name(self) -> str:
        """Where emails wait: ``postgresql``, ``maildir`` (``mail.queue_path``) or ``memory``."""
        return "maildir" if self.queue_path else self.outbox

    @property
    def runs_worker(self) -> bool:
        """Whether this process delivers: not with the debug mailer, nor to a Maildir that an
        external queue processor delivers, nor with ``kinto_emailer.outbox_worker = false``."""
        if self.debug_directory:
            return False
        if self.outbox_name == "maildir":
            return self.queue_processor
        return self.outbox_name == "memory" or self.outbox_worker

    @property
    def unsubscribe_key(self) -> bytes | None:
        """The key that signs unsubscribe links; ``None`` without a secret to derive it from."""
        if self.unsubscribe_secret:
            return self.unsubscribe_secret.encode("utf-8")
        if not self.userid_hmac_secret:
            return None
        # Derived: a signature never doubles as a user id hash, nor the reverse.
        secret = self.userid_hmac_secret.encode("utf-8")
        return hmac.new(secret, b"kinto-emailer unsubscribe", hashlib.sha256).digest()

    @property
    def exposed_settings(self) -> dict[str, str]:
        return {name: getattr(self, name) for name in EXPOSED_SETTINGS}


ROWS = {row.metadata["key"]: row for row in fields(EmailerSettings)}


def _raw(settings: Mapping[str, Any], key: str) -> str | None:
    # Kinto adds the unprefixed key (after its environment overrides); a bare ini has either.
    for name in (key, KINTO_PREFIX + key):
        value = settings.get(name)
        if value is not None and str(value).strip() != "":
            return str(value).strip()
    return None


def unknown_setting(settings: Mapping[str, Any]) -> str | None:
    """The first ``kinto_emailer.*`` key that is not a setting of the plugin, if any."""
    keys = {key.removeprefix(KINTO_PREFIX) for key in settings}
    unknown = sorted(k for k in keys if k.startswith(PLUGIN_PREFIX) and k not in ROWS)
    return unknown[0] if unknown else None


def _refuse_unknown(settings: Mapping[str, Any]) -> None:
    key = unknown_setting(settings)
    if key is None:
        return
    known = [k for k in ROWS if k.startswith(PLUGIN_PREFIX)]
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.8)
    hint = f"did you mean {close[0]!r}?" if close else "kinto-emailer has no such setting."
    raise ConfigurationError(f"Unknown setting {key!r}; {hint}")


def read_settings(settings: Mapping[str, Any]) -> EmailerSettings:
    """Read the plugin's settings; a bad one raises ``ConfigurationError`` naming its key."""
    _refuse_unknown(settings)
    values = {}
    for key, row in ROWS.items():
        raw = _raw(settings, key)
        raw = row.metadata["default"] if raw is None else raw
        values[row.name] = row.metadata["convert"](key, raw)
    emailer_settings = EmailerSettings(**values)
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
