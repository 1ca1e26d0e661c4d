"""Where emails wait between the request that asks for them and the worker that sends them.

Backends are interchangeable, like Kinto's storage backends: ``memory`` (this process),
``maildir`` (a directory shared by processes) and ``postgresql`` (rows committed with the
change, shared by every process that reaches the database). The worker claims emails, the
sender reports each outcome back here, and the status views read and change them.
"""

import abc
import email.policy
import enum
import itertools
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.parser import BytesHeaderParser
from typing import TYPE_CHECKING, Any, Protocol

import transaction
from pyramid.config import Configurator
from pyramid_mailer.message import Message

from ..smtp.mime import Outgoing


if TYPE_CHECKING:
    from kinto.core.storage import StorageBase

    from ..config import EmailerSettings
    from .status import Query


class Status(enum.StrEnum):
    """An email's status in the outbox: stored, shown and filtered on by the status views."""

    QUEUED = "queued"
    SENDING = "sending"
    RETRYING = "retrying"
    SENT = "sent"
    FAILED = "failed"
    CANCELLED = "cancelled"
    DROPPED = "dropped"


class Outcome(enum.StrEnum):
    """What the outcome log (``delivery.outcomes``) says happened to an email: the status it
    took, in the same words, but for a retry, logged as done ("retried")."""

    QUEUED = Status.QUEUED.value
    SENT = Status.SENT.value
    RETRIED = "retried"
    FAILED = Status.FAILED.value
    DROPPED = Status.DROPPED.value


QUEUED, SENDING, SENT, RETRYING = Status.QUEUED, Status.SENDING, Status.SENT, Status.RETRYING
FAILED, CANCELLED, DROPPED = Status.FAILED, Status.CANCELLED, Status.DROPPED
#: Waiting to be sent, or being sent: what ``pending`` counts.
PENDING = (QUEUED, SENDING, RETRYING)
ENDED = (SENT, FAILED, CANCELLED, DROPPED)

_sequence = itertools.count(1)


@dataclass(eq=False)
class Email:
    """One email: what it says (``message``) and where it came from (hook, object)."""

    message: Message | None
    location: str = ""  # The hook: ``/buckets/b/collections/c#0``.
    bucket_id: str | None = None
    collection_id: str | None = None
    uri: str | None = None
    action: str | None = None
    event: str | None = None
    id: str = ""
    status: str = QUEUED
    attempts: int = 0
    error: str | None = None
    created: float = field(default_factory=time.time)
    last_modified: float = field(default_factory=time.time)
    #: When the mail server accepted it (epoch seconds), for the status views.
    sent: float | None = None
    #: Bytes it may take in memory while it waits (see ``message_size``); what the byte
    #: limits count.
    size: int = 0
    #: The bytes for SMTP; rendered by the worker, or read back from a Maildir file.
    outgoing: Outgoing | None = None
    #: The Maildir file that holds it, in the ``maildir`` outbox.
    filename: str | None = None
    #: The recipients the mail server refused for good while it took the email for others:
    #: ``{"address", "code", "message"}`` each (``refusal``), since it was last queued.
    refused: list[dict[str, Any]] = field(default_factory=list)
    #: When the hourly limit last counted it (``time.monotonic()``), in a memory outbox.
    counted_at: float | None = None

    def __post_init__(self) -> None:
        if not self.id:
            self.id = str(next(_sequence))
        if not self.size and self.message is not None:
            self.size = message_size(self.message)

    @property
    def labels(self) -> dict[str, str | None]:
        return {"bucket_id": self.bucket_id, "collection_id": self.collection_id}

    @property
    def message_id(self) -> str:
        if self.outgoing is not None:
            return self.outgoing.message_id
        return str(self.message.extra_headers.get("Message-ID", "")) if self.message else ""

    @property
    def subject(self) -> str | None:
        if self.message is not None:
            return self.message.subject
        if self.outgoing is not None:  # Read back from a Maildir file: the header says.
            headers = BytesHeaderParser(policy=email.policy.default).parsebytes(self.outgoing.data)
            return str(headers["Subject"] or "")
        return None

    @property
    def recipients(self) -> list[str]:
        if self.outgoing is not None:
            return list(self.outgoing.recipients)
        message = self.message
        if message is None:
            return []
        return [*message.recipients, *(message.cc or ()), *(message.bcc or ())]


@dataclass(eq=False)
class Window:
    """A request's part of a time-window digest: it opens the hook's window, or joins it."""

    location: str  # The hook: ``/buckets/b/collections/c#0``; one window open per hook.
    seconds: int
    #: The emails with marks for ``{count}`` and ``{items}`` (``drafts.make_draft``): used
    #: when this part opens the window, else the open window's draft stays.
    draft: dict[str, Any]
    lines: list[str]
    count: int
    #: The address of the author of these changes; ``None``: unknown, or several.
    author: str | None
    max_items: int
    bucket_id: str | None = None
    collection_id: str | None = None
    uri: str | None = None
    action: str | None = None
    event: str | None = None
    #: The bytes it takes while open, in the outboxes that keep windows in memory: its draft
    #: and its lines (``open``), and those of the parts that joined it (``join``).
    size: int = 0

    def open(self) -> int:
        """This part opens its hook's window: its bytes, counted from now on."""
        self.lines = list(self.lines[: self.max_items])
        self.size = draft_size(self.draft) + sum(text_size(line) for line in self.lines)
        return self.size

    def join(self, part: "Window", room: float) -> int:
        """Add ``part``, a later request's part of this open window: its count, and its lines
        while this window has fewer than ``max_items`` and they fit in ``room`` bytes; its
        draft is not kept. Returns the bytes its lines take here."""
        self.count += part.count
        # Several people: nobody is spared (``None``), as when one of them is unknown.
        self.author = self.author if self.author == part.author else None
        for name in WINDOW_ORIGIN[1:]:  # Not the bucket: a hook's changes are all in one.
            if getattr(part, name) != getattr(self, name):
                setattr(self, name, None)
        taken = 0
        for line in part.lines[: max(0, self.max_items - len(self.lines))]:
            size = text_size(line)
            if taken + size > room:
                break  # Counted, not listed: "and N more".
            self.lines.append(line)
            taken += size
        self.size += taken
        return taken


#: What a window keeps of its changes' origin: a field that differs between two is ``None``.
WINDOW_ORIGIN = ("bucket_id", "collection_id", "uri", "action", "event")


def draft_size(draft: dict[str, Any]) -> int:
    """The bytes a draft (``drafts.make_draft``) takes while its window is open."""
    texts = []
    for message in draft["messages"]:
        texts += [message["subject"] or "", message["body"] or "", message["html"] or ""]
        texts += [*message["recipients"], *message["cc"], *message["bcc"]]
        texts += [str(v) for v in (message["headers"] or {}).values()]
    return sum(text_size(text) for text in texts)


class DraftCompleter(Protocol):
    """How a closed window's draft becomes its emails (``compose.drafts``): handed to the
    outboxes that keep windows, as ``render`` is, since composing is a step above them."""

    def complete(
        self, draft: dict[str, Any], lines: list[str], count: int, author: str | None
    ) -> list[Message]: ...

    def placeholders(self, text: str, draft: dict[str, Any]) -> str: ...


def message_to_json(message: Message) -> str:
    return json.dumps(
        {
            "subject": message.subject,
            "sender": message.sender,
            "recipients": list(message.recipients),
            "cc": list(message.cc or ()),
            "bcc": list(message.bcc or ()),
            "body": message.body,
            "html": message.html,
            "headers": dict(message.extra_headers or {}),
        }
    )


def message_from_json(data: dict[str, Any]) -> Message:
    return Message(
        subject=data["subject"],
        sender=data["sender"],
        recipients=data["recipients"],
        cc=data["cc"],
        bcc=data["bcc"],
        body=data["body"],
        html=data["html"],
        extra_headers=data["headers"],
    )


def message_size(message: Message) -> int:
    """The bytes ``message`` may take while it waits, without rendering it: its texts in
    memory, and the bytes they are rendered to for SMTP, kept for the next attempt."""
    texts = [message.subject or "", message.body or "", message.html or ""]
    texts += [*message.recipients, *(message.cc or ()), *(message.bcc or ())]
    texts += [str(v) for v in (message.extra_headers or {}).values()]
    return sum(text_size(text) for text in texts)


def text_size(text: str) -> int:
    # In memory, one emoji makes every character of a string take 4 bytes.
    in_memory = sys.getsizeof(text)
    encoded = len(text.encode("utf-8", "replace"))
    # Quoted-printable at worst: 3 bytes per non-ASCII byte (at most 2 per extra byte of
    # UTF-8), and a soft line break per 76 bytes.
    rendered = encoded + encoded // 25 + 4 * (encoded - len(text))
    return in_memory + rendered


def refusal(address: str, code: int, message: str) -> dict[str, Any]:
    """One entry of ``Email.refused``; ``message`` without the addresses (``report.redact``)."""
    return {"address": address, "code": code, "message": message}


def refused_error(refused: list[dict[str, Any]]) -> str | None:
    """The ``error`` of an email sent to some recipients only: who was refused, how many."""
    if not refused:
        return None
    counts: dict[str, int] = {}
    for entry in refused:
        reply = f"{entry['code']} {entry['message']}".strip()
        counts[reply] = counts.get(reply, 0) + 1
    replies = "; ".join(f"{reply} ({n} recipient(s))" for reply, n in counts.items())
    return f"refused for some recipients: {replies}"


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
