"""What a hook's templates see of a change: the request's placeholders, shared by the
objects it changed, then each impacted object's own."""

from typing import TYPE_CHECKING, Any

from .. import uris
from ..hooks import selection, templates


#: What a message says of the change that asked for it, in the outbox and its status views.
ORIGIN = ("bucket_id", "collection_id", "uri", "action", "event")

if TYPE_CHECKING:
    from ..config import EmailerSettings
    from ..hooks.events import ChangeEvent


def event_name(event: object) -> str:
    cls = type(event)
    # A preview's change says which event it stands for.
    name = getattr(event, "emailer_event_name", None) or f"{cls.__module__}.{cls.__qualname__}"
    # Emails about ordinary changes are sent after commit: they carry the name people filter on.
    return selection.KINTO_EVENT if name == selection.KINTO_EVENT_SYNONYM else name


def request_context(event: "ChangeEvent", settings: "EmailerSettings") -> dict[str, Any]:
    request = event.request
    try:
        root_url = request.route_url("hello")
    except Exception:  # Route-less requests, such as a plugin's own script.
        root_url = request.application_url + "/"
    return {
        "user_id": event.payload.get("user_id") or request.prefixed_userid,
        "root_url": root_url,
        "client_address": request.client_addr,
        "user_agent": request.user_agent,
        "event": event_name(event),
        "settings": settings.exposed_settings,
    }


def object_context(
    event: "ChangeEvent", impacted: dict[str, Any], base: dict[str, Any]
) -> dict[str, Any]:
    """Placeholders for one impacted object: ids come from the object, never the payload.

    Kinto merges the events of a batch, so the payload's ids are those of the first object.
    """
    payload = event.payload
    new, old = impacted.get("new") or {}, impacted.get("old") or {}
    obj = new or old
    context = {
        # A plugin's event may carry fields of its own: they render when present.
        **{k: v for k, v in payload.items() if isinstance(v, str | int | float)},
        **base,
        "resource_name": payload.get("resource_name"),
        "action": payload.get("action"),
        "bucket_id": payload.get("bucket_id"),
        "timestamp": obj.get("last_modified", payload.get("timestamp")),
        "id": obj.get("id"),
        "new": new,
        "old": old,
    }
    for name in templates.EVENT_PLACEHOLDERS:
        if getattr(event, name, None) is not None:
            context[name] = getattr(event, name)
    bid = context["bucket_id"]
    if context["resource_name"] == "record":
        cid = context["collection_id"] = payload.get("collection_id")
        context["record_id"] = obj.get("id")
        context["uri"] = uris.record_uri(bid, f"{cid}", f"{obj.get('id')}")
    else:
        context.pop("record_id", None)
        context["collection_id"] = obj.get("id")
        context["uri"] = uris.collection_uri(bid, f"{obj.get('id')}")
    return context


def origin(context: dict[str, Any]) -> dict[str, Any]:
    return {name: context.get(name) for name in ORIGIN}
