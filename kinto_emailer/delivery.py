"""How emails leave the process: SMTP, a Maildir queue, or debug files.

Called only after the transaction has committed, so nothing here joins a transaction.
"""

import logging
from dataclasses import dataclass, field
from email.header import Header

from pyramid_mailer.mailer import DebugMailer, Mailer
from pyramid_mailer.message import Message
from repoze.sendmail.maildir import Maildir


logger = logging.getLogger(__name__)


@dataclass
class Envelope:
    """An email ready to leave, with where it came from for the logs."""

    message: Message
    location: str = ""
    labels: dict = field(default_factory=dict)

    @property
    def message_id(self):
        return self.message.extra_headers.get("Message-ID", "")


def to_mime(message, default_sender):
    message.sender = message.sender or default_sender
    return message.to_message()


def write_to_maildir(path, message, default_sender):
    """Put a message in a Maildir's ``new/``, readable by repoze.sendmail's ``qp``."""
    mime = to_mime(message, default_sender)
    mime["X-Actually-From"] = Header(message.sender, "utf-8")
    mime["X-Actually-To"] = Header(",".join(message.send_to), "utf-8")
    # Written to tmp/ then renamed: a reader never sees half a message.
    Maildir(path, create=True).add(mime).commit()


class Delivery:
    """Sends messages with the configured transport; every failure is logged, none raised."""

    def __init__(self, emailer_settings, settings):
        self.settings = emailer_settings
        if emailer_settings.debug_directory:
            self.mailer = DebugMailer(emailer_settings.debug_directory)
        else:
            mail_settings = {k: v for k, v in settings.items() if k.startswith("mail.")}
            mail_settings.pop("mail.queue_path", None)
            self.mailer = Mailer.from_settings(mail_settings)

    def send_now(self, message):
        """Send one message synchronously; raises what the transport raises."""
        message.sender = message.sender or self.settings.default_sender
        self.mailer.send_immediately(message)

    def drain(self, timeout=None):
        """Wait until every email handed over so far has left; True when none is pending.

        Sending is synchronous here, so nothing is ever pending.
        """
        return True

    def deliver(self, envelopes):
        for envelope in envelopes:
            try:
                if self.settings.queue_path:
                    write_to_maildir(
                        self.settings.queue_path, envelope.message, self.settings.default_sender
                    )
                else:
                    self.send_now(envelope.message)
            except Exception as e:
                logger.error(
                    "Could not send email %s from hook %s to %d recipient(s): %s",
                    envelope.message_id,
                    envelope.location,
                    len(envelope.message.send_to),
                    e,
                )
            else:
                logger.info(
                    "Sent email %s from hook %s to %d recipient(s)",
                    envelope.message_id,
                    envelope.location,
                    len(envelope.message.send_to),
                )
