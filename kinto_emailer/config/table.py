"""The settings table: one line per setting gives its attribute, its key, its default as it
would be written in the ini file, and its conversion; and what the plugin derives from them."""

import hashlib
import hmac
import os
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

from .channels import Channels
from .conversions import (
    BYTES,
    COUNT,
    PORT,
    SECONDS,
    UP_TO_A_DAY,
    Number,
    address,
    boolean,
    domains,
    optional,
    outbox_choice,
    principal_prefixes,
    readable_file,
    text,
    words,
)


#: The only settings a template may read: anything else could be a secret.
EXPOSED_SETTINGS = ("project_name", "project_version", "url")
DEFAULT_SENDER = "kinto@localhost"


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
    # Slack and webhooks: one HTTP request, connection and reply included (``channels``).
    http_timeout: float = setting("kinto_emailer.http_timeout", "15", SECONDS)
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
    # The worker's statements prepared once per connection; ``false`` behind a pooler that
    # hands a transaction any server connection (PgBouncer's transaction mode).
    outbox_prepared: bool = setting("kinto_emailer.outbox_prepared", "true", boolean)
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
    # Slack and webhooks: keys named by the operator, read apart (``channels``).
    channels: Channels = field(default_factory=Channels)

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


#: The table's rows; ``channels`` is read apart (``channels.read_channels``): its keys are
#: named by the operator.
ROWS = {row.metadata["key"]: row for row in fields(EmailerSettings) if "key" in row.metadata}
