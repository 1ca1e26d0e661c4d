"""Placeholder parsing, checking and rendering for hook subjects and bodies.

Templates use Python's ``{name}`` syntax with ``{{``/``}}`` escapes, but only a small part
of it: a placeholder is a name optionally followed by ``[key]`` look-ups. Attribute access,
conversions and format specs are refused, so a template can neither reach into Python
objects nor ask for huge strings.
"""

import functools
import html
import json
import re
import string
from collections.abc import Callable, Mapping
from typing import Any

from ..config import EXPOSED_SETTINGS


#: Placeholders every change has.
RESOURCE_PLACEHOLDERS = (
    "bucket_id",
    "collection_id",
    "record_id",
    "id",
    "user_id",
    "resource_name",
    "uri",
    "action",
    "timestamp",
    "root_url",
    "client_address",
    "user_agent",
    "event",
)
#: Fields that review events add; accepted everywhere, rendered as written when absent.
EVENT_PLACEHOLDERS = ("comment", "changes_count", "changes_size_bytes")
#: Placeholders that take ``[key]`` look-ups.
LOOKUP_PLACEHOLDERS = ("new", "old", "settings")
#: What a digest's subject and bodies add to the placeholders of its first object.
DIGEST_PLACEHOLDERS = ("count", "items")

MAX_SUBJECT_LENGTH = 998
#: In bytes of UTF-8.
MAX_BODY_LENGTH = 1024 * 1024

_FIELD = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<keys>(\[[^\[\]]*\])*)$")
_KEY = re.compile(r"\[([^\[\]]*)\]")
_formatter = string.Formatter()
#: A placeholder of a parsed template: ``(name, keys, source)``.
Placeholder = tuple[str, tuple[str, ...], str]


class TemplateError(ValueError):
    """A template that can't be used: the message says which placeholder and why."""


class Lines(tuple):
    """A value rendered one item per line: joined by line breaks, by ``<br>`` in HTML."""


def parse(template: str) -> list[str | Placeholder]:
    """Split a template into literal text and ``(name, keys, source)`` placeholders."""
    try:
        parts = list(_formatter.parse(template))
    except ValueError as e:
        raise TemplateError(f"{e} (write {{{{ and }}}} for literal braces)")
    pieces: list[str | Placeholder] = []
    for literal, field, spec, conversion in parts:
        if literal:
            pieces.append(literal)
        if field is None:
            continue
        source = "{" + field + (f"!{conversion}" if conversion else "")
        source += (f":{spec}" if spec else "") + "}"
        if conversion:
            raise TemplateError(f'Conversion is not allowed in placeholder "{source}"')
        if spec:
            raise TemplateError(f'Format spec is not allowed in placeholder "{source}"')
        match = _FIELD.match(field)
        if not match:
            raise TemplateError(
                f'Invalid placeholder "{source}": use a name, optionally followed by [key]'
            )
        keys = tuple(_KEY.findall(match.group("keys")))
        pieces.append((match.group("name"), keys, source))
    return pieces


@functools.lru_cache(maxsize=1024)
def _parsed(template: str) -> tuple[str | Placeholder, ...]:
    # A hook's templates render for each of its emails: parsed once each.
    return tuple(parse(template))


def names(template: str) -> set[str]:
    """The placeholder names of a template, or none when it doesn't parse."""
    try:
        return {piece[0] for piece in parse(template) if not isinstance(piece, str)}
    except TemplateError:
        return set()


def check(
    template: str, field_name: str, strict: bool = True, extra: tuple[str, ...] = ()
) -> None:
    """Raise ``TemplateError`` unless every placeholder of ``template`` can be rendered.

    With ``strict=False`` (a hook for a plugin's own event), unknown names are accepted:
    such events may carry fields of their own. ``extra`` names are accepted too.
    """
    try:
        pieces = parse(template)
    except TemplateError as e:
        raise TemplateError(f'Invalid "{field_name}": {e}')
    for piece in pieces:
        if isinstance(piece, str):
            continue
        name, keys, source = piece
        if name in LOOKUP_PLACEHOLDERS:
            if not keys:
                raise TemplateError(
                    f'Invalid placeholder "{source}" in "{field_name}": '
                    f"{name} needs a key, such as {{{name}[...]}}"
                )
            if name == "settings" and (len(keys) > 1 or keys[0] not in EXPOSED_SETTINGS):
                raise TemplateError(
                    f'Invalid placeholder "{source}" in "{field_name}": '
                    f"settings available are {', '.join(EXPOSED_SETTINGS)}"
                )
            continue
        known = name in RESOURCE_PLACEHOLDERS or name in EVENT_PLACEHOLDERS or name in extra
        if keys and known:
            raise TemplateError(
                f'Invalid placeholder "{source}" in "{field_name}": {name} takes no [key]'
            )
        if strict and not known:
            available = ", ".join(
                RESOURCE_PLACEHOLDERS
                + EVENT_PLACEHOLDERS
                + tuple(extra)
                + tuple(f"{n}[...]" for n in LOOKUP_PLACEHOLDERS)
            )
            raise TemplateError(
                f'Invalid placeholder "{source}" in "{field_name}"; available: {available}'
            )


def _as_text(value: object, as_html: bool = False) -> str:
    if isinstance(value, Lines):
        return "<br>\n".join(map(html.escape, value)) if as_html else "\n".join(value)
    if value is None:
        text = ""
    elif isinstance(value, str):
        text = value
    else:
        text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return html.escape(text) if as_html else text


_MISSING = object()


def _lookup(context: Mapping[str, Any], name: str, keys: tuple[str, ...]) -> Any:
    if name not in context:
        return _MISSING
    value = context[name]
    for key in keys:
        if isinstance(value, list) and key.isdigit() and int(key) < len(value):
            value = value[int(key)]  # {new[tags][0]}
        elif isinstance(value, dict) and key in value:
            value = value[key]
        else:
            # A field the object doesn't have reads as empty; anything else as written.
            return "" if name in ("new", "old") else _MISSING
    if name in LOOKUP_PLACEHOLDERS and not keys:
        return _MISSING
    return value


def _clip(text: str, limit: int) -> str:
    # Lone surrogates (JSON allows "\ud800") can't be encoded: they become "?".
    return text.encode("utf-8", "replace")[:limit].decode("utf-8", "ignore")


def render(
    template: str,
    context: Mapping[str, Any],
    limit: int = MAX_BODY_LENGTH,
    as_html: bool = False,
    escape: Callable[[str], str] | None = None,
) -> str:
    """Render a checked template; unknown or absent placeholders render as written.

    Never raises on a template that ``parse`` accepts, and never returns more than
    ``limit`` bytes of UTF-8. With ``as_html``, placeholder values are HTML-escaped (the
    template's own text is the hook author's HTML); ``escape`` escapes them otherwise (a
    Slack message's ``<``, ``>`` and ``&``), but ``Lines``, rendered with it already.
    """
    out = []
    size = 0
    for piece in _parsed(template):
        if isinstance(piece, str):
            text = piece
        else:
            name, keys, source = piece
            value = _lookup(context, name, keys)
            if value is _MISSING:
                text = html.escape(source) if as_html else source
            else:
                text = _as_text(value, as_html)
                # A digest's lines were rendered, and escaped, on their own.
                text = escape(text) if escape and not isinstance(value, Lines) else text
        out.append(text)
        size += len(text)
        if size >= limit:
            break
    return _clip("".join(out)[:limit], limit)


def render_line(
    template: str, context: Mapping[str, Any], escape: Callable[[str], str] | None = None
) -> str:
    """One line: line breaks folded to spaces, at most 998 characters."""
    rendered = render(template, context, limit=MAX_SUBJECT_LENGTH * 4, escape=escape)
    # Runs of blanks collapse too: a header line of only blanks can't be folded for SMTP.
    return " ".join(rendered.split())[:MAX_SUBJECT_LENGTH]
