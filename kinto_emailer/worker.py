"""The delivery worker: a thread per process that sends emails off the request path.

It starts on first use in the process that serves requests (never before a pre-forking
server forks), takes emails from a bounded in-memory queue or from a shared Maildir, and
delivers what it holds at exit within ``kinto_emailer.shutdown_timeout`` (see ``shutdown``).
"""

import logging
import os
import threading
import time
import weakref
from collections import deque

from . import maildir
from .report import DROPPED, FAILED
from .sender import Job, Sender


logger = logging.getLogger(__name__)

#: Emails taken per round, so that retries that fall due are interleaved with new ones.
BURST = 100
#: Seconds an idle SMTP session stays open (servers wait at least 5 minutes, RFC 5321).
KEEP_ALIVE = 5.0
#: Seconds the worker waits once woken: the request that handed emails over finishes
#: first (the worker would compete with it for the GIL), and a burst gathers.
LINGER = 0.005
_workers = weakref.WeakSet()


class Worker:
    def __init__(self, settings, transport, render, report):
        self.settings = settings
        self.transport = transport
        self.render = render
        self.report = report
        self._queue = None
        self._reset()
        _workers.add(self)

    def _reset(self):
        # Also in a forked child: the parent's thread is not there, its locks may be held.
        if self._queue is not None:
            self._queue.forget()  # The parent's claims stay the parent's.
        self._pid = None
        self._thread = None
        self._start_lock = threading.Lock()
        self._condition = threading.Condition()
        self._wakeup = threading.Event()
        self._incoming = deque()
        self._held = 0  # Accepted in memory, not yet delivered nor given up.
        self._stopping = False
        self._next_recovery = 0.0
        self._queue = None
        self._sender = Sender(
            self.settings, self.transport, self._finish, self._narrow, self.report
        )

    def ensure_started(self):
        if self._pid == os.getpid():
            return
        with self._start_lock:
            if self._pid == os.getpid():
                return
            if self._pid is not None:
                self._reset()
            if self.settings.queue_processor:
                self._queue = maildir.MaildirQueue(self.settings.queue_path)
                self._queue.open()
            self._thread = threading.Thread(
                target=self._run, name="kinto-emailer-delivery", daemon=True
            )
            self._thread.start()
            self._pid = os.getpid()

    def submit(self, envelopes):
        """Hand emails over; never blocks. Returns those dropped because the queue is full."""
        self.ensure_started()
        dropped = []
        with self._condition:
            for envelope in envelopes:
                if self._held >= self.settings.queue_size or self._stopping:
                    dropped.append(envelope)
                    continue
                self._held += 1
                self._incoming.append(Job(envelope))
        self._wakeup.set()
        return dropped

    @property
    def stopping(self):
        return self._stopping

    def wake(self):
        self.ensure_started()
        self._wakeup.set()

    def _idle(self):
        if self._held:
            return False
        return self._queue is None or self._queue.claim_dir is None or not self._queue.waiting()

    def drain(self, timeout=None):
        """Wait until everything handed over was delivered or given up; False on time-out."""
        if self.settings.queue_processor:
            self.ensure_started()
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._condition:
            while not self._idle():
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                # Other processes add to a shared Maildir without telling us: look again.
                poll = 0.05 if self._queue else None
                self._condition.wait(min(filter(None, (remaining, poll)), default=None))
        return True

    def stop(self, timeout=None):
        """Deliver what is held within ``timeout`` seconds, then end the thread."""
        return not self.begin_stop(timeout) or self.wait_stopped(timeout)

    def begin_stop(self, timeout=None):
        if self._thread is None or self._pid != os.getpid() or self._stopping:
            return False
        timeout = self.settings.shutdown_timeout if timeout is None else timeout
        with self._condition:
            self._stopping = True
            # Read by the sender before each email: a burst under way stops at the deadline.
            self._sender.deadline = time.monotonic() + timeout
            held = self._held
        if held:
            logger.info("Stopping delivery: %d email(s) to deliver within %gs", held, timeout)
        self._wakeup.set()
        return True

    def wait_stopped(self, timeout=None):
        timeout = self.settings.shutdown_timeout if timeout is None else timeout
        # A connection under way may outlast the deadline by up to smtp_timeout.
        self._thread.join(timeout + self.settings.smtp_timeout + 1)
        if self._thread.is_alive():
            logger.error("Delivery still busy at exit: %d email(s) may be lost", self._held)
            return False
        return True

    # The worker thread.

    def _run(self):
        last_sent = 0.0
        while True:
            try:
                jobs = self._ready_jobs()
                if jobs:
                    self._sender.send_burst(jobs)
                    last_sent = time.monotonic()
                    continue
                if self._stopping:
                    self._sender.close()
                    break
                # An open session spares the next email a connection and a greeting.
                idle_for = KEEP_ALIVE - (time.monotonic() - last_sent)
                if idle_for <= 0:
                    self._sender.close()
                wait = self._next_wait()
                if self._sender.connection is not None:
                    wait = idle_for if wait is None else min(wait, idle_for)
                if self._wakeup.wait(wait):
                    time.sleep(LINGER)
                self._wakeup.clear()
            except Exception:  # Never let the thread die: log and go on.
                logger.exception("Delivery worker error")
                time.sleep(self.settings.retry_base_delay)
        self._report_leftovers()

    def _ready_jobs(self):
        jobs = []
        while self._incoming and len(jobs) < BURST:
            jobs.append(self._incoming.popleft())
        now = time.monotonic()
        jobs += self._sender.due(BURST - len(jobs), now)
        if self._queue and not self._stopping:
            if now >= self._next_recovery:
                self._queue.recover()
                self._next_recovery = now + self.settings.queue_poll_interval
            limit = BURST - len(jobs)
            jobs += [Job(filename=filename) for filename in self._queue.claim(limit)]
        return [job for job in jobs if self._prepare(job)]

    def _prepare(self, job):
        if job.outgoing is not None:
            return True
        try:
            if job.filename:
                job.outgoing, job.location, job.labels = maildir.load(job.filename)
            else:
                job.outgoing = self.render(job.envelope.message)
        except Exception as e:
            self.report(FAILED, job, f"could not prepare the email: {e}")
            self._finish(job, delivered=False)
            return False
        return True

    def _next_wait(self):
        waits = []
        due = self._sender.next_due()
        if due is not None:
            waits.append(max(0.0, due - time.monotonic()))
        if self._queue:
            waits.append(self.settings.queue_poll_interval)
        return min(waits, default=None)

    def _finish(self, job, delivered):
        if job.filename:
            try:
                self._queue.done(job.filename) if delivered else self._queue.fail(job.filename)
            except OSError as e:
                logger.error("Could not remove %s from the Maildir: %s", job.filename, e)
        with self._condition:
            if not job.filename:
                self._held -= 1
            self._condition.notify_all()

    def _narrow(self, job):
        self._queue.narrow(job.filename, job.outgoing, job.location, job.labels)

    def _report_leftovers(self):
        leftovers = list(self._incoming) + self._sender.held()
        self._incoming.clear()
        lost = [job for job in leftovers if not job.filename]
        for job in lost:
            self.report(DROPPED, job, "not delivered at shutdown")
        left = self._queue.close() if self._queue else 0
        if lost:
            logger.error("Delivery stopped: %d email(s) could not be delivered in time", len(lost))
        if left:
            logger.warning("%d email(s) left in %s for the next start", left, self._queue.path)
        if not lost and not left:
            logger.info("Delivery stopped: nothing left to deliver")
        with self._condition:
            self._held = 0
            self._condition.notify_all()


def _reset_in_child():
    for worker in list(_workers):
        worker._reset()


def running_workers() -> list["Worker"]:
    """The workers of this process: ``shutdown`` stops them at exit."""
    return list(_workers)


os.register_at_fork(after_in_child=_reset_in_child)
