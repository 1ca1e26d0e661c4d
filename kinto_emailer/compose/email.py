"""What one hook's email says and who gets it: subject, text and HTML bodies, addresses."""

import email.utils
import logging
from typing import TYPE_CHECKING, Any

from pyramid_mailer.message import Message

from .. import addresses as recipients
from ..hooks import templates
from ..hooks.fields import (
    GROUP_URI_PLACEHOLDERS,
    RECIPIENT_PLACEHOLDERS,
    UNSUBSCRIBE_URL,
    address_entries,
)
from ..log_values import quoted
from ..smtp import mime
from ..trace import NO_TRACE, Trace
from . import optouts


if TYPE_CHECKING:
    from ..config import EmailerSettings
    from ..hooks.selection import HookFinder

logger = logging.getLogger("kinto_emailer.compose")

DEFAULT_SUBJECT = "New message"


def _entries(hook: dict[str, Any], field: str, where: str) -> list[str]:
    entries = address_entries(hook, field)
    if entries is None:
        return []
    if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
        # Validation refuses these; storage may hold metadata saved before it existed.
        logger.warning("Hook %s: %s must be a list of strings", quoted(where), field)
        entries = [e for e in entries if isinstance(e, str)] if isinstance(entries, list) else []
    return entries


def _render_entry(
    entry: str, field: str, context: dict[str, Any], where: str, trace: Trace
) -> str | None:
    """An entry with its placeholders rendered, or ``None`` when it must be dropped."""
    if recipients.is_group_uri(entry):
        # Validation refuses other placeholders; stored metadata may predate it.
        where_only = {name: context.get(name) for name in GROUP_URI_PLACEHOLDERS}
        return templates.render(entry, where_only)
    if field != "reply_to" or not templates.names(entry):
        return entry
    # Only ``reply_to`` reads addresses from data: a reply reaches nobody unasked.
    rendered = templates.render(entry, context, limit=templates.MAX_SUBJECT_LENGTH)
    if recipients.parse_address(rendered) is None:
        logger.warning(
            "Hook %s: reply_to %s rendered to something that is not an address: dropped",
            quoted(where),
            quoted(entry),
            extra={"hook": where, "reply_to": entry},
        )
        logger.debug(
            "Hook %s: reply_to %s rendered to %s",
            quoted(where),
            quoted(entry),
            quoted(rendered),
            extra={"hook": where, "reply_to": entry, "rendered": rendered},
        )
        trace.left_out(where, field, entry, f"Rendered to {rendered!r}, which is not an address")
        return None
    return rendered


def _shared(context: dict[str, Any]) -> dict[str, Any]:
    """``context`` without what belongs to one recipient only."""
    return {k: v for k, v in context.items() if k not in RECIPIENT_PLACEHOLDERS}


def addresses(
    hook: dict[str, Any],
    field: str,
    context: dict[str, Any],
    finder: "HookFinder",
    settings: "EmailerSettings",
    where: str = "",
    trace: Trace = NO_TRACE,
) -> list[str]:
    """The unique addresses of one field of ``hook``, groups expanded, within the limit."""
    entries = _entries(hook, field, where)
    if not entries:  # Most hooks have no cc, bcc nor reply_to.
        return []
    rendered = [_render_entry(e, field, context, where, trace) for e in entries]
    # A reply reaches nobody unasked: reply_to is not restricted.
    domains = settings.recipient_domains if field != "reply_to" else ()
    left_out: list[str] = []
    found = recipients.expand(
        [e for e in rendered if e is not None],
        context["bucket_id"],
        finder.group,
        domains,
        left_out,
    )
    if left_out:
        logger.warning(
            "Hook %s: %d %s outside kinto_emailer.recipient_domains left out",
            quoted(where),
            len(left_out),
            "recipients" if field == "recipients" else f"{field} addresses",
        )
        allowed = ", ".join(domains)
        for address in left_out:
            trace.left_out(
                where, field, address, f"Outside kinto_emailer.recipient_domains ({allowed})"
            )
    limit = settings.max_expanded_recipients
    if len(found) > limit:
        logger.warning(
            "Hook %s: %d %s dropped: kinto_emailer.max_expanded_recipients is %d",
            quoted(where),
            len(found) - limit,
            "recipients" if field == "recipients" else f"{field} addresses",
            limit,
        )
        for address in found[limit:]:
            trace.left_out(
                where, field, address, f"Past kinto_emailer.max_expanded_recipients ({limit})"
            )
        found = found[:limit]
    return found


def _text(hook: dict[str, Any], field: str, default: str | None = None) -> str | None:
    if field not in hook:
        return default
    if not isinstance(hook[field], str):
        # Validation refuses these: the hook is skipped, as a hook that can't render.
        raise TypeError(f"{field} must be a string, not {type(hook[field]).__name__}")
    return hook[field]


#: Why a hook's email doesn't reach the author of the change.
SPARED_AUTHOR = 'The author of the change, and the hook says "notify_author": false'


class _LeftOut:
    """Who a hook's email must not reach: the addresses (lower case) that opted out, and
    with ``"notify_author": false`` the author's mailbox, when the user id proves it."""

    def __init__(
        self,
        hook: dict[str, Any],
        context: dict[str, Any],
        finder: "HookFinder",
        settings: "EmailerSettings",
        where: str,
        spare_author: bool,
        trace: Trace,
    ):
        self.owner = where.partition("#")[0]
        self.opted_out = optouts.opted_out(finder, self.owner)
        self.author = None
        if spare_author and hook.get("notify_author") is False:
            prefixes = settings.verified_author_prefixes
            self.author = recipients.verified_author(context.get("user_id"), prefixes)
        self.where, self.trace = where, trace

    def remove(self, entries: list[str], field: str) -> list[str]:
        if not self.opted_out and self.author is None:
            return entries
        kept = []
        for entry in entries:
            if self.author is not None and recipients.entry_mailbox(entry) == self.author:
                self.trace.left_out(self.where, field, entry, SPARED_AUTHOR)
            elif recipients.address_key(entry) in self.opted_out:
                reason = f"Unsubscribed from the hooks of {self.owner}"
                self.trace.left_out(self.where, field, entry, reason)
            else:
                kept.append(entry)
        return kept


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
    left_out = _LeftOut(hook, context, finder, settings, where, spare_author, trace)
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
