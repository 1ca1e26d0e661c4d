"""What one ``kinto-webhooks`` hook sends: a Standard Webhooks body describing the change,
and the ``webhook-id`` that every attempt to deliver it carries (made here, once).

``{"type": "kinto.record.create", "timestamp": "2026-01-02T03:04:05.678Z", "data": {...}}``:
``timestamp`` is when the change happened (RFC 3339, UTC, as the spec's examples have it),
from Kinto's own timestamp of the object, which ``data.timestamp`` keeps (epoch ms).
"""

import datetime
import json
import time
import uuid
from typing import Any

from ..hooks import events, templates
from ..outbox import Email
from .context import origin


CHANNEL = "webhook"
#: What ``data`` says of every change; review events add their own fields when present.
DATA_FIELDS = (
    "bucket_id",
    "collection_id",
    "id",
    "uri",
    "action",
    "resource_name",
    "user_id",
    "timestamp",
    "new",
    "old",
    "event",
)
#: A review event's type: ``ReviewRequested`` -> ``kinto.review.requested``.
REVIEW_TYPES = {
    f"{module}.{name}": f"kinto.review.{name.removeprefix('Review').lower()}"
    for module in events.REVIEW_EVENT_MODULES
    for name in events.REVIEW_EVENTS
}


def event_type(context: dict[str, Any]) -> str:
    """``kinto.<resource_name>.<action>``; a review event's own (``kinto.review.approved``)."""
    review = REVIEW_TYPES.get(str(context.get("event")))
    return review or f"kinto.{context.get('resource_name')}.{context.get('action')}"


def rfc3339(milliseconds: object) -> str:
    """Kinto's timestamp (epoch milliseconds) as ``2026-01-02T03:04:05.678Z``; now if none."""
    if isinstance(milliseconds, bool) or not isinstance(milliseconds, int | float):
        milliseconds = time.time() * 1000
    moment = datetime.datetime.fromtimestamp(milliseconds / 1000, datetime.timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def body(context: dict[str, Any]) -> dict[str, Any]:
    data = {name: context.get(name) for name in DATA_FIELDS}
    data.update({n: context[n] for n in templates.EVENT_PLACEHOLDERS if n in context})
    # A copy of its own, in JSON's types: the event's objects may change after this.
    data = json.loads(json.dumps(data, default=str))
    return {
        "type": event_type(context),
        "timestamp": rfc3339(context.get("timestamp")),
        "data": data,
    }


def webhook_message(hook: dict[str, Any], context: dict[str, Any], where: str) -> Email:
    """The outbox item of one hook for one change (``context``: ``compose.context``'s)."""
    endpoint = hook.get("endpoint")
    if not isinstance(endpoint, str):
        # Validation refuses these: the hook is skipped, as a hook that can't render.
        raise TypeError(f"endpoint must be a string, not {type(endpoint).__name__}")
    # No "." in it: the signed content is "{id}.{timestamp}.{body}".
    payload = {"id": f"msg_{uuid.uuid4().hex}", "body": body(context)}
    return Email(
        None, where, channel=CHANNEL, destination=endpoint, payload=payload, **origin(context)
    )
