"""The shape of the ``kinto-emailer`` metadata, and the 400s when it is saved."""

import difflib
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
from .patterns import (
    MAX_PATTERN_SIZE,
    MAX_PATTERNS_LENGTH,
    MAX_PATTERNS_SIZE,
    PatternError,
    pattern_size,
)


if TYPE_CHECKING:
    from ..config import EmailerSettings


def _sender_domains(settings: "EmailerSettings") -> tuple[str, ...]:
    own = settings.default_sender.rpartition("@")[2].strip(" >").lower()
    return (own, *(d for d in settings.sender_domains if d != own))


class Hook(colander.MappingSchema):
    resource_name = Filter(choices=RESOURCE_NAMES)
    action = Filter(choices=ACTIONS)
    collection_id = Filter()
    record_id = Filter()
    id = Filter()
    event = EventFilter()
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
        for field in ("cc", "bcc"):
            if hook.get("private") and hook.get(field):
                raise colander.Invalid(
                    node[field],
                    f'"{field}" can\'t be used with "private": true '
                    '(each recipient gets an email of their own): list them in "recipients"',
                )
        limit = settings.max_template_length
        # A plugin's own event may carry fields of its own: accept names we don't know.
        strict = hook.get("event", selection.KINTO_EVENT) in selection.KINTO_EVENTS
        for field in ("subject", "template", "html_template", "item_template"):
            text = hook.get(field, "")
            if len(text) > limit:
                raise colander.Invalid(
                    node[field],
                    f'"{field}" is {len(text)} characters long '
                    f"(kinto_emailer.max_template_length is {limit})",
                )
            extra = templates.DIGEST_PLACEHOLDERS if digest and field != "item_template" else ()
            _check_recipient_placeholders(node[field], field, text)
            if UNSUBSCRIBE_URL in templates.names(text):
                _check_unsubscribe_url(node[field], field, hook)
                extra = (*extra, UNSUBSCRIBE_URL)
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


class Hooks(colander.SequenceSchema):
    hook = Hook()

    def validator(self, node: colander.SchemaNode, value: list[dict[str, Any]]) -> None:
        limit = self.bindings["settings"].max_hooks
        if len(value) > limit:
            raise colander.Invalid(
                node, f"Too many hooks: {len(value)} (kinto_emailer.max_hooks is {limit})"
            )


class EmailerMetadata(colander.MappingSchema):
    hooks = Hooks(missing_msg='Missing "hooks"')


HOOK_FIELDS = tuple(child.name for child in Hook().children)


def _unknown_fields(node: colander.SchemaNode, value: dict[str, Any]) -> None:
    """Typos first: ``"templat"`` would otherwise be reported as a missing ``"template"``."""
    hooks = value.get("hooks")
    messages = []
    for index, hook in enumerate(hooks if isinstance(hooks, list) else []):
        for field in hook if isinstance(hook, dict) else ():
            if field in HOOK_FIELDS:
                continue
            message = f'Unknown field "{field}" in hook {index}'
            close = difflib.get_close_matches(str(field), HOOK_FIELDS, n=1)
            messages.append(message + (f'; did you mean "{close[0]}"?' if close else ""))
    if messages:
        raise colander.Invalid(node, "; ".join(messages))


def _patterns_size(node: colander.SchemaNode, value: dict[str, Any]) -> None:
    """Bound the work of compiling a save's patterns, before any of them is compiled."""
    hooks = value.get("hooks")
    patterns = [
        hook[name]
        for hook in (hooks if isinstance(hooks, list) else [])
        if isinstance(hook, dict)
        for name in selection.FILTERS
        if selection.is_pattern(hook.get(name))
    ]
    where = "for all the hooks of a bucket or collection"
    length = sum(map(len, patterns))
    if length > MAX_PATTERNS_LENGTH:
        raise colander.Invalid(
            node,
            f"Regular expressions too long together: {length} characters "
            f"(at most {MAX_PATTERNS_LENGTH} {where})",
        )
    size = 0
    for pattern in patterns:
        try:
            # One pattern too large is reported with the name of its filter.
            size += min(pattern_size(pattern), MAX_PATTERN_SIZE)
        except PatternError:
            continue  # Reported with the name of its filter too.
        if size > MAX_PATTERNS_SIZE:
            raise colander.Invalid(
                node,
                "Regular expressions too large together once repeats are unrolled: "
                f"over {MAX_PATTERNS_SIZE} {where}",
            )


def messages(error: colander.Invalid) -> str:
    return "; ".join(
        f"{path}: {message}" if path else message for path, message in error.asdict().items()
    )


def check(value: object, settings: "EmailerSettings", bucket_id: str) -> None:
    """Raise ``colander.Invalid`` unless ``value`` is metadata whose hooks can work."""
    schema = EmailerMetadata().bind(settings=settings, bucket_id=bucket_id)
    if not isinstance(value, dict):
        raise colander.Invalid(schema, f'"{selection.METADATA_KEY}" must be an object')
    _unknown_fields(schema, value)
    _patterns_size(schema, value)
    schema.deserialize(value)
