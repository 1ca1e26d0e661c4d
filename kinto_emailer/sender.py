"""Rounds of emails over one SMTP connection, and what each outcome leads to: done, tried
again later with exponential backoff and jitter, or given up and logged."""

import heapq
import itertools
import logging
import random
import smtplib
import time
from collections import deque

from .transport import PermanentFailure, TemporaryFailure, classify


logger = logging.getLogger(__name__)


class Job:
    """One email in the worker's hands: from memory (``envelope``) or from the Maildir."""

    def __init__(self, envelope=None, filename=None):
        self.envelope, self.filename = envelope, filename
        self.location = f"hook {envelope.location}" if envelope else f"Maildir file {filename}"
        self.outgoing = None
        self.attempts = 0

    def describe(self):
        if self.outgoing is not None:
            return f"{self.outgoing.describe()} ({self.location})"
        return f"{self.envelope.describe()} ({self.location})"


class Sender:
    """Owned by the worker thread. ``finish(job, delivered)`` is called once per email."""

    def __init__(self, settings, transport, finish, narrow):
        self.settings = settings
        self.transport = transport
        self.finish = finish
        self.narrow = narrow  # Keeps a Maildir file's recipients to those still to try.
        self.connection = None
        self.retries = []  # Heap of (due, sequence, job).
        self.again = deque()  # To send at once: the server closed a session we reused.
        self.sequence = itertools.count()
        self.leftover = []
        self.deadline = None  # Set at shutdown: no retry after it, nothing waits for later.

    def due(self, limit, now):
        jobs = []
        while self.again and len(jobs) < limit:
            jobs.append(self.again.popleft())
        while self.retries and len(jobs) < limit:
            if self.deadline is None and self.retries[0][0] > now:
                break
            jobs.append(heapq.heappop(self.retries)[2])
        return jobs

    def next_due(self):
        return self.retries[0][0] if self.retries else None

    def held(self):
        """Every email still waiting for another try; they are forgotten here."""
        jobs = list(self.again) + [job for *_, job in self.retries] + self.leftover
        self.again.clear()
        self.retries.clear()
        self.leftover = []
        return jobs

    def send_burst(self, jobs):
        for index, job in enumerate(jobs):
            if self.deadline is not None and time.monotonic() > self.deadline:
                self.leftover += jobs[index:]
                return
            if self.connection is None:
                try:
                    self.connection = self.transport.connect()
                except Exception as e:
                    # The server can't be reached: every email of this round waits.
                    failure = classify(e)
                    for waiting in jobs[index:]:
                        self.failed(waiting, failure)
                    return
            self._send(job)

    def close(self):
        if self.connection is not None:
            connection, self.connection = self.connection, None
            connection.close()

    def _send(self, job):
        connection = self.connection
        try:
            refused = connection.send(job.outgoing)
        except Exception as e:
            # After a reply the session goes on; after anything else it is unusable.
            if not isinstance(e, smtplib.SMTPResponseException | smtplib.SMTPRecipientsRefused):
                self.close()
                if connection.sent and isinstance(e, smtplib.SMTPServerDisconnected):
                    self.again.append(job)  # Not the email's fault: once more, afresh.
                    return
            self.failed(job, classify(e))
            return
        if refused:
            self._partly_refused(job, refused)
            return
        logger.info(
            "Sent email %s (%s) to %d recipient(s)",
            job.outgoing.message_id,
            job.location,
            len(job.outgoing.recipients),
        )
        self.finish(job, delivered=True)

    def _partly_refused(self, job, refused):
        later = [rcpt for rcpt, (code, _) in refused.items() if 400 <= code < 500]
        never = {rcpt: reply for rcpt, reply in refused.items() if rcpt not in later}
        if never:
            logger.error(
                "Email %s %r (%s) refused for %s",
                job.outgoing.message_id,
                job.outgoing.subject,
                job.location,
                "; ".join(f"{rcpt}: {code} {text}" for rcpt, (code, text) in never.items()),
            )
        if not later:
            self.finish(job, delivered=True)
            return
        job.outgoing.recipients = later
        if job.filename:
            self.narrow(job.filename, job.outgoing)
        reasons = "; ".join(f"{rcpt}: {refused[rcpt][0]} {refused[rcpt][1]}" for rcpt in later)
        self.failed(job, TemporaryFailure(reasons))

    def failed(self, job, failure):
        if isinstance(failure, PermanentFailure):
            logger.error("Could not send %s: %s", job.describe(), failure)
            self.finish(job, delivered=False)
            return
        job.attempts += 1
        if job.attempts >= self.settings.retry_max_attempts:
            logger.error(
                "Gave up on %s after %d attempt(s): %s", job.describe(), job.attempts, failure
            )
            self.finish(job, delivered=False)
        elif self.deadline is not None:
            self.leftover.append(job)
        else:
            delay = self.backoff(job.attempts)
            logger.warning(
                "Could not send email %s (attempt %d of %d), trying again in %.2f s: %s",
                job.outgoing.message_id,
                job.attempts,
                self.settings.retry_max_attempts,
                delay,
                failure,
            )
            due = time.monotonic() + delay
            heapq.heappush(self.retries, (due, next(self.sequence), job))

    def backoff(self, attempts):
        settings = self.settings
        delay = min(settings.retry_max_delay, settings.retry_base_delay * 2 ** (attempts - 1))
        # Jitter: processes that failed together don't all come back at the same instant.
        return random.uniform(delay / 2, delay)
