"""The SMTP conversation: connecting with verified TLS, sending, and what a failure means."""

import logging
import smtplib
import ssl
from typing import TYPE_CHECKING

from . import pipelining
from .deadline import EXCHANGE_SETTING, BoundedSMTP, BoundedSMTP_SSL, BoundedSSLSocket, Clock
from .mime import Outgoing, seven_bit


if TYPE_CHECKING:
    from ..config import EmailerSettings


logger = logging.getLogger("kinto_emailer.transport")


class TemporaryFailure(Exception):
    """Worth trying again later: the server is down, busy, or answered 4xx."""


class PermanentFailure(Exception):
    """Trying again would fail the same way: a 5xx reply, or a certificate we don't trust."""


#: What a mail server said to each recipient it refused: ``{recipient: (code, reply)}``.
Refused = dict[str, tuple[int, str]]


def tls_context(settings: "EmailerSettings") -> ssl.SSLContext:
    """The system's trust store, plus ``kinto_emailer.tls_ca_file``; host names checked."""
    context = ssl.create_default_context()
    context.sslsocket_class = BoundedSSLSocket  # STARTTLS keeps the deadline.
    if settings.tls_ca_file:
        context.load_verify_locations(cafile=settings.tls_ca_file)
    if not settings.tls_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _reply_failure(code: int, reason: str) -> Exception:
    kind = TemporaryFailure if 400 <= code < 500 else PermanentFailure
    return kind(f"{code} {reason}")


def classify(error: BaseException) -> Exception:
    """Turn whatever smtplib or the socket raised into a temporary or a permanent failure."""
    if isinstance(error, TemporaryFailure | PermanentFailure):
        return error
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in error.recipients.values()]
        reasons = "; ".join(
            f"{rcpt}: {code} {_text(msg)}" for rcpt, (code, msg) in error.recipients.items()
        )
        temporary = any(400 <= code < 500 for code in codes)
        return (TemporaryFailure if temporary else PermanentFailure)(reasons)
    if isinstance(error, smtplib.SMTPResponseException):
        return _reply_failure(error.smtp_code, _text(error.smtp_error))
    if isinstance(error, ssl.SSLCertVerificationError):
        return PermanentFailure(f"TLS certificate refused: {error.verify_message or error}")
    if isinstance(error, smtplib.SMTPServerDisconnected):
        return TemporaryFailure(str(error) or type(error).__name__)
    # Before OSError, its base class: STARTTLS or AUTH not offered won't change by itself.
    if isinstance(error, smtplib.SMTPException):
        return PermanentFailure(str(error) or type(error).__name__)
    if isinstance(error, OSError | EOFError):  # Refused, reset, timed out, name not found.
        return TemporaryFailure(str(error) or type(error).__name__)
    return PermanentFailure(f"{type(error).__name__}: {error}")


def _text(reply: object) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)


class SMTPConnection:
    """One open SMTP session, reused for a burst of emails.

    Connecting (greeting, EHLO, STARTTLS, login) must end within the clock's limit, and so
    must each email and each command after it; each read or write within its step.
    """

    def __init__(self, settings: "EmailerSettings", context: ssl.SSLContext, clock: Clock):
        self.settings = settings
        self.sent = 0
        self.clock = clock
        host, port = settings.smtp_host, settings.smtp_port
        self.smtp: smtplib.SMTP
        if settings.smtp_ssl:
            self.smtp = BoundedSMTP_SSL(host, port, clock, context=context)
        else:
            self.smtp = BoundedSMTP(host, port, clock)
        try:
            self.smtp.set_debuglevel(settings.smtp_debug)
            if settings.smtp_tls:
                self.smtp.starttls(context=context)
            if settings.smtp_username:
                self.smtp.login(settings.smtp_username, settings.smtp_password or "")
            self.smtp.ehlo_or_helo_if_needed()  # Its extensions decide how 8bit text goes.
            # RFC 2920: MAIL, RCPT and DATA in one write, as production servers allow.
            self.pipelining = self.smtp.has_extn("pipelining")
        except BaseException:
            self.close()
            raise

    @property
    def expired(self) -> bool:
        """True once a deadline passed: the session is unusable, and the server to blame."""
        return self.clock.expired

    def send(self, outgoing: Outgoing) -> Refused:
        """Send; returns ``{recipient: (code, reply)}`` for the recipients that were refused.

        Raises when the server refuses the message or every recipient.
        """
        self.clock.start("take an email")
        data, options = outgoing.data, []
        if not data.isascii():
            if self.smtp.has_extn("8bitmime"):
                options = ["BODY=8BITMIME"]
            else:
                data = seven_bit(data)  # RFC 6152: 8bit only to a server that says it takes it.
        sender, recipients = outgoing.sender, outgoing.recipients
        if self.pipelining:
            refused = pipelining.sendmail(self.smtp, sender, recipients, data, options)
        else:
            refused = self.smtp.sendmail(sender, recipients, data, options)
        self.sent += 1
        return {rcpt: (code, _text(reply)) for rcpt, (code, reply) in refused.items()}

    def noop(self) -> bool:
        """True when the server answers ``NOOP`` with 250."""
        self.clock.start("answer NOOP")
        return self.smtp.noop()[0] == 250

    def close(self) -> None:
        # Saying goodbye gets one step, not a whole exchange.
        self.clock.start("answer QUIT", limit=self.clock.step)
        try:
            self.smtp.quit()
        except Exception:  # Already gone: closing is all that is left to do.
            self.smtp.close()


class SMTPTransport:
    """Opens connections to the configured mail server."""

    def __init__(self, settings: "EmailerSettings"):
        self.settings = settings
        self.context = tls_context(settings)

    @property
    def address(self) -> str:
        return f"{self.settings.smtp_host}:{self.settings.smtp_port}"

    def clock(self, timeout: float | None = None, setting: str = EXCHANGE_SETTING) -> Clock:
        """The time of a session's steps and exchanges: ``timeout``, named ``setting``, for
        each, instead of ``kinto_emailer.smtp_timeout`` and ``smtp_exchange_timeout``."""
        settings = self.settings
        if timeout is None:
            return Clock(settings.smtp_timeout, settings.smtp_exchange_timeout)
        return Clock(timeout, timeout, setting)

    def connect(
        self,
        timeout: float | None = None,
        setting: str = EXCHANGE_SETTING,
        clock: Clock | None = None,
    ) -> SMTPConnection:
        """An open session, on ``clock`` or on one made of ``timeout`` (see ``clock``)."""
        clock = clock or self.clock(timeout, setting)
        return SMTPConnection(self.settings, self.context, clock)

    def send_one(self, outgoing: Outgoing) -> None:
        """Send one email on a connection of its own; raises what smtplib raises."""
        connection = self.connect()
        try:
            refused = connection.send(outgoing)
        finally:
            connection.close()
        if refused:
            # Replies decoded to text, which ``classify`` reads as well as smtplib's bytes.
            raise smtplib.SMTPRecipientsRefused(refused)  # type: ignore[arg-type]
