"""The shape of a ``kinto-emailer`` hook, and the 400s when it is saved; the filters and
template checks that hooks of every channel share."""

from typing import TYPE_CHECKING, Any

import colander

from .. import addresses
from ..outbox.backends import backend as outbox_backend
from . import selection, templates
from .fields import (
    ACTIONS,
    BODY_FIELDS,
    RECIPIENT_PLACEHOLDERS,
    RESOURCE_NAMES,
    UNSUBSCRIBE_URL,
    EventFilter,
    Filter,
    Flag,
    Recipients,
    ReplyTo,
    Seconds,
    Text,
    no_line_break,
)


if TYPE_CHECKING:
    from ..config import EmailerSettings


def _sender_domains(settings: "EmailerSettings") -> tuple[str, ...]:
    own = settings.default_sender.rpartition("@")[2].strip(" >").lower()
    return (own, *(d for d in settings.sender_domains if d != own))


#: The templates of an email hook.
TEXT_FIELDS = ("subject", "template", "html_template", "item_template")


class Filters(colander.MappingSchema):
    """What every hook may filter on, whatever its channel."""

    resource_name = Filter(choices=RESOURCE_NAMES)
    action = Filter(choices=ACTIONS)
    collection_id = Filter()
    record_id = Filter()
    id = Filter()
    event = EventFilter()


class Hook(Filters):
    subject = colander.SchemaNode(
        Text(allow_empty=True), missing=colander.drop, validator=no_line_break
    )
    sender = colander.SchemaNode(Text(), missing=colander.drop)
    template = colander.SchemaNode(Text(allow_empty=True), missing_msg='Missing "template"')
    html_template = colander.SchemaNode(Text(allow_empty=True), missing=colander.drop)
    recipients = Recipients(missing_msg='Missing "recipients"')
    cc = Recipients(missing=colander.drop)
    bcc = Recipients(missing=colander.drop)
    reply_to = ReplyTo(missing=colander.drop)
    private = colander.SchemaNode(Flag(), missing=colander.drop)
    digest = colander.SchemaNode(Flag(), missing=colander.drop)
    digest_window = colander.SchemaNode(Seconds(1, 86400), missing=colander.drop)
    item_template = colander.SchemaNode(Text(allow_empty=True), missing=colander.drop)
    notify_author = colander.SchemaNode(Flag(), missing=colander.drop)

    def validator(self, node: colander.SchemaNode, hook: dict[str, Any]) -> None:
        settings = self.bindings["settings"]
        if "sender" in hook:
            if any(c in hook["sender"] for c in "\r\n"):
                raise colander.Invalid(node["sender"], 'Line break not allowed in "sender"')
            parsed = addresses.parse_address(hook["sender"])
            if parsed is None:
                raise colander.Invalid(node["sender"], f"Invalid sender {hook['sender']}")
            allowed = _sender_domains(settings)
            if not addresses.at_domains(parsed[1], allowed):
                raise colander.Invalid(
                    node["sender"],
                    f"Sender {hook['sender']} not allowed: use an address at "
                    f"{', '.join(allowed)} (mail.default_sender and "
                    "kinto_emailer.sender_domains); other domains fail SPF and DMARC",
                )
        check_digest_fields(node, hook, settings)
        for field in ("cc", "bcc"):
            if hook.get("private") and hook.get(field):
                raise colander.Invalid(
                    node[field],
                    f'"{field}" can\'t be used with "private": true '
                    '(each recipient gets an email of their own): list them in "recipients"',
                )
        check_texts(node, hook, settings, TEXT_FIELDS)


def check_digest_fields(node: colander.SchemaNode, hook: dict[str, Any], settings: Any) -> None:
    """``item_template`` and ``digest_window`` need ``digest``; windows, an outbox that
    keeps them."""
    digest = hook.get("digest", False)
    for field in ("item_template", "digest_window"):
        if field in hook and not digest:
            raise colander.Invalid(node[field], f'"{field}" needs "digest": true')
    outbox = outbox_backend(settings)
    if "digest_window" in hook and not outbox.windowed:
        raise colander.Invalid(
            node["digest_window"],
            f'"digest_window" is not available with {outbox.description}: '
            "remove it for one email per request, or use kinto_emailer.outbox",
        )


def check_texts(
    node: colander.SchemaNode,
    hook: dict[str, Any],
    settings: "EmailerSettings",
    fields: tuple[str, ...],
    email: bool = True,
) -> None:
    """The templates of ``hook`` in ``fields``: length, placeholders (a digest's, a
    recipient's where ``email``), syntax."""
    digest = hook.get("digest", False)
    limit = settings.max_template_length
    # A plugin's own event may carry fields of its own: accept names we don't know.
    strict = hook.get("event", selection.KINTO_EVENT) in selection.KINTO_EVENTS
    for field in fields:
        text = hook.get(field, "")
        if len(text) > limit:
            raise colander.Invalid(
                node[field],
                f'"{field}" is {len(text)} characters long '
                f"(kinto_emailer.max_template_length is {limit})",
            )
        extra = templates.DIGEST_PLACEHOLDERS if digest and field != "item_template" else ()
        if email:
            _check_recipient_placeholders(node[field], field, text)
            if UNSUBSCRIBE_URL in templates.names(text):
                _check_unsubscribe_url(node[field], field, hook)
                extra = (*extra, UNSUBSCRIBE_URL)
        elif used := templates.names(text) & set(RECIPIENT_PLACEHOLDERS):
            # Whatever the event: a plugin's own would otherwise let it through, unknown.
            raise colander.Invalid(
                node[field], f'Invalid placeholder "{{{min(used)}}}" in "{field}"'
            )
        unusable = templates.names(text) & set(templates.DIGEST_PLACEHOLDERS) - set(extra)
        if strict and unusable and field != "item_template":
            raise colander.Invalid(
                node[field],
                f'Placeholder "{{{min(unusable)}}}" in "{field}" needs "digest": true',
            )
        try:
            templates.check(text, field, strict=strict, extra=extra)
        except templates.TemplateError as e:
            raise colander.Invalid(node[field], str(e))


def _check_recipient_placeholders(node: colander.SchemaNode, field: str, text: str) -> None:
    if field in BODY_FIELDS:
        return
    used = templates.names(text) & set(RECIPIENT_PLACEHOLDERS)
    if used:
        raise colander.Invalid(
            node,
            f'Placeholder "{{{min(used)}}}" can\'t be used in "{field}": it carries a '
            "recipient's own unsubscribe token, which belongs in the body only (subjects show "
            'in the status views); put it in "template" or "html_template"',
        )


def _check_unsubscribe_url(node: colander.SchemaNode, field: str, hook: dict[str, Any]) -> None:
    placeholder = f'Placeholder "{{{UNSUBSCRIBE_URL}}}"'
    if not hook.get("private"):
        raise colander.Invalid(
            node,
            f'{placeholder} in "{field}" needs "private": true '
            "(each recipient gets an email, and a link, of their own)",
        )


class HookList(colander.SequenceSchema):
    """A metadata key's ``hooks``: its hook schema is given as its child."""

    def validator(self, node: colander.SchemaNode, value: list[dict[str, Any]]) -> None:
        limit = self.bindings["settings"].max_hooks
        if len(value) > limit:
            raise colander.Invalid(
                node, f"Too many hooks: {len(value)} (kinto_emailer.max_hooks is {limit})"
            )
