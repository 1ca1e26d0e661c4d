"""A refused save leaves buckets and collections as they were, even without a transaction.

The metadata is checked on Kinto's ``ResourceChanged`` event, once the request has written.
PostgreSQL rolls the request back; the memory backend (or a memory permission backend next
to PostgreSQL storage) can't: before refusing, every bucket and collection that the request
created or updated is put back as it was, with its permissions. On a transactional backend
these writes are rolled back with the rest, so the same code runs on every backend.
"""

import copy
from collections.abc import Iterator
from typing import Any

from kinto.core.events import ACTIONS, ResourceChanged
from kinto.core.storage.exceptions import ObjectNotFoundError
from pyramid.events import ContextFound
from pyramid.request import Request

from .. import uris


RESOURCES = ("bucket", "collection")
BEFORE_KEY = "kinto_emailer.saved_before"
SEEN_KEY = "kinto_emailer.saved_objects"


def remember_previous(event: ContextFound) -> None:
    """Copy a bucket or collection, and its permissions, before a request changes them.

    Kinto's events carry no permissions, and a merge patch changes the nested values of
    their ``old`` object (of the stored object itself on the memory backend).
    """
    request, context = event.request, event.request.context
    if request.method not in ("PUT", "PATCH") or getattr(context, "current_object", None) is None:
        return
    if context.resource_name not in RESOURCES or context.on_plural_endpoint:
        return
    uri = context.permission_object_id
    before = request.bound_data.setdefault(BEFORE_KEY, {})
    if uri not in before:  # A batch's first write of the object: the state to go back to.
        stored = copy.deepcopy(context.current_object)
        stored.pop("__permissions__", None)
        before[uri] = (stored, request.registry.permission.get_object_permissions(uri))


def parent_id(payload: dict[str, Any]) -> str:
    if payload["resource_name"] == "collection":
        return uris.bucket_uri(payload["bucket_id"])
    return ""


def _uri(resource_name: str, parent_id: str, object_id: str) -> str:
    return f"{parent_id}/{resource_name}s/{object_id}"


def previous(
    request: Request, resource_name: str, parent_id: str, impacted: dict[str, Any]
) -> dict[str, Any]:
    """The object as stored before the request: ``{}`` when the request creates it."""
    if not impacted.get("old"):
        return {}
    uri = _uri(resource_name, parent_id, impacted["new"]["id"])
    stored, _ = request.bound_data.get(BEFORE_KEY, {}).get(uri, (impacted["old"], None))
    return stored


def remember_saved(event: ResourceChanged) -> None:
    """Note the bucket and collection writes of the request as their events are notified."""
    seen = event.request.bound_data.setdefault(SEEN_KEY, [])
    where = (event.payload["resource_name"], parent_id(event.payload))
    seen += [(*where, impacted) for impacted in event.impacted_objects]


def _pending_writes(request: Request) -> Iterator[tuple[str, str, dict[str, Any]]]:
    # Events Kinto has not notified yet: later writes of the same batch.
    collector = request.bound_data.get("resource_events")
    for key, (_, impacted, _) in getattr(collector, "event_dict", {}).items():
        _, resource_name, parent_id, action = key
        if resource_name in RESOURCES and action in (ACTIONS.CREATE, ACTIONS.UPDATE):
            yield from ((resource_name, parent_id, entry) for entry in impacted)


def undo_saves(request: Request) -> None:
    """Put back every bucket and collection that ``request`` created or updated."""
    first_writes: dict[str, tuple[str, str, dict[str, Any]]] = {}
    for resource_name, parent, impacted in [
        *request.bound_data.get(SEEN_KEY, []),
        *_pending_writes(request),
    ]:
        uri = _uri(resource_name, parent, impacted["new"]["id"])
        first_writes.setdefault(uri, (resource_name, parent, impacted))
    storage, permission = request.registry.storage, request.registry.permission
    before = request.bound_data.get(BEFORE_KEY, {})
    for uri, (resource_name, parent, impacted) in first_writes.items():
        object_id = impacted["new"]["id"]
        if not impacted.get("old"):
            permission.delete_object_permissions(uri)
            try:
                storage.delete(
                    resource_name=resource_name,
                    parent_id=parent,
                    object_id=object_id,
                    with_deleted=False,
                )
            except ObjectNotFoundError:
                pass
            continue
        stored, permissions = before.get(uri, (impacted["old"], None))
        storage.update(
            resource_name=resource_name, parent_id=parent, object_id=object_id, obj=stored
        )
        if permissions is not None:
            now = permission.get_object_permissions(uri)
            permission.replace_object_permissions(
                uri, {name: permissions.get(name, set()) for name in {*permissions, *now}}
            )
