"""What waits in an outbox: an email (``Email``), a request's part of a time window
(``Window``), and the sizes, JSON and refusals that every backend shares."""

import email.policy
import itertools
import json
import sys
import time
from dataclasses import dataclass, field
from email.parser import BytesHeaderParser
from typing import Any, Protocol

from pyramid_mailer.message import Message

from ..smtp.mime import Outgoing
from .statuses import QUEUED


_sequence = itertools.count(1)


@dataclass(eq=False)
class Email:
    """One message: what it says (``message`` for an email, ``payload`` for a Slack message or
    a webhook) and where it came from (hook, object)."""

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
    #: The channel that carries it: ``email``, ``slack`` or ``webhook``.
    channel: str = "email"
    #: Where an HTTP channel posts it, as the status views show it: the Slack channel
    #: (``#ops``) or the operator's endpoint name; never a URL. ``None`` for an email.
    destination: str | None = None
    #: What an HTTP channel posts: for Slack, the JSON body ``{"channel", "text"}``; for a
    #: webhook, ``{"id": "msg_...", "body": {"type", "timestamp", "data"}}``: the
    #: ``webhook-id`` (made when composed: the same for every attempt) and the JSON body.
    payload: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if not self.id:
            self.id = str(next(_sequence))
        if not self.size and self.message is not None:
            self.size = message_size(self.message)
        if not self.size and self.payload is not None:
            self.size = payload_size(self.payload)

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


def payload_size(payload: dict[str, Any]) -> int:
    """The bytes a Slack message or a webhook takes while it waits: those of its JSON."""
    return len(json.dumps(payload, ensure_ascii=False).encode("utf-8", "replace"))


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
