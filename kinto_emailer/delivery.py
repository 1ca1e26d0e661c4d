"""How emails leave the process: the delivery worker, a Maildir queue, or debug files.

Called only after the transaction has committed, so nothing here joins a transaction.
"""

import logging
import os
from dataclasses import dataclass, field

from pyramid_mailer.mailer import DebugMailer
from pyramid_mailer.message import Message

from . import maildir, mime
from .report import DROPPED, FAILED, QUEUED, SENT, Report
from .transport import SMTPTransport
from .worker import Worker


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

    @property
    def recipients(self):
        message = self.message
        return [*message.recipients, *(message.cc or ()), *(message.bcc or ())]


class Delivery:
    """Hands emails to the worker, the Maildir or the debug mailer; never raises on a write.

    - debug mailer: ``.eml`` files, written at once;
    - ``mail.queue_path``: the Maildir, written at once; delivered by this process's worker
      with ``kinto_emailer.queue_processor``, else by an external queue processor;
    - otherwise: the in-memory queue of the worker, which speaks SMTP.
    """

    def __init__(self, emailer_settings):
        self.settings = emailer_settings
        self.transport = SMTPTransport(emailer_settings)
        self.debug_mailer = None
        self.worker = None
        self.report = Report()
        if emailer_settings.debug_directory:
            self.debug_mailer = DebugMailer(emailer_settings.debug_directory)
        elif not emailer_settings.queue_path or emailer_settings.queue_processor:
            self.worker = Worker(emailer_settings, self.transport, self.render, self.report)
        if not emailer_settings.tls_verify:
            logger.warning(
                "kinto_emailer.tls_verify is false: the mail server's TLS certificate "
                "is not checked, anyone on the way can read and change emails."
            )

    def render(self, message):
        return mime.render(message, self.settings.default_sender)

    def start(self):
        """Start the worker in this process, if it has one and it is not running yet."""
        if self.worker is not None:
            self.worker.ensure_started()

    def send_now(self, message):
        """Send one message synchronously; raises what the transport raises."""
        if self.debug_mailer:
            message.sender = message.sender or self.settings.default_sender
            self.debug_mailer.send_immediately(message)
        else:
            self.transport.send_one(self.render(message))

    def drain(self, timeout=None):
        """Wait until every email handed over so far was delivered or given up.

        Returns False when ``timeout`` seconds passed first. The public way for tests and
        scripts to wait for the worker.
        """
        return True if self.worker is None else self.worker.drain(timeout)

    def stop(self, timeout=None):
        """Deliver what the worker holds within ``timeout`` (``shutdown_timeout``), then stop."""
        return True if self.worker is None else self.worker.stop(timeout)

    def deliver(self, envelopes):
        if self.debug_mailer or self.settings.queue_path:
            self._store(envelopes)
            if self.worker is not None:
                self.worker.wake()
            return
        dropped = {id(envelope) for envelope in self.worker.submit(envelopes)}
        reason = f"queue full (kinto_emailer.queue_size = {self.settings.queue_size})"
        if self.worker.stopping:
            reason = "delivery is shutting down"
        for envelope in envelopes:
            if id(envelope) in dropped:
                self.report(DROPPED, envelope, reason)
            else:
                self.report(QUEUED, envelope, level=logging.DEBUG)

    def _store(self, envelopes):
        for envelope in envelopes:
            try:
                if self.debug_mailer:
                    self.send_now(envelope.message)
                    self.report(SENT, envelope, to="debug-mailer")
                else:
                    outgoing = self.render(envelope.message)
                    path = maildir.write(
                        self.settings.queue_path, outgoing, envelope.location, envelope.labels
                    )
                    name = os.path.basename(path)
                    self.report(QUEUED, envelope, recipients=outgoing.recipients, file=name)
            except Exception as e:
                self.report(FAILED, envelope, f"could not store the email: {e}")
