"""The emails, time-window parts and settings the shared outbox suite is made of."""

import json
import time
from collections.abc import Iterable
from types import SimpleNamespace
from typing import Any

from pyramid_mailer.message import Message

from ...compose.drafts import mark
from ...smtp import mime
from .. import Email, Window, message_to_json


DEFAULTS = {
    "queue_size": 10000,
    "queue_bytes": 0,
    "max_emails_per_hour": 0,
    "outbox_lease": 60.0,
    "outbox_prepared": True,
    "outbox_retention_days": 7,
    "queue_poll_interval": 0.05,
}


def outbox_settings(**overrides: Any) -> SimpleNamespace:
    """What an outbox reads of ``EmailerSettings``, with ``overrides``."""
    return SimpleNamespace(**{**DEFAULTS, **overrides})


def email(
    bucket_id: str = "b",
    subject: str = "hello",
    body: str = "text",
    to: str | list[str] = "alice@example.com",
    **fields: Any,
) -> Email:
    message = Message(
        subject=subject,
        sender="kinto@example.com",
        recipients=[to] if isinstance(to, str) else to,
        body=body,
        extra_headers={"Message-ID": f"<{subject}.{time.time_ns()}@kinto-emailer>"},
    )
    fields.setdefault("collection_id", "c")
    return Email(message, location=f"/buckets/{bucket_id}#0", bucket_id=bucket_id, **fields)


def posted(
    channel: str = "webhook", bucket_id: str = "b", text: str = "hello", **fields: Any
) -> Email:
    """A Slack message to ``#ops``, or a webhook to the endpoint ``ops``, as composed."""
    payload: dict[str, Any]
    if channel == "slack":
        destination, payload = "#ops", {"channel": "#ops", "text": text}
    else:
        body = {"type": "kinto.record.create", "timestamp": 1, "data": {"text": text}}
        destination, payload = "ops", {"id": f"msg_{time.time_ns()}", "body": body}
    fields.setdefault("collection_id", "c")
    return Email(
        None,
        location=f"/buckets/{bucket_id}#0",
        bucket_id=bucket_id,
        channel=channel,
        destination=destination,
        payload=payload,
        **fields,
    )


def message_of(email: Email) -> Message:
    """The message of an email made in this process, such as a window's."""
    assert email.message is not None
    return email.message


def window_part(
    lines: list[str],
    seconds: int = 1,
    author: str | None = None,
    to: Iterable[str] = ("alice@example.com",),
    location: str = "/buckets/b#0",
    preamble: str = "",
    **draft: Any,
) -> Window:
    """A request's part of the time window of hook ``location``, as ``Digests`` makes it;
    ``preamble``: its body's text before the items."""
    message = Message(
        subject=f"{mark('n', 'count')} changes",
        sender="kinto@example.com",
        recipients=list(to),
        body=preamble + mark("n", "items"),
    )
    draft = {"nonce": "n", "messages": [json.loads(message_to_json(message))], **draft}
    return Window(
        location=location,
        seconds=seconds,
        draft=draft,
        lines=list(lines),
        count=len(lines),
        author=author,
        max_items=draft.pop("max_items", 10),
        bucket_id="b",
        collection_id="c",
    )


def render(message: Message) -> mime.Outgoing:
    return mime.render(message, "kinto@example.com")
