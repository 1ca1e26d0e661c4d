"""A metadata key's hooks checked as a whole (``kinto-emailer``, ``kinto-slack``,
``kinto-webhooks``): its list, typos first, the size of its patterns, and whether the outbox
holds its channel; each hook is then its schema's (``schema``, ``http_schema``)."""

import difflib
from typing import TYPE_CHECKING, Any

import colander

from ..outbox.backends import backend as outbox_backend
from . import selection
from .patterns import (
    MAX_PATTERN_SIZE,
    MAX_PATTERNS_LENGTH,
    MAX_PATTERNS_SIZE,
    PatternError,
    pattern_size,
)
from .schema import Hook, HookList


if TYPE_CHECKING:
    from ..config import EmailerSettings


def fields_of(hook_schema: type[colander.MappingSchema]) -> tuple[str, ...]:
    return tuple(child.name for child in hook_schema().children)


def _unknown_fields(
    node: colander.SchemaNode, value: dict[str, Any], known: tuple[str, ...]
) -> None:
    """Typos first: ``"templat"`` would otherwise be reported as a missing ``"template"``."""
    hooks = value.get("hooks")
    messages = []
    for index, hook in enumerate(hooks if isinstance(hooks, list) else []):
        for field in hook if isinstance(hook, dict) else ():
            if field in known:
                continue
            message = f'Unknown field "{field}" in hook {index}'
            close = difflib.get_close_matches(str(field), known, n=1)
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


def _metadata_schema(hook_schema: type[colander.MappingSchema]) -> colander.SchemaNode:
    hooks = HookList(hook_schema(name="hook"), name="hooks", missing_msg='Missing "hooks"')
    return colander.SchemaNode(colander.Mapping(), hooks)


def check(
    value: object,
    settings: "EmailerSettings",
    bucket_id: str,
    hook_schema: type[colander.MappingSchema] = Hook,
    key: str = selection.METADATA_KEY,
    channel: str = "email",
) -> None:
    """Raise ``colander.Invalid`` unless ``value`` is metadata whose hooks can work:
    ``key``'s hooks, each of ``hook_schema``, for ``channel``."""
    schema = _metadata_schema(hook_schema).bind(settings=settings, bucket_id=bucket_id)
    if not isinstance(value, dict):
        raise colander.Invalid(schema, f'"{key}" must be an object')
    outbox = outbox_backend(settings)
    if channel not in outbox.channels:
        raise colander.Invalid(
            schema,
            f'"{key}" hooks are not available with {outbox.description}, which holds '
            f"{', '.join(sorted(outbox.channels))} only: remove them, or use "
            "kinto_emailer.outbox",
        )
    _unknown_fields(schema, value, fields_of(hook_schema))
    _patterns_size(schema, value)
    schema.deserialize(value)
