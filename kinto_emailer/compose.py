"""What one hook's email says and who gets it: subject, text and HTML bodies, addresses."""

import logging

from pyramid_mailer.message import Message

from . import mime, recipients, templates


logger = logging.getLogger(__name__)

DEFAULT_SUBJECT = "New message"
#: Fields of a hook that list addresses and group URIs; ``recipients`` fills ``To:``.
ADDRESS_FIELDS = ("recipients", "cc", "bcc", "reply_to")
#: What a group URI may read: where the change happened, never what a writer chose.
GROUP_URI_PLACEHOLDERS = ("bucket_id", "collection_id")


def _entries(hook, field, where):
    entries = hook.get(field)
    if entries is None:
        return []
    if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
        # Validation refuses these; storage may hold metadata saved before it existed.
        logger.warning("Hook %s: %s must be a list of strings", where, field)
        entries = [e for e in entries if isinstance(e, str)] if isinstance(entries, list) else []
    return entries


def _render_entry(entry, field, context, where):
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


def addresses(hook, field, context, finder, settings, where=""):
    """The unique addresses of one field of ``hook``, groups expanded, within the limit."""
    entries = _entries(hook, field, where)
    if not entries:  # Most hooks have no cc, bcc nor reply_to.
        return []
    rendered = [_render_entry(e, field, context, where) for e in entries]
    # A reply reaches nobody unasked: reply_to is not restricted.
    domains = settings.recipient_domains if field != "reply_to" else ()
    left_out = []
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


def _text(hook, field, default=None):
    if field not in hook:
        return default
    if not isinstance(hook[field], str):
        # Validation refuses these: the hook is skipped, as a hook that can't render.
        raise TypeError(f"{field} must be a string, not {type(hook[field]).__name__}")
    return hook[field]


def compose(hook, context, finder, settings, where=""):
    """The emails of one hook for one context: none when nobody is left in ``recipients``,
    one for all of them, or one for each with ``"private": true``."""
    to = addresses(hook, "recipients", context, finder, settings, where)
    if not to:
        return []
    private = hook.get("private") is True
    cc = bcc = []
    if private and (hook.get("cc") or hook.get("bcc")):
        # Validation refuses these; storage may hold metadata saved before it existed.
        logger.warning("Hook %s: cc and bcc are ignored on a private hook", where)
    elif not private:
        cc = recipients.without(addresses(hook, "cc", context, finder, settings, where), to)
        bcc = addresses(hook, "bcc", context, finder, settings, where)
        bcc = recipients.without(bcc, to + cc)
    reply_to = addresses(hook, "reply_to", context, finder, settings, where)

    sender = recipients.format_address(hook.get("sender") or "")
    subject = templates.render_line(_text(hook, "subject", DEFAULT_SUBJECT), context)
    body = templates.render(_text(hook, "template", ""), context)
    html_template = _text(hook, "html_template")
    html = (
        None if html_template is None else templates.render(html_template, context, as_html=True)
    )

    def message(to):
        headers = mime.identity_headers()  # Date: when the event is turned into an email.
        if reply_to:
            headers["Reply-To"] = ", ".join(reply_to)
        return Message(
            subject=subject,
            sender=sender or settings.default_sender,
            recipients=to,
            cc=cc,
            bcc=bcc,
            body=body,
            html=html,
            extra_headers=headers,
        )

    return [message([address]) for address in to] if private else [message(to)]
