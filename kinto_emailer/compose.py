"""What one hook's email says and who gets it: subject, text and HTML bodies, addresses."""

import email.utils
import logging
from typing import TYPE_CHECKING, Any

from pyramid_mailer.message import Message

from . import mime, optouts, recipients, templates


if TYPE_CHECKING:
    from .config import EmailerSettings
    from .selection import HookFinder

logger = logging.getLogger(__name__)

DEFAULT_SUBJECT = "New message"
#: Fields of a hook that list addresses and group URIs; ``recipients`` fills ``To:``.
ADDRESS_FIELDS = ("recipients", "cc", "bcc", "reply_to")
#: What a group URI may read: where the change happened, never what a writer chose.
GROUP_URI_PLACEHOLDERS = ("bucket_id", "collection_id")
#: The placeholder of a private hook's one-click unsubscribe link.
UNSUBSCRIBE_URL = "unsubscribe_url"
#: Placeholders that carry a recipient's own token: in bodies only, never in a subject or a
#: header, which the status views show to the collection's writers.
RECIPIENT_PLACEHOLDERS = (UNSUBSCRIBE_URL,)
BODY_FIELDS = ("template", "html_template")


def address_entries(hook: dict[str, Any], field: str) -> Any:
    """The entries of an address field: a single string is a list of one; anything else is
    as stored (validation refuses what isn't a list of strings)."""
    entries = hook.get(field)
    return [entries] if isinstance(entries, str) else entries


def _entries(hook: dict[str, Any], field: str, where: str) -> list[str]:
    entries = address_entries(hook, field)
    if entries is None:
        return []
    if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
        # Validation refuses these; storage may hold metadata saved before it existed.
        logger.warning("Hook %s: %s must be a list of strings", where, field)
        entries = [e for e in entries if isinstance(e, str)] if isinstance(entries, list) else []
    return entries


def _render_entry(entry: str, field: str, context: dict[str, Any], where: str) -> str | None:
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
            "Hook %s: reply_to %r rendered to something that is not an address: dropped",
            where,
            entry,
        )
        logger.debug("Hook %s: reply_to %r rendered to %r", where, entry, rendered)
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
) -> list[str]:
    """The unique addresses of one field of ``hook``, groups expanded, within the limit."""
    entries = _entries(hook, field, where)
    if not entries:  # Most hooks have no cc, bcc nor reply_to.
        return []
    rendered = [_render_entry(e, field, context, where) for e in entries]
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
            where,
            len(left_out),
            "recipients" if field == "recipients" else f"{field} addresses",
        )
    limit = settings.max_expanded_recipients
    if len(found) > limit:
        logger.warning(
            "Hook %s: %d %s dropped: kinto_emailer.max_expanded_recipients is %d",
            where,
            len(found) - limit,
            "recipients" if field == "recipients" else f"{field} addresses",
            limit,
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


def _left_out(
    hook: dict[str, Any],
    context: dict[str, Any],
    finder: "HookFinder",
    where: str,
    spare_author: bool,
) -> frozenset[str]:
    """The addresses (lower case) a hook's email must not reach: opted out, or its author."""
    left_out = optouts.opted_out(finder, where.partition("#")[0])
    author = recipients.member_address(context.get("user_id"))
    if spare_author and hook.get("notify_author") is False and author:
        left_out |= {author.lower()}
    return left_out


def _without(entries: list[str], left_out: frozenset[str]) -> list[str]:
    if not left_out:
        return entries
    return [e for e in entries if email.utils.parseaddr(e)[1].lower() not in left_out]


def compose(
    hook: dict[str, Any],
    context: dict[str, Any],
    finder: "HookFinder",
    settings: "EmailerSettings",
    where: str = "",
    spare_author: bool = True,
) -> list[Message]:
    """The emails of one hook for one context: none when nobody is left in ``recipients``,
    one for all of them, or one for each with ``"private": true``.

    Addresses that opted out of the hook's owner are left out, and with
    ``"notify_author": false`` the change's author, unless ``spare_author`` is false.
    """
    left_out = _left_out(hook, context, finder, where, spare_author)
    to = _without(addresses(hook, "recipients", context, finder, settings, where), left_out)
    if not to:
        return []
    private = hook.get("private") is True
    cc: list[str] = []
    bcc: list[str] = []
    if private and (hook.get("cc") or hook.get("bcc")):
        # Validation refuses these; storage may hold metadata saved before it existed.
        logger.warning("Hook %s: cc and bcc are ignored on a private hook", where)
    elif not private:
        cc = recipients.without(addresses(hook, "cc", context, finder, settings, where), to)
        bcc = addresses(hook, "bcc", context, finder, settings, where)
        bcc = recipients.without(bcc, to + cc)
        cc, bcc = _without(cc, left_out), _without(bcc, left_out)
    reply_to = addresses(hook, "reply_to", context, finder, settings, where)
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
