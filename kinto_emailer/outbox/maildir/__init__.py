"""The outbox in a Maildir (``mail.queue_path``): files that outlive the process, delivered
by this process's worker (``kinto_emailer.queue_processor``) or by an external queue
processor such as repoze.sendmail's ``qp``; shared by the processes of one host."""

import heapq
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from pyramid_mailer.message import Message

from ...log_values import quoted
from .. import (
    CANCELLED,
    FAILED,
    QUEUED,
    RETRYING,
    SENDING,
    SENT,
    DraftCompleter,
    Email,
    Outbox,
    probes,
)
from ..limits import HourlyLimit
from . import files
from .queue import MaildirQueue


if TYPE_CHECKING:
    from kinto.core.storage import StorageBase

    from ...config import EmailerSettings
    from ...smtp.mime import Outgoing

logger = logging.getLogger(__name__)


class MaildirOutbox(Outbox):
    name = "maildir"
    durable = True
    keeps_status = False
    bounded_queue = False  # Files wait for any queue processor: the disk is the bound.
    description = "the Maildir outbox (mail.queue_path)"
    sent_through = "the Maildir queue (mail.queue_path)"
    channels = frozenset({"email"})  # Its files are emails, for any queue processor.

    def __init__(self, settings: "EmailerSettings", render: Callable[[Message], "Outgoing"]):
        assert settings.queue_path is not None  # The Maildir outbox is mail.queue_path's.
        self.settings = settings
        self.path = settings.queue_path
        self.render = render  # Files hold the bytes for SMTP: rendered when written.
        self.hourly = HourlyLimit(settings.max_emails_per_hour)
        self._reset()

    @classmethod
    def from_settings(
        cls,
        settings: "EmailerSettings",
        render: Callable[[Message], "Outgoing"],
        drafts: DraftCompleter,
        storage: "StorageBase | None" = None,
    ) -> "MaildirOutbox":
        return cls(settings, render)

    def heartbeat(self) -> bool:
        # Where ``put`` writes a file first, before moving it into ``new/``.
        return probes.writable(os.path.join(self.path, "tmp"))

    def _reset(self) -> None:
        self._lock = threading.Lock()
        # Our claims, opened by the first claim: only workers claim.
        self._queue: MaildirQueue | None = None
        # Heap of (due, sequence, email): retries of the files we claimed.
        self._later: list[tuple[float, int, Email]] = []
        self._woken = threading.Event()
        self._sequence = itertools.count()
        self._next_recovery = 0.0
        self._recipients: dict[str, list[str]] = {}  # Claimed file -> the recipients it names.

    def put(self, emails: list[Email]) -> list[tuple[Email, str]]:
        refused: list[tuple[Email, str]] = []
        for email in emails:
            reason = self.hourly.refuse(email.bucket_id)
            if reason is not None:
                refused.append((email, reason))
                continue
            self.hourly.count(email.bucket_id)
            email.outgoing = self.render(email.message)
            path = files.write(self.path, email.outgoing, email.location, email.labels)
            email.filename, email.status = path, QUEUED
        self._woken.set()
        return refused

    def _claims(self) -> MaildirQueue:
        if self._queue is None:
            self._queue = MaildirQueue(self.path)
            self._queue.open()
        return self._queue

    def claim(self, limit: int) -> list[Email]:
        with self._lock:
            queue = self._claims()
            now = time.monotonic()
            emails: list[Email] = []
            while self._later and len(emails) < limit and self._later[0][0] <= now:
                emails.append(heapq.heappop(self._later)[2])
            if now >= self._next_recovery:
                queue.recover()
                self._next_recovery = now + self.settings.queue_poll_interval
            for filename in queue.claim(limit - len(emails)):
                outgoing, location, labels = files.load(filename)
                self._recipients[filename] = list(outgoing.recipients)
                emails.append(
                    Email(
                        None,
                        location=location,
                        bucket_id=labels.get("bucket_id") or None,
                        collection_id=labels.get("collection_id") or None,
                        outgoing=outgoing,
                        filename=filename,
                        size=len(outgoing.data),
                    )
                )
        for email in emails:
            email.status = SENDING
        return emails

    def _claimed(self, email: Email) -> tuple[MaildirQueue, str]:
        """The queue that claimed ``email``, and its file."""
        assert self._queue is not None and email.filename is not None, "claim() first"
        return self._queue, email.filename

    def sent(self, email: Email) -> None:
        email.status = SENT
        self._remove(email, self._claimed(email)[0].done)

    def failed(self, email: Email, error: str) -> None:
        email.status, email.error = FAILED, error
        self._remove(email, self._claimed(email)[0].fail)

    def cancelled(self, email: Email, reason: str) -> None:
        # Nothing to keep it for: this outbox keeps no status, and nobody is left to send to.
        email.status, email.error = CANCELLED, reason
        self._remove(email, self._claimed(email)[0].done)

    def _remove(self, email: Email, how: Callable[[str], None]) -> None:
        _, filename = self._claimed(email)
        self._recipients.pop(filename, None)
        try:
            how(filename)
        except OSError as e:
            logger.error(
                "Could not remove %s from the Maildir: %s",
                quoted(email.filename),
                quoted(e),
                extra={"file": email.filename, "error": str(e)},
            )

    def retry(self, email: Email, delay: float, error: str) -> None:
        email.status, email.error = RETRYING, error
        queue, filename = self._claimed(email)
        assert email.outgoing is not None  # Claimed from a file.
        if email.outgoing.recipients != self._recipients.get(filename):
            # The file keeps only the recipients still to try: a process that takes it over
            # after we die doesn't send twice to those that accepted it.
            queue.narrow(filename, email.outgoing, email.location, email.labels)
            self._recipients[filename] = list(email.outgoing.recipients)
        with self._lock:
            heapq.heappush(self._later, (time.monotonic() + delay, next(self._sequence), email))

    def release(self, emails: list[Email]) -> None:
        with self._lock:
            for email in emails:
                queue, filename = self._claimed(email)
                self._recipients.pop(filename, None)
                queue.give_back(filename)
                email.status = QUEUED

    def hurry(self) -> None:
        with self._lock:
            self._later = [(0.0, sequence, email) for _, sequence, email in self._later]
            heapq.heapify(self._later)

    def pending(self) -> int:
        with self._lock:
            return self._claims().waiting()

    def next_due(self) -> float | None:
        with self._lock:
            if self._later:
                return max(0.0, self._later[0][0] - time.monotonic())
        return None

    def wait(self, timeout: float | None) -> bool:
        # Other processes write without telling us: the worker's poll finds their files.
        woken = self._woken.wait(timeout)
        self._woken.clear()
        return woken

    def wake(self) -> None:
        self._woken.set()

    def close(self) -> None:
        with self._lock:
            if self._queue is not None:
                self._queue.close()
                self._queue = None
            self._later = []

    def reset_after_fork(self) -> None:
        if self._queue is not None:
            self._queue.forget()  # The parent's claims stay the parent's.
        self._reset()
