"""Rounds of emails over one SMTP connection, and what each outcome leads to: sent, tried
again later with exponential backoff and jitter, or given up; each told to the outbox and
to the report."""

import smtplib
import threading
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from ..outbox import Email, Outbox, refusal
from ..smtp.connection import (
    PermanentFailure,
    Refused,
    SMTPConnection,
    SMTPTransport,
    TemporaryFailure,
    classify,
)
from ..smtp.deadline import Clock
from .outcomes import FAILED, SENT, Report
from .retries import after_failure


if TYPE_CHECKING:
    from ..config import EmailerSettings


class Sender:
    """Owned by the worker thread."""

    def __init__(
        self, settings: "EmailerSettings", transport: SMTPTransport, outbox: Outbox, report: Report
    ):
        self.settings = settings
        self.transport = transport
        self.outbox = outbox
        self.report = report
        self.connection: SMTPConnection | None = None
        #: Set at shutdown: no retry after it; what is left is given back to the outbox.
        self.deadline: float | None = None
        self.last_sent = 0.0
        # The clock of the session under way, for ``abandon`` from the stopping thread.
        self._clock_lock = threading.Lock()
        self._clock: Clock | None = None
        self._abandoned = False

    def abandon(self) -> None:
        """From another thread, once the stop's deadline passed: end the exchange under way
        at once (connecting, or an email), whatever the mail server does; none starts after."""
        with self._clock_lock:
            self._abandoned = True
            clock = self._clock
        if clock is not None:
            clock.abandon()

    def _connect(self) -> SMTPConnection:
        clock = self.transport.clock()
        with self._clock_lock:
            self._clock = clock
            if self._abandoned:
                clock.abandon()
        return self.transport.connect(clock=clock)

    def send_burst(self, emails: list[Email]) -> None:
        again: list[Email] = []  # The server closed a session we reused: not the email's fault.
        for index, email in enumerate(emails):
            if self.deadline is not None and time.monotonic() > self.deadline:
                self.outbox.release(emails[index:] + again)
                return
            if self.connection is None:
                try:
                    self.connection = self._connect()
                except Exception as e:
                    # The server can't be reached: every email of this round waits.
                    failure = classify(e)
                    for waiting in emails[index:] + again:
                        self.failed(waiting, failure)
                    return
            if not self.outbox.renew(email):
                continue  # Its lease ran out while the burst went on: another worker has it.
            if not self._send(email):
                again.append(email)
        if again:
            self.send_burst(again)

    def close(self) -> None:
        if self.connection is not None:
            connection, self.connection = self.connection, None
            connection.close()

    def _send(self, email: Email) -> bool:
        """False when the email must be sent again at once, on a new connection."""
        connection = self.connection
        assert connection is not None  # ``send_burst`` connects first.
        try:
            assert email.outgoing is not None  # Prepared by the worker.
            refused = connection.send(email.outgoing)
        except Exception as e:
            # After a reply the session goes on; after anything else it is unusable.
            if not isinstance(e, smtplib.SMTPResponseException | smtplib.SMTPRecipientsRefused):
                self.close()
                closed = isinstance(e, smtplib.SMTPServerDisconnected) and not connection.expired
                if connection.sent and closed:
                    return False
            if isinstance(e, smtplib.SMTPRecipientsRefused):
                self._all_refused(email, e)
            else:
                self.failed(email, classify(e))
            return True
        self.last_sent = time.monotonic()
        if refused:
            self._partly_refused(email, refused)
            return True
        email.attempts += 1
        self.report(SENT, email)
        self.outbox.sent(email)
        return True

    def _partly_refused(self, email: Email, refused: Refused) -> None:
        assert email.outgoing is not None  # Prepared by the worker.
        later = [rcpt for rcpt, (code, _) in refused.items() if 400 <= code < 500]
        never = [rcpt for rcpt in refused if rcpt not in later]
        accepted = [rcpt for rcpt in email.outgoing.recipients if rcpt not in refused]
        self.report(SENT, email, recipients=accepted)
        self._refused_for_good(email, refused, never)
        if never:
            reason = f"permanent: {_reasons(refused, never)}"
            attempts = email.attempts + 1
            self.report(FAILED, email, reason, recipients=never, hide=refused, attempts=attempts)
        if not later:
            email.attempts += 1
            self.outbox.sent(email)
            return
        # The next attempt goes to those that may still accept it.
        email.outgoing.recipients = later
        self.failed(email, TemporaryFailure(_reasons(refused, later)), hide=refused)

    def _all_refused(self, email: Email, error: smtplib.SMTPRecipientsRefused) -> None:
        """No recipient took it: those refused for good are kept as such, and the next
        attempt goes to those that may still accept it."""
        assert email.outgoing is not None  # Prepared by the worker.
        refused = error.recipients
        later = [rcpt for rcpt, (code, _) in refused.items() if 400 <= code < 500]
        never = [rcpt for rcpt in refused if rcpt not in later]
        self._refused_for_good(email, refused, never)
        if not (later and never):
            self.failed(email, classify(error))
            return
        reason = f"permanent: {_reasons(refused, never)}"
        attempts = email.attempts + 1
        self.report(FAILED, email, reason, recipients=never, hide=refused, attempts=attempts)
        email.outgoing.recipients = later
        self.failed(email, TemporaryFailure(_reasons(refused, later)), hide=refused)

    def _refused_for_good(
        self, email: Email, refused: Mapping[str, tuple[int, str | bytes]], never: list[str]
    ) -> None:
        """Kept with the email, for its status: the recipients refused for good, and why."""
        known = {entry["address"] for entry in email.refused}
        for rcpt in never:
            if rcpt not in known:
                code, reply = refused[rcpt]
                message = self.report.redact(_text(reply), email, hide=refused)
                email.refused.append(refusal(rcpt, code, message))

    def failed(self, email: Email, failure: Exception, hide: Iterable[str] = ()) -> None:
        permanent = isinstance(failure, PermanentFailure)
        stopping = self.deadline is not None
        after_failure(
            self.settings,
            self.outbox,
            self.report,
            email,
            failure,
            permanent=permanent,
            stopping=stopping,
            hide=hide,
        )


def _reasons(refused: Mapping[str, tuple[int, str | bytes]], recipients: list[str]) -> str:
    """One reply per line of text: ``550 5.1.1 unknown user (2 recipients)``."""
    counts: dict[str, int] = {}
    for rcpt in recipients:
        code, text = refused[rcpt]
        reply = f"{code} {_text(text)}"
        counts[reply] = counts.get(reply, 0) + 1
    return "; ".join(f"{reply} ({n} recipient(s))" for reply, n in counts.items())


def _text(reply: object) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
