"""Rounds of emails over one SMTP connection, and what each outcome leads to: done, tried
again later with exponential backoff and jitter, or given up and logged."""

import heapq
import itertools
import random
import smtplib
import time
from collections import deque

from .report import FAILED, RETRIED, SENT
from .transport import PermanentFailure, TemporaryFailure, classify


class Job:
    """One email in the worker's hands: from memory (``envelope``) or from the Maildir."""

    def __init__(self, envelope=None, filename=None):
        self.envelope, self.filename = envelope, filename
        # A Maildir file's are read from its headers when it is prepared.
        self.location = envelope.location if envelope else ""
        self.labels = envelope.labels if envelope else {}
        self.outgoing = None
        self.attempts = 0

    @property
    def message_id(self):
        if self.outgoing is not None:
            return self.outgoing.message_id
        return self.envelope.message_id if self.envelope else ""

    @property
    def recipients(self):
        if self.outgoing is not None:
            return self.outgoing.recipients
        return self.envelope.recipients if self.envelope else []


class Sender:
    """Owned by the worker thread. ``finish(job, delivered)`` is called once per email."""

    def __init__(self, settings, transport, finish, narrow, report):
        self.settings = settings
        self.transport = transport
        self.finish = finish
        self.narrow = narrow  # Keeps a Maildir file's recipients to those still to try.
        self.report = report
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
                closed = isinstance(e, smtplib.SMTPServerDisconnected) and not connection.expired
                if connection.sent and closed:
                    self.again.append(job)  # Not the email's fault: once more, afresh.
                    return
            self.failed(job, classify(e))
            return
        if refused:
            self._partly_refused(job, refused)
            return
        self.report(SENT, job)
        self.finish(job, delivered=True)

    def _partly_refused(self, job, refused):
        later = [rcpt for rcpt, (code, _) in refused.items() if 400 <= code < 500]
        never = [rcpt for rcpt in refused if rcpt not in later]
        accepted = [rcpt for rcpt in job.outgoing.recipients if rcpt not in refused]
        self.report(SENT, job, recipients=accepted)
        if never:
            reason = f"permanent: {_reasons(refused, never)}"
            attempts = job.attempts + 1
            self.report(FAILED, job, reason, recipients=never, hide=refused, attempts=attempts)
        if not later:
            self.finish(job, delivered=True)
            return
        job.outgoing.recipients = later
        if job.filename:
            self.narrow(job)
        self.failed(job, TemporaryFailure(_reasons(refused, later)), hide=refused)

    def failed(self, job, failure, hide=()):
        if isinstance(failure, PermanentFailure):
            self.report(FAILED, job, f"permanent: {failure}", hide=hide, attempts=job.attempts + 1)
            self.finish(job, delivered=False)
            return
        job.attempts += 1
        if job.attempts >= self.settings.retry_max_attempts:
            reason = f"gave up after {job.attempts} attempt(s): {failure}"
            self.report(FAILED, job, reason, hide=hide, attempts=job.attempts)
            self.finish(job, delivered=False)
        elif self.deadline is not None:
            self.leftover.append(job)
        else:
            delay = self.backoff(job.attempts)
            attempt = f"{job.attempts}/{self.settings.retry_max_attempts}"
            again = f"{delay:.2f}s"
            self.report(RETRIED, job, failure, hide=hide, attempt=attempt, retry_in=again)
            due = time.monotonic() + delay
            heapq.heappush(self.retries, (due, next(self.sequence), job))

    def backoff(self, attempts):
        settings = self.settings
        delay = min(settings.retry_max_delay, settings.retry_base_delay * 2 ** (attempts - 1))
        # Jitter: processes that failed together don't all come back at the same instant.
        return random.uniform(delay / 2, delay)


def _reasons(refused, recipients):
    """One reply per line of text: ``550 5.1.1 unknown user (2 recipients)``."""
    counts = {}
    for rcpt in recipients:
        reply = " ".join(str(part) for part in refused[rcpt])
        counts[reply] = counts.get(reply, 0) + 1
    return "; ".join(f"{reply} ({n} recipient(s))" for reply, n in counts.items())
