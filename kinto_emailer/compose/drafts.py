"""A digest's emails, composed when its first object comes and completed once its objects
are all in: at the end of the request, or when its time window closes.

A draft holds the messages with marks where ``{count}`` and ``{items}`` go: recipients,
the first object's placeholders and the unsubscribe links are fixed when the draft is made,
so that completing it needs no storage read (the outbox's worker completes windows).
"""

import html
import json
import secrets
from typing import TYPE_CHECKING, Any

from pyramid_mailer.message import Message

from .. import addresses as recipients
from ..hooks import templates
from ..outbox import message_from_json, message_to_json
from ..smtp import mime
from ..trace import NO_TRACE, Trace
from .email import SPARED_AUTHOR, compose


if TYPE_CHECKING:
    from ..config import EmailerSettings
    from ..hooks.selection import HookFinder

#: What a digest's item reads when the hook has no ``item_template``.
DEFAULT_ITEM_TEMPLATE = "{resource_name} {id} {action}d"


def mark(nonce: str, name: str) -> str:
    """Where ``{name}`` goes in a draft's texts."""
    # Unguessable: a record's data can't contain the mark of a draft made after it was written.
    return f"\u27e6{nonce}:{name}\u27e7"


def with_items(hook: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """``hook`` whose templates name ``{items}``: appended where they lack it; and whether
    the HTML body got it appended (then rendered as a list)."""
    hook = dict(hook)
    text = hook.get("template")
    if isinstance(text, str) and "items" not in templates.names(text):
        hook["template"] = f"{text.rstrip()}\n\n{{items}}" if text.strip() else "{items}"
    markup = hook.get("html_template")
    html_list = isinstance(markup, str) and "items" not in templates.names(markup)
    if isinstance(markup, str) and html_list:
        hook["html_template"] = f"{markup.rstrip()}\n{{items}}"
    return hook, html_list


def make_draft(
    hook: dict[str, Any],
    context: dict[str, Any],
    finder: "HookFinder",
    settings: "EmailerSettings",
    where: str,
    trace: Trace = NO_TRACE,
) -> dict[str, Any] | None:
    """The draft of a digest whose first object is described by ``context``; ``None`` when
    it would reach nobody."""
    nonce = secrets.token_hex(16)
    full_hook, html_list = with_items(hook)
    marked = {**context, "count": mark(nonce, "count"), "items": mark(nonce, "items")}
    # The author is left out once the window's authors are known, in ``complete``.
    messages = compose(full_hook, marked, finder, settings, where, False, trace)
    if not messages:
        return None
    return {
        "nonce": nonce,
        "html_list": html_list,
        "notify_author": hook.get("notify_author") is not False,
        "messages": [json.loads(message_to_json(message)) for message in messages],
    }


def items_of(lines: list[str], count: int) -> list[str]:
    more = count - len(lines)
    return [*lines, f"and {more} more"] if more > 0 else list(lines)


def _fill(
    text: str | None,
    nonce: str,
    count: int,
    items: list[str],
    kind: str,
    html_list: bool = False,
) -> str | None:
    if text is None:
        return None
    if kind == "html":
        escaped = [html.escape(item) for item in items]
        if html_list:
            rendered = "<ul>\n" + "".join(f"<li>{item}</li>\n" for item in escaped) + "</ul>"
        else:
            rendered = "<br>\n".join(escaped)
    else:
        rendered = "\n".join(items)
    text = text.replace(mark(nonce, "count"), str(count)).replace(mark(nonce, "items"), rendered)
    if kind == "subject":
        return " ".join(text.split())[: templates.MAX_SUBJECT_LENGTH]
    return text.encode("utf-8")[: templates.MAX_BODY_LENGTH].decode("utf-8", "ignore")


def _others(entries: list[str], author: str, field: str, where: str, trace: Trace) -> list[str]:
    others = []
    for entry in entries:
        if recipients.entry_mailbox(entry) != author:
            others.append(entry)
        else:
            trace.left_out(where, field, entry, SPARED_AUTHOR)
    return others


def complete(
    draft: dict[str, Any],
    lines: list[str],
    count: int,
    author: str | None,
    where: str = "",
    trace: Trace = NO_TRACE,
) -> list[Message]:
    """The emails of a draft once ``count`` objects were gathered (their first ``lines``).

    ``author`` is the mailbox (``recipients.verified_author``) of whoever made every one of
    the changes, ``None`` when several people (or someone whose address isn't proven) made
    them; with ``"notify_author": false`` they are left out.
    """
    nonce, items = draft["nonce"], items_of(lines, count)
    spared = None if draft.get("notify_author", True) or not author else author
    messages = []
    for data in draft["messages"]:
        message = message_from_json(data)
        if spared:
            message.recipients = _others(message.recipients, spared, "recipients", where, trace)
            message.cc = _others(message.cc, spared, "cc", where, trace)
            message.bcc = _others(message.bcc, spared, "bcc", where, trace)
            if not message.recipients:
                continue  # Nobody left in ``To:``: as a hook whose recipients are all left out.
        message.subject = _fill(message.subject, nonce, count, items, "subject")
        message.body = _fill(message.body, nonce, count, items, "text")
        message.html = _fill(
            message.html, nonce, count, items, "html", bool(draft.get("html_list"))
        )
        message.extra_headers.update(mime.identity_headers())  # Dated when it is complete.
        messages.append(message)
    return messages


def placeholders(text: str, draft: dict[str, Any]) -> str:
    """``text`` of a draft with its marks shown as the placeholders they stand for."""
    nonce = draft["nonce"]
    return text.replace(mark(nonce, "count"), "{count}").replace(mark(nonce, "items"), "{items}")
