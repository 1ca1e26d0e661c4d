"""How emails leave the process: into the outbox, to which the delivery worker listens; or
straight into ``.eml`` files with the debug mailer.

The delivery mode is decided here, once, from the settings.
"""

import json
import logging
import os
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kinto.core.storage import StorageBase
from pyramid_mailer.message import Message

from ..outbox import DraftCompleter, Email, Outbox, Window
from ..outbox.backends import open_outbox
from ..smtp import mime
from ..smtp.connection import SMTPTransport
from .optouts import OptOuts
from .outcomes import DROPPED, FAILED, QUEUED, SENT, Counter, Report
from .worker import Worker


if TYPE_CHECKING:
    from ..config import EmailerSettings

logger = logging.getLogger("kinto_emailer.delivery")


class DebugFiles:
    """``mail.debug_mailer``: each email written to a ``.eml`` file, the bytes SMTP would send.

    Not pyramid_mailer's ``DebugMailer``, which writes the email package's own rendering
    (quoted-printable iso-8859-1), so that ``grep`` finds in a file what a reader would see.
    """

    def __init__(self, directory: str):
        os.makedirs(directory, exist_ok=True)
        self.directory = directory

    def write(self, outgoing: mime.Outgoing) -> str:
        return self._write(outgoing.data, "eml")

    def write_json(self, payload: dict[str, Any]) -> str:
        """A Slack message or a webhook: what would be posted, in a ``.json`` file."""
        return self._write(json.dumps(payload, ensure_ascii=False, indent=2).encode(), "json")

    def _write(self, data: bytes, extension: str) -> str:
        # pyramid_mailer's names (time, then a random part): files sort as they were written.
        name = f"{time.strftime('%Y%m%d%H%M%S')}_{secrets.token_hex(4)}.{extension}"
        path = os.path.join(self.directory, name)
        with open(path, "xb") as f:
            f.write(data)
        return path


class Delivery:
    """Puts emails in the outbox (or the debug mailer's directory); never raises on a write
    but where the outbox is transactional, whose failure must fail the write with it."""

    def __init__(
        self,
        emailer_settings: "EmailerSettings",
        drafts: DraftCompleter,
        storage: StorageBase | None = None,
        count: Counter | None = None,
    ):
        self.settings = emailer_settings
        self.transport = SMTPTransport(emailer_settings)
        self.storage = storage  # Kinto's: where the worker reads the opt-outs.
        self.report = Report(count)
        self.debug_mailer: DebugFiles | None = None
        #: Where emails wait; ``None`` with the debug mailer, which writes them at once.
        self.outbox: Outbox | None = None
        self.worker: Worker | None = None
        if emailer_settings.debug_directory:
            self.debug_mailer = DebugFiles(emailer_settings.debug_directory)
        else:
            self.outbox = open_outbox(emailer_settings, self.render, drafts, storage)
            # Never with the debug mailer (``runs_worker``).
            if emailer_settings.runs_worker:
                self.worker = self.new_worker()
        if not emailer_settings.tls_verify:
            logger.warning(
                "kinto_emailer.tls_verify is false: the mail server's TLS certificate "
                "is not checked, anyone on the way can read and change emails."
            )

    def new_worker(self) -> Worker:
        """A worker for this outbox, transport and report: this process's (``worker``), or
        that of ``kinto-emailer worker``."""
        assert self.outbox is not None  # The debug mailer writes at once: no worker.
        optouts = OptOuts(self.storage)
        return Worker(
            self.settings, self.outbox, self.transport, self.render, self.report, optouts
        )

    @property
    def transactional(self) -> bool:
        """Whether ``put`` must be called inside the request's transaction."""
        return self.outbox is not None and self.outbox.transactional

    @property
    def windowed(self) -> bool:
        """Whether the outbox keeps time-window digests (else they are sent per request)."""
        return self.outbox is not None and self.outbox.windowed

    def render(self, message: Message) -> mime.Outgoing:
        return mime.render(message, self.settings.default_sender)

    def start(self) -> None:
        """Start the worker in this process, if it has one and it is not running yet."""
        if self.worker is not None:
            self.worker.ensure_started()

    def send_now(self, message: Message) -> None:
        """Send one message synchronously; raises what the transport raises."""
        if self.debug_mailer:
            self.debug_mailer.write(self.render(message))
        else:
            self.transport.send_one(self.render(message))

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until every email handed over so far was delivered or given up.

        Returns False when ``timeout`` seconds passed first. The public way for tests and
        scripts to wait for the worker.
        """
        return True if self.worker is None else self.worker.drain(timeout)

    def stop(self, timeout: float | None = None) -> bool:
        """Deliver what the worker holds within ``timeout`` (``shutdown_timeout``), then stop."""
        return True if self.worker is None else self.worker.stop(timeout)

    def put(self, emails: list[Email]) -> None:
        """Put ``emails`` in the outbox now and report them (``handoff`` within a request)."""
        refused = self.store(emails)
        if refused is not None:
            self.report_stored(emails, refused)

    def store(self, emails: list[Email]) -> list[tuple[Email, str]] | None:
        """Put ``emails`` in the outbox (or the debug mailer's directory), unreported; returns
        those refused by a limit, or ``None`` when they are reported already (written by the
        debug mailer, or failed). Raises where the outbox is transactional."""
        if not emails:
            return None
        outbox = self.outbox
        if outbox is None:
            self._write_debug_files(emails)
            return None
        try:
            return outbox.put(emails)
        except Exception as e:
            if outbox.transactional:
                raise  # The emails are part of the change: neither is committed.
            for email in emails:
                self.report(FAILED, email, f"could not store the email: {e}")
            return None

    def report_stored(self, emails: list[Email], refused: list[tuple[Email, str]]) -> None:
        """Report what ``store`` did with ``emails``: queued, or dropped by a limit."""
        refused_ids = {id(email) for email, _ in refused}
        for email, reason in refused:
            self.report(DROPPED, email, reason)
        # Where the outbox outlives the process, the email is safe: worth a line.
        durable = self.outbox is not None and self.outbox.durable
        level = logging.INFO if durable else logging.DEBUG
        for email in emails:
            if id(email) not in refused_ids:
                self.report(QUEUED, email, level=level)
        if self.worker is not None:
            self.worker.wake()

    def gather(self, windows: list[Window]) -> None:
        """Add a request's digest parts to their hooks' windows; as ``put`` on failure."""
        outbox = self.outbox
        if not windows or outbox is None:
            return
        try:
            refused = outbox.gather(windows)
        except Exception:
            if outbox.transactional:
                raise  # The window is part of the change: neither is committed.
            logger.exception("Could not add %d digest part(s) to their windows", len(windows))
            return
        for window, reason in refused:
            self._report_window(window, reason)
        if self.worker is not None:
            self.worker.wake()  # Its wait now ends when the first window closes.

    def _report_window(self, window: Window, reason: str) -> None:
        """A window that could not open: its changes make no email, as a dropped one."""
        messages = window.draft["messages"]
        recipients = [a for m in messages for a in (*m["recipients"], *m["cc"], *m["bcc"])]
        email = Email(
            None, window.location, bucket_id=window.bucket_id, collection_id=window.collection_id
        )
        self.report(DROPPED, email, reason, recipients=recipients, changes=window.count)

    def drop(self, email: Email, reason: str, **details: Any) -> None:
        """An email refused before it reaches the outbox; ``details`` go in the log line."""
        self.report(DROPPED, email, reason, **details)

    def _write_debug_files(self, emails: list[Email]) -> None:
        for email in emails:
            try:
                if email.payload is not None:  # Nothing leaves: Slack and webhooks neither.
                    assert self.debug_mailer is not None
                    self.debug_mailer.write_json(email.payload)
                    self.report(SENT, email, to="debug-mailer")
                    continue
                self.send_now(email.message)
                self.report(SENT, email, to="debug-mailer")
            except Exception as e:
                self.report(FAILED, email, f"could not write the email: {e}")


@dataclass
class Emailer:
    """What the plugin keeps in the registry (``registry.emailer``): read by the listener,
    the views and the command line."""

    settings: "EmailerSettings"
    delivery: Delivery
