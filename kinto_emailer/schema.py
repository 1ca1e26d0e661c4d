"""The shape of the ``kinto-emailer`` metadata, and the 400s when it is saved."""

import colander
import regex
from kinto.core.errors import raise_invalid

from . import recipients, selection, templates


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


class Filter(colander.SchemaNode):
    schema_type = Text
    missing = colander.drop

    def validator(self, node, value):
        _filter_validator(node, value)


class Recipients(colander.SequenceSchema):
    recipient = colander.SchemaNode(Text(), validator=_no_line_break)

    def validator(self, node, value):
        if not value:
            raise colander.Invalid(node, "Empty list of recipients")
        limit = self.bindings["settings"].max_recipients
        if len(value) > limit:
            raise colander.Invalid(
                node,
                f"Too many recipients: {len(value)} (kinto_emailer.max_recipients is {limit})",
            )
        bucket_id = self.bindings["bucket_id"]
        bad, foreign = recipients.invalid_entries(value, bucket_id, _bucket_placeholder(bucket_id))
        if bad:
            raise colander.Invalid(node, "Invalid recipients " + ", ".join(bad))
        if foreign:
            raise colander.Invalid(node, "Invalid bucket for groups " + ", ".join(foreign))
        for entry in value:
            if recipients.is_group_uri(entry):
                try:
                    templates.check(entry, "recipients")
                except templates.TemplateError as e:
                    raise colander.Invalid(node, str(e))


def _bucket_placeholder(bucket_id):
    return lambda uri: uri.replace("{bucket_id}", bucket_id)


class Hook(colander.MappingSchema):
    resource_name = Filter()
    action = Filter()
    collection_id = Filter()
    record_id = Filter()
    id = Filter()
    event = Filter()
    subject = colander.SchemaNode(
        Text(allow_empty=True), missing=colander.drop, validator=_no_line_break
    )
    sender = colander.SchemaNode(Text(), missing=colander.drop)
    template = colander.SchemaNode(Text(allow_empty=True), missing_msg='Missing "template"')
    recipients = Recipients(missing_msg='Missing "recipients"')

    def validator(self, node, hook):
        settings = self.bindings["settings"]
        if "sender" in hook:
            if any(c in hook["sender"] for c in "\r\n"):
                raise colander.Invalid(node["sender"], 'Line break not allowed in "sender"')
            if recipients.parse_address(hook["sender"]) is None:
                raise colander.Invalid(node["sender"], f"Invalid sender {hook['sender']}")
        limit = settings.max_template_length
        # A plugin's own event may carry fields of its own: accept names we don't know.
        strict = hook.get("event", selection.KINTO_EVENT) in selection.KINTO_EVENTS
        for field in ("subject", "template"):
            text = hook.get(field, "")
            if len(text) > limit:
                raise colander.Invalid(
                    node[field],
                    f'"{field}" is {len(text)} characters long '
                    f"(kinto_emailer.max_template_length is {limit})",
                )
            try:
                templates.check(text, field, strict=strict)
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


def _messages(error):
    return "; ".join(
        f"{path}: {message}" if path else message for path, message in error.asdict().items()
    )


def validate_metadata(event):
    """Refuse a bucket or collection whose ``kinto-emailer`` metadata can't work."""
    settings = event.request.registry.emailer.settings
    for impacted in event.impacted_objects:
        new = impacted.get("new") or {}
        if selection.METADATA_KEY not in new:
            continue
        if event.payload["resource_name"] == "bucket":
            bucket_id = new["id"]
        else:
            bucket_id = event.payload["bucket_id"]
        schema = EmailerMetadata().bind(settings=settings, bucket_id=bucket_id)
        try:
            value = new[selection.METADATA_KEY]
            if not isinstance(value, dict):
                raise colander.Invalid(schema, f'"{selection.METADATA_KEY}" must be an object')
            schema.deserialize(value)
        except colander.Invalid as e:
            raise_invalid(
                event.request,
                name=f"data.{selection.METADATA_KEY}",
                description=_messages(e),
            )
