"""Who one hook's email reaches: its address fields rendered, groups expanded, kept within
``kinto_emailer.recipient_domains`` and ``max_expanded_recipients``; and who is left out
of it (the author a hook spares; addresses that opted out in a preview only: a write leaves
them to delivery, ``delivery.optouts``)."""

import logging
from typing import TYPE_CHECKING, Any

from .. import addresses as recipients
from ..hooks import templates
from ..hooks.fields import GROUP_URI_PLACEHOLDERS, address_entries
from ..log_values import quoted
from ..trace import NO_TRACE, Trace
from . import optouts


if TYPE_CHECKING:
    from ..config import EmailerSettings
    from ..hooks.selection import HookFinder

# The composing's logger: who a hook reaches is part of what it composes.
logger = logging.getLogger("kinto_emailer.compose")


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


#: Why a hook's email doesn't reach the author of the change.
SPARED_AUTHOR = 'The author of the change, and the hook says "notify_author": false'


class LeftOut:
    """Who a hook's email must not reach: with ``"notify_author": false`` the author's
    mailbox, when the user id proves it; in a preview, the addresses (lower case) that opted
    out, as delivery will leave them out (``optouts.opted_out``)."""

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
