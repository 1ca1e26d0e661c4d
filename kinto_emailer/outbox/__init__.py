"""Where emails wait between the request that asks for them and the worker that sends them.

Backends are interchangeable, like Kinto's storage backends: ``memory`` (this process),
``maildir`` (a directory shared by processes) and ``postgresql`` (rows committed with the
change, shared by every process that reaches the database). The worker claims emails, the
sender reports each outcome back here, and the status views read and change them.
"""

import abc
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import transaction
from pyramid.config import Configurator
from pyramid_mailer.message import Message

from ..smtp.mime import Outgoing
from .emails import (
    WINDOW_ORIGIN,
    DraftCompleter,
    Email,
    Window,
    draft_size,
    message_from_json,
    message_size,
    message_to_json,
    payload_size,
    refusal,
    refused_error,
    text_size,
)
from .statuses import (
    CANCELLED,
    DROPPED,
    ENDED,
    FAILED,
    PENDING,
    QUEUED,
    RETRYING,
    SENDING,
    SENT,
    Outcome,
    Status,
)


if TYPE_CHECKING:
    from kinto.core.storage import StorageBase

    from ..config import EmailerSettings
    from .status import Query

__all__ = (
    "Status",
    "Outcome",
    "QUEUED",
    "SENDING",
    "SENT",
    "RETRYING",
    "FAILED",
    "CANCELLED",
    "DROPPED",
    "PENDING",
    "ENDED",
    "Email",
    "Window",
    "WINDOW_ORIGIN",
    "DraftCompleter",
    "draft_size",
    "message_to_json",
    "message_from_json",
    "message_size",
    "text_size",
    "payload_size",
    "refusal",
    "refused_error",
    "StatusUnavailable",
    "active_transaction",
    "Outbox",
)


class StatusUnavailable(Exception):
    """This outbox keeps no status of its emails."""


def active_transaction() -> transaction.interfaces.ITransaction | None:
    """The thread's transaction while it can still take writes (before-commit hooks too)."""
    try:
        current = transaction.get()
    except Exception:  # An explicit transaction manager outside a transaction.
        return None
    # ``Status.ACTIVE``, whose module is private.
    return current if current.status == "Active" else None


class Outbox(abc.ABC):
    """The places emails wait. Every method is safe to call from any thread."""

    #: The ``outbox`` of the ``emailer`` capability.
    name: str = ""
    #: Whether ``put`` joins the request's transaction (else it is called after commit).
    transactional: bool = False
    #: Whether what it holds outlives the process.
    durable: bool = False
    #: Whether it keeps time-window digests (``gather``); else they are sent per request.
    windowed: bool = False
    #: Whether it keeps each email's status, for the status views (else ``StatusUnavailable``).
    keeps_status: bool = True
    #: Whether ``queue_size``, ``queue_bytes`` and turns between buckets apply to what it holds.
    bounded_queue: bool = True
    #: What it is called in messages to people, with the setting that chooses it.
    description: str = ""
    #: The same, as the way emails leave: "Emails sent through ... keep no delivery status".
    sent_through: str = ""
    #: The channels whose messages it can hold (``Email.channel``); hooks of another channel
    #: are refused at save.
    channels: frozenset[str] = frozenset({"email", "slack", "webhook"})

    @classmethod
    @abc.abstractmethod
    def from_settings(
        cls,
        settings: "EmailerSettings",
        render: Callable[[Message], Outgoing],
        drafts: DraftCompleter,
        storage: "StorageBase | None" = None,
    ) -> "Outbox":
        """The outbox that ``settings`` describe; ``render`` and ``drafts`` come from the steps
        above it, ``storage`` is Kinto's (whose transaction a transactional outbox joins)."""

    @classmethod
    def setup(cls, config: Configurator, settings: "EmailerSettings") -> None:
        """At start-up: register what ``kinto migrate`` creates for it, and check it is there."""

    def heartbeat(self) -> bool:
        """Whether it takes emails now; logs why not. Never raises."""
        return True

    @abc.abstractmethod
    def put(self, emails: list[Email]) -> list[tuple[Email, str]]:
        """Keep ``emails`` for sending; returns those refused by a limit, with the reason."""

    @abc.abstractmethod
    def claim(self, limit: int) -> list[Email]:
        """Up to ``limit`` emails due now, leased to this worker, buckets served in turn."""

    @abc.abstractmethod
    def sent(self, email: Email) -> None:
        """``email`` was accepted by the mail server."""

    @abc.abstractmethod
    def retry(self, email: Email, delay: float, error: str) -> None:
        """Try ``email`` again in ``delay`` seconds (to ``email.outgoing.recipients`` only)."""

    @abc.abstractmethod
    def failed(self, email: Email, error: str) -> None:
        """``email`` is given up: refused for good, or out of attempts."""

    @abc.abstractmethod
    def cancelled(self, email: Email, reason: str) -> None:
        """Claimed ``email`` is not sent, for ``reason``: every recipient opted out since
        it was written (``delivery.optouts``)."""

    @abc.abstractmethod
    def release(self, emails: list[Email]) -> None:
        """Give claimed emails back, unsent, for another worker or the next start."""

    @abc.abstractmethod
    def pending(self) -> int:
        """How many emails wait or are being sent."""

    def prepare(self, email: Email, render: Callable[[Message], Outgoing]) -> None:
        """Give ``email`` its bytes for SMTP (``render(message)`` makes them)."""
        if email.outgoing is None:
            email.outgoing = render(email.message)

    def renew(self, email: Email) -> bool:
        """Hold claimed ``email`` for a new lease, just before it is sent; False when its lease
        ran out and another worker took it over."""
        return True

    def hurry(self) -> None:
        """Make the retries it holds due now: this process is ending."""

    def abandon(self) -> list[Email]:
        """At exit: the emails that will be lost with this process (none where durable)."""
        return []

    def next_due(self) -> float | None:
        """Seconds until the next email this outbox knows of falls due; ``None``: unknown."""
        return None

    def wait(self, timeout: float | None) -> bool:
        """Block until ``wake`` or new emails, at most ``timeout`` seconds; True when woken."""
        time.sleep(timeout or 0)
        return False

    def wake(self) -> None:
        """Wake a worker blocked in ``wait``."""

    # The status views (``web/emails.py``); see ``status`` for the records and the query.

    def emails(self, query: "Query") -> list[dict[str, Any]]:
        """The records that ``query`` (a ``status.Query``) asks for."""
        raise StatusUnavailable(self.name)

    def email(self, bucket_id: str, email_id: str) -> dict[str, Any] | None:
        """One email's record, or ``None``."""
        raise StatusUnavailable(self.name)

    def change(self, bucket_id: str, email_id: str, status: str) -> dict[str, Any] | None:
        """Send a failed, cancelled or dropped email again (``queued``), or cancel one that
        waits (``cancelled``); raises ``status.TransitionError``. ``None``: no such email.

        Queued again, an email passes the limits a new one passes (else ``status.QueueRefused``
        and it stays as it was), and goes only to the recipients that have not taken it yet:
        those still to try when it stopped, and those refused for good (``Email.refused``).
        An email that the hourly limit counted less than an hour ago is not counted again."""
        raise StatusUnavailable(self.name)

    def gather(self, windows: list[Window]) -> list[tuple[Window, str]]:
        """Open each hook's window, or add to the one open; at commit, as ``put``. Returns
        the parts that could not open a window (past ``queue_bytes``), with why."""
        raise NotImplementedError(f"the {self.name} outbox keeps no time windows")

    def close_windows(self) -> list[tuple[Email, str]]:
        """Put the emails of the windows that have closed; returns those refused by a limit."""
        return []

    def next_window(self) -> float | None:
        """Seconds until the next open window closes; ``None``: none open, or unknown."""
        return None

    def next_wake(self) -> float | None:
        """Seconds until an email falls due or a window closes, whichever comes first."""
        waits = [w for w in (self.next_due(), self.next_window()) if w is not None]
        return min(waits, default=None)

    def purge(self) -> int:
        """Forget ended emails older than the retention; how many were forgotten."""
        return 0

    def flush(self) -> None:
        """Forget every email, as Kinto's ``storage.flush()``: for tests."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what this process holds (connections, locks)."""

    def reset_after_fork(self) -> None:
        """In a forked child: what the parent held stays the parent's."""
