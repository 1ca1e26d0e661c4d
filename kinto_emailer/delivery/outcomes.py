"""What happened to each email: one log line and one count per outcome.

Lines carry the message id, the number of recipients, the hook's location and the reason;
never a subject, a body or an address (an address in a server's reply becomes
``[recipient]``). The recipients' addresses are logged at DEBUG only, on their own logger.
A Slack message's or a webhook's line starts with its channel ("Webhook retried") and names
its destination (the channel or the endpoint's name: never a URL); counts carry the channel.
"""

import logging
import re
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from ..log_values import fields, quoted
from ..outbox.statuses import Outcome


if TYPE_CHECKING:
    from ..outbox import Email


logger = logging.getLogger("kinto_emailer.outcomes")
addresses_logger = logging.getLogger("kinto_emailer.outcomes.addresses")

QUEUED, SENT, RETRIED = Outcome.QUEUED, Outcome.SENT, Outcome.RETRIED
FAILED, CANCELLED, DROPPED = Outcome.FAILED, Outcome.CANCELLED, Outcome.DROPPED
LEVELS: dict[str, int] = {
    QUEUED: logging.INFO,
    SENT: logging.INFO,
    RETRIED: logging.WARNING,
    FAILED: logging.ERROR,
    CANCELLED: logging.INFO,
    DROPPED: logging.ERROR,
}
REDACTED = "[recipient]"


def redact(text: str, addresses: Iterable[str]) -> str:
    for address in sorted({a for a in addresses if a}, key=len, reverse=True):
        text = re.sub(re.escape(address), REDACTED, text, flags=re.IGNORECASE)
    return text


def _log(
    outcome: str,
    email: "Email",
    level: int,
    reason: object,
    recipients: Iterable[str] | None,
    hide: Iterable[str],
    details: dict[str, Any],
) -> None:
    # Only when the line is written: at the default levels most outcomes aren't.
    recipients = list(email.recipients if recipients is None else recipients)
    filename = getattr(email, "filename", None)
    posted = email.channel != "email"
    values: dict[str, Any] = {
        "id": _message_id(email) or "-",
        "hook": email.location or "-",
        # Where a Slack message or a webhook goes: a name, never a URL.
        **({"destination": email.destination} if posted else {"recipients": len(recipients)}),
        **details,
    }
    if filename:
        values["file"] = filename.rsplit("/", 1)[-1]
    if reason is not None:
        values["reason"] = redact(str(reason), [*recipients, *email.recipients, *hide])
    extra = {
        "outcome": outcome,
        "message_id": values["id"],
        "hook": values["hook"],
        "recipient_count": len(recipients),
        "reason": values.get("reason"),
        "bucket_id": email.labels.get("bucket_id"),
        "collection_id": email.labels.get("collection_id"),
        "channel": email.channel,
        "destination": email.destination,
    }
    # The channel in words, first: "Email sent", "Slack message retried", "Webhook failed".
    if email.channel == "slack":
        logger.log(level, "Slack message %s: %s", outcome, fields(**values), extra=extra)
    elif email.channel == "webhook":
        logger.log(level, "Webhook %s: %s", outcome, fields(**values), extra=extra)
    else:
        logger.log(level, "Email %s: %s", outcome, fields(**values), extra=extra)


def _message_id(email: "Email") -> str:
    """What identifies it to its receiver: the Message-ID, the ``webhook-id``; a Slack
    message has none: its id in the outbox."""
    if email.channel == "webhook" and email.payload:
        return str(email.payload.get("id") or "")
    if email.channel == "slack":
        return email.id
    return email.message_id


#: ``count(outcome, labels)``: one more email of ``outcome``, labelled with its origin.
Counter = Callable[[str, dict[str, str | None]], None]


class Report:
    """Called from request threads and the delivery thread; ``count`` must be thread-safe."""

    def __init__(self, count: "Counter | None" = None) -> None:
        #: ``count(outcome, labels)``: the metrics service's (``web.health.Metrics``), if any.
        self.count = count

    def redact(self, reason: str, email: "Email", hide: Iterable[str] = ()) -> str:
        """``reason`` without the addresses of ``email`` nor those in ``hide``."""
        return redact(str(reason), [*email.recipients, *hide])

    def __call__(
        self,
        outcome: str,
        email: "Email",
        reason: object = None,
        recipients: Iterable[str] | None = None,
        hide: Iterable[str] = (),
        level: int | None = None,
        **details: Any,
    ) -> None:
        """Log one line about ``email`` (an outbox's ``Email``) and count it.

        ``recipients`` narrows the line to some of the email's recipients; addresses in
        ``hide`` are redacted from the reason too.
        """
        level = LEVELS[outcome] if level is None else level
        if logger.isEnabledFor(level):
            _log(outcome, email, level, reason, recipients, hide, details)
        if (
            outcome in (FAILED, DROPPED)
            and email.channel == "email"
            and addresses_logger.isEnabledFor(logging.DEBUG)
        ):
            recipients = list(email.recipients if recipients is None else recipients)
            message_id = email.message_id or "-"
            addresses_logger.debug(
                "Email %s %s to: %s",
                quoted(message_id),
                outcome,
                quoted(", ".join(recipients)),
                extra={"message_id": message_id, "outcome": outcome, "recipients": recipients},
            )
        if self.count is not None:
            try:
                self.count(outcome, {**email.labels, "channel": email.channel})
            except Exception:  # Metrics never stop an email nor break a write.
                logger.warning("Could not count an email %s", outcome, exc_info=True)
