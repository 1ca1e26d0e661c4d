"""What one hook's email says: subject, text and HTML bodies, headers, one per recipient when
private; who gets it is ``addressing``'s."""

import email.utils
import logging
from typing import TYPE_CHECKING, Any

from pyramid_mailer.message import Message

from .. import addresses as recipients
from ..hooks import templates
from ..hooks.fields import RECIPIENT_PLACEHOLDERS, UNSUBSCRIBE_URL
from ..log_values import quoted
from ..smtp import mime
from ..trace import NO_TRACE, Trace
from . import optouts
from .addressing import SPARED_AUTHOR as SPARED_AUTHOR  # Where drafts and tests read it.
from .addressing import LeftOut, addresses


if TYPE_CHECKING:
    from ..config import EmailerSettings
    from ..hooks.selection import HookFinder

logger = logging.getLogger("kinto_emailer.compose")

DEFAULT_SUBJECT = "New message"


def _shared(context: dict[str, Any]) -> dict[str, Any]:
    """``context`` without what belongs to one recipient only."""
    return {k: v for k, v in context.items() if k not in RECIPIENT_PLACEHOLDERS}


def _text(hook: dict[str, Any], field: str, default: str | None = None) -> str | None:
    if field not in hook:
        return default
    if not isinstance(hook[field], str):
        # Validation refuses these: the hook is skipped, as a hook that can't render.
        raise TypeError(f"{field} must be a string, not {type(hook[field]).__name__}")
    return hook[field]


def compose(
    hook: dict[str, Any],
    context: dict[str, Any],
    finder: "HookFinder",
    settings: "EmailerSettings",
    where: str = "",
    spare_author: bool = True,
    trace: Trace = NO_TRACE,
) -> list[Message]:
    """The emails of one hook for one context: none when nobody is left in ``recipients``,
    one for all of them, or one for each with ``"private": true``.

    Addresses that opted out of the hook's owner are left out, and with
    ``"notify_author": false`` the change's author (when ``verified_author`` knows them),
    unless ``spare_author`` is false.
    """
    left_out = LeftOut(hook, context, finder, settings, where, spare_author, trace)
    to = addresses(hook, "recipients", context, finder, settings, where, trace)
    to = left_out.remove(to, "recipients")
    if not to:
        return []
    private = hook.get("private") is True
    cc: list[str] = []
    bcc: list[str] = []
    if private and (hook.get("cc") or hook.get("bcc")):
        # Validation refuses these; storage may hold metadata saved before it existed.
        logger.warning("Hook %s: cc and bcc are ignored on a private hook", quoted(where))
    elif not private:
        cc = addresses(hook, "cc", context, finder, settings, where, trace)
        cc = recipients.without(cc, to)
        bcc = addresses(hook, "bcc", context, finder, settings, where, trace)
        bcc = recipients.without(bcc, to + cc)
        cc, bcc = left_out.remove(cc, "cc"), left_out.remove(bcc, "bcc")
    reply_to = addresses(hook, "reply_to", context, finder, settings, where, trace)
    sender = recipients.format_address(hook.get("sender") or "")
    texts = {
        "subject": _text(hook, "subject", DEFAULT_SUBJECT),
        "body": _text(hook, "template", ""),
        "html": _text(hook, "html_template"),
    }

    def render(context: dict[str, Any]) -> dict[str, str | None]:
        html = texts["html"]
        return {
            # Without a recipient's token, even from metadata saved before validation refused it.
            "subject": templates.render_line(texts["subject"] or "", _shared(context)),
            "body": templates.render(texts["body"] or "", context),
            "html": None if html is None else templates.render(html, context, as_html=True),
        }

    def message(
        to: list[str], rendered: dict[str, str | None], unsubscribe_url: str | None = None
    ) -> Message:
        headers = mime.identity_headers()  # Date: when the event is turned into an email.
        if reply_to:
            headers["Reply-To"] = ", ".join(reply_to)
        if unsubscribe_url:
            headers["List-Unsubscribe"] = f"<{unsubscribe_url}>"
            headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"  # RFC 8058
        return Message(
            sender=sender or settings.default_sender,
            recipients=to,
            cc=cc,
            bcc=bcc,
            extra_headers=headers,
            **rendered,
        )

    if not private:
        return [message(to, render(context))]
    # Each recipient has a link of their own: rendered for each only where a template uses it.
    per_recipient = any(UNSUBSCRIBE_URL in templates.names(t or "") for t in texts.values())
    shared = None if per_recipient else render(context)
    messages = []
    for address in to:
        url = optouts.link(
            settings.unsubscribe_key,
            context.get("root_url") or "",
            email.utils.parseaddr(address)[1],
            where.partition("#")[0],
        )
        rendered = shared or render({**context, UNSUBSCRIBE_URL: url or ""})
        messages.append(message([address], rendered, url))
    return messages
