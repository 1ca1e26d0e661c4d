"""The shape of the ``kinto-emailer`` metadata, and the 400s when it is saved."""

import difflib

import colander
import regex
from kinto.core.errors import raise_invalid

from . import event_names, recipients, rollback, selection, templates


RESOURCE_NAMES = ("record", "collection")
ACTIONS = ("create", "update", "delete")


class Text(colander.String):
    """A string, and only a string: colander would drop ``null``, ``0`` or ``false``."""

    def deserialize(self, node, cstruct):
        if cstruct is not colander.null and not isinstance(cstruct, str):
            raise colander.Invalid(node, f'"{node.name}" must be a string')
        return super().deserialize(node, cstruct)


def _no_line_break(node, value):
    if any(c in value for c in "\r\n"):
        raise colander.Invalid(node, f'Line break not allowed in "{node.name}"')


def _filter_validator(node, value):
    if any(c in value for c in "\r\n\0"):
        raise colander.Invalid(node, f'Line break not allowed in "{node.name}"')
    if selection.is_pattern(value):
        try:
            selection.compile_pattern(value)
        except regex.error as e:
            raise colander.Invalid(node, f'Invalid regular expression in "{node.name}": {e}')


def _not_allowed(field, value, allowed, suggestion):
    message = f'Invalid "{field}" "{value}": allowed values are {", ".join(allowed)}'
    return message + (f'; did you mean "{suggestion}"?' if suggestion else "")


class Filter(colander.SchemaNode):
    schema_type = Text
    missing = colander.drop
    #: The values the filter takes, besides ``^`` patterns; ``None`` for any.
    choices = None

    def validator(self, node, value):
        _filter_validator(node, value)
        if self.choices is None or selection.is_pattern(value) or value in self.choices:
            return
        close = difflib.get_close_matches(value, self.choices, n=1)
        allowed = (*self.choices, "or a ^ pattern")
        raise colander.Invalid(node, _not_allowed(node.name, value, allowed, close and close[0]))


class EventFilter(Filter):
    def validator(self, node, value):
        _filter_validator(node, value)
        if selection.is_pattern(value) or event_names.is_known(value):
            return
        allowed = (*event_names.KNOWN_EVENTS, "an event class of a loaded module", "a ^ pattern")
        suggestion = event_names.suggestion(value)
        raise colander.Invalid(node, _not_allowed(node.name, value, allowed, suggestion))


class Flag(colander.Boolean):
    """``true`` or ``false``, and only those: colander would read ``"no"`` as true."""

    def deserialize(self, node, cstruct):
        if cstruct is colander.null:
            return cstruct
        if not isinstance(cstruct, bool):
            raise colander.Invalid(node, f'"{node.name}" must be true or false')
        return cstruct


class StringList(colander.Sequence):
    """A list of strings, and only that: colander would iterate a string or a mapping."""

    def deserialize(self, node, cstruct, accept_scalar=None):
        if cstruct is not colander.null and not (
            isinstance(cstruct, list) and all(isinstance(e, str) for e in cstruct)
        ):
            raise colander.Invalid(node, f'"{node.name}" must be a list of strings')
        return super().deserialize(node, cstruct, accept_scalar)


class Recipients(colander.SequenceSchema):
    """Addresses and group URIs: ``recipients`` (``To:``), ``cc``, ``bcc``, ``reply_to``."""

    schema_type = StringList
    recipient = colander.SchemaNode(Text())
    #: Whether an entry may be a template that renders to an address (``{new[email]}``).
    templated = False

    def validator(self, node, value):
        field = node.name
        if any(c in entry for entry in value for c in "\r\n"):
            raise colander.Invalid(node, f'Line break not allowed in "{field}"')
        # The messages of ``recipients`` predate the other fields: they stay as they were.
        label = "" if field == "recipients" else f' in "{field}"'
        if not value:
            if field == "recipients":
                raise colander.Invalid(node, "Empty list of recipients")
            return
        limit = self.bindings["settings"].max_recipients
        if len(value) > limit:
            raise colander.Invalid(
                node,
                f"Too many recipients{label}: {len(value)} "
                f"(kinto_emailer.max_recipients is {limit})",
            )
        templated = [
            e for e in value if self.templated and not recipients.is_group_uri(e) and "{" in e
        ]
        addresses = [e for e in value if e not in templated]
        bucket_id = self.bindings["bucket_id"]
        bad, foreign = recipients.invalid_entries(
            addresses, bucket_id, _bucket_placeholder(bucket_id)
        )
        label = label and f"{label}:"
        if bad:
            raise colander.Invalid(node, f"Invalid recipients{label} " + ", ".join(bad))
        if foreign:
            raise colander.Invalid(node, f"Invalid bucket for groups{label} " + ", ".join(foreign))
        for entry in value:
            if recipients.is_group_uri(entry) or entry in templated:
                try:
                    templates.check(entry, field)
                except templates.TemplateError as e:
                    raise colander.Invalid(node, str(e))


class ReplyTo(Recipients):
    templated = True


def _bucket_placeholder(bucket_id):
    return lambda uri: uri.replace("{bucket_id}", bucket_id)


class Hook(colander.MappingSchema):
    resource_name = Filter(choices=RESOURCE_NAMES)
    action = Filter(choices=ACTIONS)
    collection_id = Filter()
    record_id = Filter()
    id = Filter()
    event = EventFilter()
    subject = colander.SchemaNode(
        Text(allow_empty=True), missing=colander.drop, validator=_no_line_break
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
    item_template = colander.SchemaNode(Text(allow_empty=True), missing=colander.drop)

    def validator(self, node, hook):
        settings = self.bindings["settings"]
        if "sender" in hook:
            if any(c in hook["sender"] for c in "\r\n"):
                raise colander.Invalid(node["sender"], 'Line break not allowed in "sender"')
            if recipients.parse_address(hook["sender"]) is None:
                raise colander.Invalid(node["sender"], f"Invalid sender {hook['sender']}")
        digest = hook.get("digest", False)
        if "item_template" in hook and not digest:
            raise colander.Invalid(node["item_template"], '"item_template" needs "digest": true')
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


class Hooks(colander.SequenceSchema):
    hook = Hook()

    def validator(self, node, value):
        limit = self.bindings["settings"].max_hooks
        if len(value) > limit:
            raise colander.Invalid(
                node, f"Too many hooks: {len(value)} (kinto_emailer.max_hooks is {limit})"
            )


class EmailerMetadata(colander.MappingSchema):
    hooks = Hooks(missing_msg='Missing "hooks"')


HOOK_FIELDS = tuple(child.name for child in Hook().children)


def _unknown_fields(node, value):
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


def _messages(error):
    return "; ".join(
        f"{path}: {message}" if path else message for path, message in error.asdict().items()
    )


def _check(value, settings, bucket_id):
    schema = EmailerMetadata().bind(settings=settings, bucket_id=bucket_id)
    if not isinstance(value, dict):
        raise colander.Invalid(schema, f'"{selection.METADATA_KEY}" must be an object')
    _unknown_fields(schema, value)
    schema.deserialize(value)


def validate_metadata(event):
    """Refuse a bucket or collection whose new ``kinto-emailer`` metadata can't work.

    Metadata that a write leaves as it was is not checked again: stored hooks keep working,
    and the rest of the object stays writable.
    """
    request = event.request
    settings = request.registry.emailer.settings
    rollback.remember_saved(event)
    parent_id = rollback.parent_id(event.payload)
    for impacted in event.impacted_objects:
        new = impacted.get("new") or {}
        old = rollback.previous(request, event.payload["resource_name"], parent_id, impacted)
        if selection.METADATA_KEY not in new:
            continue
        if old.get(selection.METADATA_KEY) == new[selection.METADATA_KEY]:
            continue
        if event.payload["resource_name"] == "bucket":
            bucket_id = new["id"]
        else:
            bucket_id = event.payload["bucket_id"]
        try:
            _check(new[selection.METADATA_KEY], settings, bucket_id)
        except colander.Invalid as e:
            rollback.undo_saves(request)
            raise_invalid(request, name=f"data.{selection.METADATA_KEY}", description=_messages(e))
