"""The change that a preview's body describes, as the listener reads an event.

``{"data": {"resource_name", "action", "new", "old", "event", "comment", "changes_count",
"metadata", "metadata_on"}}``: every field is optional; a refused one is a 400 (errno 107)
that names it.
"""

import difflib
import time
import uuid
from dataclasses import dataclass
from typing import Any, NoReturn

from kinto.core.errors import raise_invalid
from kinto.core.storage.exceptions import ObjectNotFoundError
from pyramid.request import Request

from .. import uris
from ..hooks import events as event_names
from ..hooks import selection
from ..hooks.fields import ACTIONS, RESOURCE_NAMES
from ..hooks.kinds import KINDS


#: The metadata keys of the hooks that a preview may try, and their channel.
CHANNELS = {kind.key: kind.channel for kind in KINDS}
#: Where tried metadata goes: on the collection (as if saved there), or on its bucket.
PLACES = ("collection", "bucket")
FIELDS = (
    "resource_name",
    "action",
    "new",
    "old",
    "event",
    "comment",
    "changes_count",
    "metadata",
    "metadata_on",
)


@dataclass
class PreviewChange:
    """What the listener reads of an event (``event_names.ChangeEvent``), made up."""

    request: Request
    payload: dict[str, Any]
    impacted_objects: list[dict[str, Any]]
    #: The event it stands for (``listener.event_name`` reads it).
    emailer_event_name: str
    comment: str | None = None
    changes_count: int | None = None


@dataclass
class Described:
    """A preview's body, read: the change, and the metadata to try and where."""

    change: PreviewChange
    metadata: dict[str, Any]
    metadata_on: str


def _invalid(request: Request, field: str, message: str) -> NoReturn:
    raise_invalid(request, name=f"data.{field}", description=message)
    raise AssertionError("raise_invalid raises")  # For type checkers: it is typed ``None``.


def _one_of(request: Request, data: dict[str, Any], field: str, allowed: tuple[str, ...]) -> str:
    value = data[field]
    if value not in allowed:
        close = difflib.get_close_matches(str(value), allowed, n=1)
        hint = f'; did you mean "{close[0]}"?' if close else ""
        _invalid(request, field, f'"{field}" must be {" or ".join(allowed)}{hint}')
    return value


def _object(request: Request, data: dict[str, Any], field: str) -> dict[str, Any]:
    value = data[field]
    if not isinstance(value, dict):
        _invalid(request, field, f'"{field}" must be an object')
    if "id" in value and not isinstance(value["id"], str):
        _invalid(request, field, f'"{field}": "id" must be a string')
    return value


def read_body(request: Request) -> dict[str, Any]:
    """The body's ``data``, with defaults; a 400 naming the first field refused."""
    try:
        body = request.json_body
    except ValueError:
        body = None
    data = body.get("data", {}) if isinstance(body, dict) else None
    if not isinstance(data, dict):
        _invalid(request, "data", 'The body must be {"data": {...}}, describing a change')
    for field in data:
        if field not in FIELDS:
            close = difflib.get_close_matches(str(field), FIELDS, n=1)
            hint = f'; did you mean "{close[0]}"?' if close else ""
            _invalid(request, str(field), f'Unknown field "{field}"{hint}')
    review = "event" in data and data["event"] not in selection.KINTO_EVENTS
    # A review event is about a collection, which it updates (kinto-signer's).
    data = {
        "resource_name": "collection" if review else "record",
        "action": "update" if review else "create",
        "metadata_on": "collection",
        "metadata": {},
        "new": {},
        "old": {},
        **data,
    }
    _one_of(request, data, "resource_name", RESOURCE_NAMES)
    _one_of(request, data, "action", ACTIONS)
    _one_of(request, data, "metadata_on", PLACES)
    for field in ("new", "old", "metadata"):
        _object(request, data, field)
    for key in data["metadata"]:
        if key not in CHANNELS:
            known = ", ".join(f'"{k}"' for k in CHANNELS)
            _invalid(request, "metadata", f'Unknown hooks "{key}" in "metadata": try {known}')
    if "event" in data:
        name = data["event"]
        if not isinstance(name, str) or not event_names.is_known(name):
            suggested = event_names.suggestion(name) if isinstance(name, str) else None
            hint = f'; did you mean "{suggested}"?' if suggested else ""
            _invalid(request, "event", f'Unknown event "{name}"{hint}')
    if not isinstance(data.get("comment", ""), str):
        _invalid(request, "comment", '"comment" must be a string')
    count = data.get("changes_count", 0)
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        _invalid(request, "changes_count", '"changes_count" must be a whole number')
    if data["resource_name"] == "collection":
        for field in ("new", "old"):
            if any(key in data[field] for key in CHANNELS):
                _invalid(request, field, 'Hooks to try go in "metadata", not in the collection')
    return data


def _stored(request: Request, resource_name: str, parent_id: str, object_id: str) -> dict:
    try:
        storage = request.registry.storage
        return storage.get(resource_name=resource_name, parent_id=parent_id, object_id=object_id)
    except ObjectNotFoundError:
        return {}


def _objects(
    request: Request, data: dict[str, Any], parent_id: str, object_id: str, timestamp: int
) -> dict[str, Any]:
    """``new`` and ``old`` as Kinto would pass them: the stored object where none is given."""
    action, resource_name = data["action"], data["resource_name"]
    new, old = dict(data["new"]), dict(data["old"])
    if action != "create" and not old:
        old = _stored(request, resource_name, parent_id, object_id)
    if action == "delete":
        new = new or {"deleted": True}
    elif resource_name == "collection":
        # A collection keeps what it holds where the body says nothing, its hooks too.
        new = {**old, **new}
    new = {**new, "id": object_id, "last_modified": timestamp}
    return {"new": new, "old": {**old, "id": object_id} if old else {}}


def describe(request: Request, data: dict[str, Any]) -> Described:
    """The change of a preview's body (``read_body``), on the collection of the URL."""
    bucket_id = request.matchdict["bucket_id"]
    collection_id = request.matchdict["collection_id"]
    resource_name = data["resource_name"]
    collection_uri = uris.collection_uri(bucket_id, collection_id)
    if resource_name == "collection":
        object_id, parent_id = collection_id, uris.bucket_uri(bucket_id)
    else:
        given = data["new"].get("id") or data["old"].get("id")
        object_id, parent_id = given or str(uuid.uuid4()), collection_uri
    timestamp = int(time.time() * 1000)
    impacted = _objects(request, data, parent_id, object_id, timestamp)
    metadata, place = data["metadata"], data["metadata_on"]
    if resource_name == "collection" and place == "collection":
        # A collection's change reads the hooks of the collection that it carries.
        impacted["new" if data["action"] != "delete" else "old"].update(metadata)
    payload = {
        "resource_name": resource_name,
        "action": data["action"],
        "bucket_id": bucket_id,
        "collection_id": collection_id,
        "timestamp": timestamp,
        "user_id": request.prefixed_userid,
        "uri": collection_uri
        if resource_name == "collection"
        else f"{parent_id}/records/{object_id}",
    }
    extra: dict[str, Any] = {
        name: data[name] for name in ("comment", "changes_count") if name in data
    }
    change = PreviewChange(
        request=request,
        payload={**payload, **extra},
        impacted_objects=[impacted],
        emailer_event_name=data.get("event", selection.KINTO_EVENT),
        **extra,
    )
    return Described(change, metadata, place)
