"""What one ``kinto-slack`` hook posts: ``{"channel", "text"}``, its template rendered with
the placeholders of email templates, as kinto-slack posted it.

Placeholder values are escaped as Slack asks (``&``, ``<``, ``>``): a record's ``<!here>``
or ``<https://evil|bank>`` stays text, while the template's own text is the hook author's
Slack markup (links, mentions).
"""

from typing import Any

from ..hooks import templates
from ..outbox import Email
from .context import origin
from .drafts import items_of, with_items


#: Slack cuts longer texts: in bytes of UTF-8, at most as many characters.
MAX_TEXT_BYTES = 40_000
CHANNEL = "slack"


def escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _string(hook: dict[str, Any], field: str) -> str:
    value = hook.get(field)
    if not isinstance(value, str):
        # Validation refuses these: the hook is skipped, as a hook that can't render.
        raise TypeError(f"{field} must be a string, not {type(value).__name__}")
    return value


def _item(hook: dict[str, Any], text: str, where: str, origin: dict[str, Any]) -> Email:
    channel = _string(hook, "channel")
    payload = {"channel": channel, "text": text}
    return Email(None, where, channel=CHANNEL, destination=channel, payload=payload, **origin)


def slack_message(hook: dict[str, Any], context: dict[str, Any], where: str) -> Email:
    """The outbox item of one hook for one change (``context``: ``compose.context``'s)."""
    text = templates.render(_string(hook, "template"), context, MAX_TEXT_BYTES, escape=escape)
    return _item(hook, text, where, origin(context))


def slack_digest(
    hook: dict[str, Any],
    first: dict[str, Any],
    lines: list[str],
    count: int,
    where: str,
    origin: dict[str, Any],
) -> Email:
    """One message for a request's ``count`` changes: the first one's placeholders,
    ``{count}``, and ``{items}`` (its ``lines``, escaped when rendered; appended when the
    template lacks it)."""
    template = _string(with_items(hook)[0], "template")
    # Its lines were escaped as they were rendered (``Digest.add``): ``Lines`` stay as they are.
    context = {**first, "count": str(count), "items": templates.Lines(items_of(lines, count))}
    text = templates.render(template, context, MAX_TEXT_BYTES, escape=escape)
    return _item(hook, text, where, origin)
