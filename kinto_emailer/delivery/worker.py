"""The delivery worker: a thread that claims emails from the outbox and hands each to its
channel's sender, off the request path: emails to SMTP (``rounds``), Slack messages and
webhooks to HTTP (``posts``).

In a web process it starts on first use (never before a pre-forking server forks); in
``kinto-emailer worker`` it is the process's work. At exit it delivers what it holds within
``kinto_emailer.shutdown_timeout`` (see ``shutdown``), and gives back what it could not: at
that deadline the exchange under way is abandoned, whatever the mail server does.
"""

import logging
import os
import threading
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING

from pyramid_mailer.message import Message

from ..log_values import quoted
from ..outbox import SENDING, Email, Outbox
from .optouts import OptOuts
from .outcomes import DROPPED, FAILED, Report
from .posts import POSTED, Poster
from .rounds import Sender


if TYPE_CHECKING:
    from ..config import EmailerSettings
    from ..smtp.connection import SMTPTransport
    from ..smtp.mime import Outgoing


logger = logging.getLogger("kinto_emailer.worker")

#: Emails claimed per round, so that retries that fall due are interleaved with new ones.
BURST = 100
#: Seconds an idle SMTP session stays open (servers wait at least 5 minutes, RFC 5321).
KEEP_ALIVE = 5.0
#: Seconds the worker waits once woken: the request that handed emails over finishes
#: first (the worker would compete with it for the GIL), and a burst gathers.
LINGER = 0.005
#: Woken again within ``STEADY`` seconds of its last round's end, the worker is under a
#: steady stream of writes: it waits ``LINGER_STEADY`` instead, so that one round (one claim,
#: one write of outcomes, one wait) serves many emails rather than one or two each.
STEADY = 0.03
LINGER_STEADY = 0.1
#: Seconds between two purges of the ended emails kept for the status views.
PURGE_EVERY = 600.0
#: Seconds the thread gets, once its exchange is abandoned, to give back what it holds.
ABANDON_GRACE = 0.25
#: Seconds of ``shutdown_timeout`` kept for the process to give back what it holds and exit
#: (half of it when it is under two seconds): a stop then ends within ``shutdown_timeout``.
EXIT_RESERVE = 1.0
_workers: "weakref.WeakSet[Worker]" = weakref.WeakSet()


class Worker:
    def __init__(
        self,
        settings: "EmailerSettings",
        outbox: Outbox,
        transport: "SMTPTransport",
        render: Callable[[Message], "Outgoing"],
        report: Report,
        optouts: OptOuts | None = None,
    ):
        self.settings = settings
        #: Read for each burst, just before it is sent (Kinto's storage, if the app has one).
        self.optouts = optouts or OptOuts(None)
        self.outbox = outbox
        self.transport = transport
        self.render = render
        self.report = report
        self._reset()
        _workers.add(self)

    def _reset(self) -> None:
        # Also in a forked child: the parent's thread is not there, its locks may be held.
        self._pid: int | None = None
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._stopping = False
        self._stop_deadline = 0.0
        self._stopped = threading.Event()
        self._finish_lock = threading.Lock()
        #: The emails claimed by the round under way: given back if the thread can't be.
        self._burst: list[Email] = []
        self._round_ended = -STEADY  # ``time.monotonic()``: when the last round ended.
        self.sender = Sender(self.settings, self.transport, self.outbox, self.report)
        self.poster = Poster(self.settings, self.outbox, self.report)

    def ensure_started(self) -> None:
        if self._pid == os.getpid():
            return
        with self._start_lock:
            if self._pid == os.getpid():
                return
            self._thread = threading.Thread(
                target=self.run, name="kinto-emailer-delivery", daemon=True
            )
            self._thread.start()
            self._pid = os.getpid()

    @property
    def stopping(self) -> bool:
        return self._stopping

    def wake(self) -> None:
        self.ensure_started()
        self.outbox.wake()

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until every email in the outbox was delivered or given up; False on time-out."""
        self.ensure_started()
        deadline = None if timeout is None else time.monotonic() + timeout
        wait_idle = getattr(self.outbox, "wait_idle", None)
        if wait_idle is not None:
            return wait_idle(timeout)
        # Other processes add to a shared outbox without telling us: look again.
        while self.outbox.pending():
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return True

    def stop(self, timeout: float | None = None) -> bool:
        """Deliver what is held within ``timeout`` seconds, then end the thread."""
        return not self.begin_stop(timeout) or self.wait_stopped()

    def begin_stop(self, timeout: float | None = None) -> bool:
        if self._thread is None or self._pid != os.getpid() or self._stopping:
            return False
        timeout = self.settings.shutdown_timeout if timeout is None else timeout
        timeout = max(timeout - EXIT_RESERVE, timeout / 2)
        self._stopping = True
        self._stop_deadline = time.monotonic() + timeout
        # Read by the sender before each email: a burst under way stops at the deadline.
        self.sender.deadline = self.poster.deadline = self._stop_deadline
        if not self.outbox.durable:
            held = self.outbox.pending()
            if held:
                logger.info("Stopping delivery: %d email(s) to deliver within %gs", held, timeout)
            self.outbox.hurry()  # Retries don't wait for their time: there is no later.
        self.outbox.wake()
        return True

    def wait_stopped(self) -> bool:
        """Wait until the stop's deadline; False when what the thread held may be lost."""
        thread = self._thread
        assert thread is not None and self._stopping, "begin_stop() first"
        thread.join(max(0.0, self._stop_deadline - time.monotonic()))
        if thread.is_alive():
            # A server that trickles, says nothing or stalls holds no one past the deadline.
            self.sender.abandon()
            self.poster.abandon()
            thread.join(ABANDON_GRACE)
        if not thread.is_alive():
            return True
        # Blocked where no socket can be shut (a connection the server never completes, a
        # name to resolve): what it holds is given back for it, and the thread left. In a
        # thread of its own too: a database that hangs can't hold the exit either.
        logger.error("Delivery still busy at the deadline: what it holds is given up")
        given_back: list[bool] = []
        finisher = threading.Thread(
            target=self._finish_for_thread, args=(given_back,), daemon=True
        )
        finisher.start()
        finisher.join(ABANDON_GRACE)
        if not given_back:
            logger.error("Delivery stopped before what it held could be given back")
        return bool(given_back)

    def _finish_for_thread(self, given_back: list[bool]) -> None:
        held = [email for email in self._burst if email.status == SENDING]
        try:
            self.outbox.release(held)
        except Exception as e:  # The database may be gone: the leases expire instead.
            logger.warning("Delivery stopped: could not give back what it held: %s", quoted(e))
            return
        finally:
            self._finish()
        given_back.append(True)

    def run(self) -> None:
        """The worker's loop, until ``begin_stop``; then what is left is given back."""
        next_purge = time.monotonic()
        while True:
            try:
                if self._deliver_round():
                    continue
                if self._stopping:
                    break
                if time.monotonic() >= next_purge:
                    next_purge = time.monotonic() + PURGE_EVERY
                    self.outbox.purge()
                self._round_ended = time.monotonic()
                if self.outbox.wait(self._next_wait()):
                    time.sleep(self._linger())
            except Exception:  # Never let the thread die: log and go on.
                logger.exception("Delivery worker error")
                if self._stopping:
                    break
                time.sleep(self.settings.retry_base_delay)
        self._finish()

    def _deliver_round(self) -> bool:
        deadline = self.sender.deadline  # Set with ``_stopping``.
        if self._stopping and deadline is not None and time.monotonic() > deadline:
            return False
        for email, reason in self.outbox.close_windows():
            self.report(DROPPED, email, reason)
        claimed = self._burst = self.outbox.claim(BURST)
        posts = [item for item in claimed if item.channel in POSTED]
        mails = [item for item in claimed if item.channel not in POSTED]
        try:
            left = self.optouts.for_burst(mails, self.outbox, self.report)
        except Exception:
            self.outbox.release(claimed)  # For the next round, posts too: not held for a lease.
            raise
        # Before rendering (the headers name only those left), and after it: who is still
        # to try after a refusal, or a Maildir file's envelope, is known once rendered.
        emails = [email for email in mails if left(email) and self._prepare(email) and left(email)]
        if emails:
            self.sender.send_burst(emails)
        if posts:
            self.poster.send_burst(posts)
        # A full burst may have left more; after a smaller one, the outbox wakes the worker
        # for what came meanwhile (at shutdown, nothing will: look again).
        return len(claimed) == BURST or (self._stopping and bool(claimed))

    def _linger(self) -> float:
        steady = time.monotonic() - self._round_ended < STEADY
        return LINGER_STEADY if steady and not self._stopping else LINGER

    def _prepare(self, email: Email) -> bool:
        try:
            self.outbox.prepare(email, self.render)
        except Exception as e:
            email.attempts += 1
            reason = f"could not prepare the email: {e}"
            self.report(FAILED, email, reason)
            self.outbox.failed(email, self.report.redact(reason, email))
            return False
        return True

    def _next_wait(self) -> float | None:
        waits = [self.outbox.next_wake()]
        if self.outbox.durable:
            # Other processes' emails, retries and expired leases: the poll finds them.
            waits.append(self.settings.queue_poll_interval)
        if self.sender.connection is not None:
            # An open session spares the next email a connection and a greeting.
            idle_for = KEEP_ALIVE - (time.monotonic() - self.sender.last_sent)
            if idle_for <= 0:
                self.sender.close()
            else:
                waits.append(idle_for)
        return min((w for w in waits if w is not None), default=None)

    def _finish(self) -> None:
        with self._finish_lock:  # By the thread, or for it when it is left behind: once.
            if not self._stopped.is_set():
                self._finish_once()

    def _finish_once(self) -> None:
        if self._thread is threading.current_thread():
            self.sender.close()  # Else the thread left behind still uses the connection.
            self.poster.close()
        lost = self.outbox.abandon()
        for email in lost:
            self.report(DROPPED, email, "not delivered at shutdown")
        try:
            left = self.outbox.pending() if self.outbox.durable else 0
            self.outbox.close()
        except Exception as e:  # The database may be gone first: what is left stays there.
            logger.warning(
                "Delivery stopped: could not count what is left: %s",
                quoted(e),
                extra={"error": str(e)},
            )
            left = 0
        if lost:
            logger.error("Delivery stopped: %d email(s) could not be delivered in time", len(lost))
        elif left:
            logger.warning("Delivery stopped: %d email(s) left in the outbox", left)
        else:
            logger.info("Delivery stopped: nothing left to deliver")
        self._stopped.set()


def _reset_in_child() -> None:
    for worker in list(_workers):
        worker.outbox.reset_after_fork()
        worker._reset()


def running_workers() -> list["Worker"]:
    """The workers of this process: ``shutdown`` stops them at exit."""
    return list(_workers)


_fork_hook_registered = False


def register_fork_hook() -> None:
    """In a forked child, the parent's workers start afresh (once per process)."""
    global _fork_hook_registered
    if not _fork_hook_registered:
        os.register_at_fork(after_in_child=_reset_in_child)
        _fork_hook_registered = True
