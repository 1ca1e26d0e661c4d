"""The fields of a hook: strings, flags, filters and address lists, each with its 400s."""

import difflib
from collections.abc import Callable
from typing import Any

import colander
import regex

from .. import addresses as recipients
from . import events, patterns, templates


RESOURCE_NAMES = ("record", "collection")
ACTIONS = ("create", "update", "delete")
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


class Text(colander.String):
    """A string, and only a string: colander would drop ``null``, ``0`` or ``false``."""

    def deserialize(self, node: colander.SchemaNode, cstruct: object) -> Any:
        if cstruct is not colander.null and not isinstance(cstruct, str):
            raise colander.Invalid(node, f'"{node.name}" must be a string')
        return super().deserialize(node, cstruct)


def no_line_break(node: colander.SchemaNode, value: str) -> None:
    if any(c in value for c in "\r\n"):
        raise colander.Invalid(node, f'Line break not allowed in "{node.name}"')


def _filter_validator(node: colander.SchemaNode, value: str) -> None:
    if any(c in value for c in "\r\n\0"):
        raise colander.Invalid(node, f'Line break not allowed in "{node.name}"')
    if patterns.is_pattern(value):
        try:
            patterns.compile_pattern(value)
        except regex.error as e:
            raise colander.Invalid(node, f'Invalid regular expression in "{node.name}": {e}')


def _not_allowed(field: str, value: str, allowed: tuple[str, ...], suggestion: str | None) -> str:
    message = f'Invalid "{field}" "{value}": allowed values are {", ".join(allowed)}'
    return message + (f'; did you mean "{suggestion}"?' if suggestion else "")


class Filter(colander.SchemaNode):
    schema_type = Text
    missing = colander.drop
    #: The values the filter takes, besides ``^`` patterns; ``None`` for any.
    choices: tuple[str, ...] | None = None

    def validator(self, node: colander.SchemaNode, value: str) -> None:
        _filter_validator(node, value)
        if self.choices is None or patterns.is_pattern(value) or value in self.choices:
            return
        close = difflib.get_close_matches(value, self.choices, n=1)
        allowed = (*self.choices, "or a ^ pattern")
        suggestion = close[0] if close else None
        raise colander.Invalid(node, _not_allowed(node.name, value, allowed, suggestion))


class EventFilter(Filter):
    def validator(self, node: colander.SchemaNode, value: str) -> None:
        _filter_validator(node, value)
        if patterns.is_pattern(value) or events.is_known(value):
            return
        allowed = (*events.KNOWN_EVENTS, "an event class of a loaded module", "a ^ pattern")
        suggestion = events.suggestion(value)
        raise colander.Invalid(node, _not_allowed(node.name, value, allowed, suggestion))


class Flag(colander.Boolean):
    """``true`` or ``false``, and only those: colander would read ``"no"`` as true."""

    def deserialize(self, node: colander.SchemaNode, cstruct: object) -> Any:
        if cstruct is colander.null:
            return cstruct
        if not isinstance(cstruct, bool):
            raise colander.Invalid(node, f'"{node.name}" must be true or false')
        return cstruct


class Seconds(colander.Int):
    """A whole number of seconds within bounds, and only that: colander would read ``"5"``."""

    def __init__(self, low: int, high: int):
        super().__init__()
        self.low, self.high = low, high

    def deserialize(self, node: colander.SchemaNode, cstruct: object) -> Any:
        if cstruct is colander.null:
            return cstruct
        if (
            isinstance(cstruct, bool)
            or not isinstance(cstruct, int)
            or not (self.low <= cstruct <= self.high)
        ):
            raise colander.Invalid(
                node,
                f'"{node.name}" must be a whole number of seconds from {self.low} to {self.high}',
            )
        return cstruct


class StringList(colander.Sequence):
    """A list of strings, or one string as a list of one: colander would iterate a string."""

    def deserialize(
        self, node: colander.SchemaNode, cstruct: object, accept_scalar: bool | None = None
    ) -> Any:
        if isinstance(cstruct, str):
            cstruct = [cstruct]
        if cstruct is not colander.null and not (
            isinstance(cstruct, list) and all(isinstance(e, str) for e in cstruct)
        ):
            raise colander.Invalid(node, f'"{node.name}" must be a string or a list of strings')
        return super().deserialize(node, cstruct, accept_scalar)


class Recipients(colander.SequenceSchema):
    """Addresses and group URIs: ``recipients`` (``To:``), ``cc``, ``bcc``, ``reply_to``."""

    schema_type = StringList
    recipient = colander.SchemaNode(Text())
    #: Whether an entry may be a template that renders to an address (``{new[email]}``).
    templated = False

    def validator(self, node: colander.SchemaNode, value: list[str]) -> None:
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
            if recipients.is_group_uri(entry):
                _check_group_placeholders(node, entry)
        # A reply reaches nobody unasked: reply_to is not restricted.
        domains = self.bindings["settings"].recipient_domains
        if domains and field != "reply_to":
            # Every address parses: those that don't were refused above.
            parsed = [
                (e, recipients.parse_address(e))
                for e in addresses
                if not recipients.is_group_uri(e)
            ]
            outside = [
                e
                for e, address in parsed
                if address is not None and not recipients.at_domains(address[1], domains)
            ]
            if outside:
                where = "" if field == "recipients" else f' in "{field}"'
                raise colander.Invalid(
                    node,
                    f"Recipients outside kinto_emailer.recipient_domains{where}: "
                    f"{', '.join(outside)} (allowed: {', '.join(domains)})",
                )


def _check_group_placeholders(node: colander.SchemaNode, entry: str) -> None:
    """Record data and writer-chosen ids never choose whose group receives an email."""
    for piece in templates.parse(entry):
        if not isinstance(piece, str) and piece[0] not in GROUP_URI_PLACEHOLDERS:
            raise colander.Invalid(
                node,
                f'Placeholder "{piece[2]}" not allowed in group {entry} in "{node.name}": '
                "a group URI may use {bucket_id} and {collection_id} only",
            )


class ReplyTo(Recipients):
    templated = True


def _bucket_placeholder(bucket_id: str) -> Callable[[str], str]:
    return lambda uri: uri.replace("{bucket_id}", bucket_id)
