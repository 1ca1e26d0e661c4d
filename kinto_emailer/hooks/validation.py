"""When a bucket or collection is saved: who may change its hooks, and what they may name.

A refused save is put back as it was (``rollback``) before its 400 or 403 is raised.
"""

from collections.abc import Iterator
from typing import Any, NoReturn

import colander
from kinto.core.errors import ERRORS, http_error, raise_invalid
from kinto.core.events import ResourceChanged
from kinto.core.utils import prefixed_principals
from pyramid.httpexceptions import HTTPForbidden
from pyramid.request import Request

from .. import addresses, uris
from ..permissions import can_read
from . import metadata as hook_metadata
from . import rollback, selection
from .fields import ADDRESS_FIELDS, address_entries
from .kinds import EMAIL, KINDS, HookKind


_ABSENT = object()


def _forbidden(request: Request, message: str) -> NoReturn:
    rollback.undo_saves(request)
    raise http_error(HTTPForbidden(), errno=ERRORS.FORBIDDEN, message=message)


def named_groups(
    hook: dict[str, Any], bucket_id: str, collection_id: str | None
) -> Iterator[tuple[str, str, str]]:
    """``(field, entry, uri to read)`` for each group a hook names."""
    for field in ADDRESS_FIELDS:
        entries = address_entries(hook, field)
        for entry in entries if isinstance(entries, list) else []:
            if not addresses.is_group_uri(entry):
                continue
            uri = entry.replace("{bucket_id}", bucket_id)
            if collection_id is not None:
                uri = uri.replace("{collection_id}", collection_id)
            # A bucket's hook may name one group per collection: reading them all is needed.
            yield field, entry, (uri if "{" not in uri else uris.bucket_uri(bucket_id))


def _check_author(
    request: Request,
    principals: list[str],
    hooks: list[dict[str, Any]],
    old_hooks: list[dict[str, Any]],
    bucket_id: str,
    collection_id: str | None,
) -> None:
    for index, hook in enumerate(hooks):
        if hook in old_hooks:  # Saved before, maybe by someone else: not this author's.
            continue
        for field, entry, uri in named_groups(hook, bucket_id, collection_id):
            if not can_read(request, principals, uri):
                reason = "that group" if "/groups/" in uri else f"{uri}, whose groups it may be"
                _forbidden(
                    request,
                    f'Hook {index} names the group {entry} in "{field}": '
                    f"you can't read {reason}, so your hooks can't email its members",
                )


def _hooks(metadata: object) -> list[Any]:
    hooks = metadata.get("hooks") if isinstance(metadata, dict) else None
    return hooks if isinstance(hooks, list) else []


def check_hook_writer(request: Request, key: str = selection.METADATA_KEY) -> None:
    """A 403 unless the request's principals may write hooks (``hook_write_principals``)."""
    allowed = request.registry.emailer.settings.hook_write_principals
    if allowed and not set(allowed) & set(prefixed_principals(request)):
        _forbidden(
            request,
            f'Changing "{key}" needs one of the principals of kinto_emailer.hook_write_principals',
        )


def check_metadata(
    request: Request,
    metadata: object,
    old_metadata: object,
    bucket_id: str,
    collection_id: str | None,
    name: str = f"data.{selection.METADATA_KEY}",
    kind: HookKind = EMAIL,
) -> None:
    """A 400 (errno 107, on ``name``) unless ``metadata`` is hooks that can work; a 403 when a
    hook not in ``old_metadata`` names a group that the request's principals can't read."""
    settings = request.registry.emailer.settings
    try:
        hook_metadata.check(metadata, settings, bucket_id, kind.schema, kind.key, kind.channel)
    except colander.Invalid as e:
        rollback.undo_saves(request)
        raise_invalid(request, name=name, description=hook_metadata.messages(e))
    assert isinstance(metadata, dict)  # ``check`` refuses anything else.
    if kind is not EMAIL:
        return  # Groups are emails' recipients.
    principals = prefixed_principals(request)
    old_hooks = _hooks(old_metadata)
    _check_author(request, principals, metadata["hooks"], old_hooks, bucket_id, collection_id)


def validate_metadata(event: ResourceChanged) -> None:
    """Refuse a save whose hooks (``kinto-emailer``, ``kinto-slack``, ``kinto-webhooks``)
    can't work or aren't its author's to write.

    Metadata that a write leaves as it was is not checked again: stored hooks keep working,
    and the rest of the object stays writable.
    """
    request = event.request
    rollback.remember_saved(event)
    resource_name, parent_id = event.payload["resource_name"], rollback.parent_id(event.payload)
    for impacted in event.impacted_objects:
        new = impacted.get("new") or {}
        old = rollback.previous(request, resource_name, parent_id, impacted)
        bucket_id = new["id"] if resource_name == "bucket" else event.payload["bucket_id"]
        collection_id = new["id"] if resource_name == "collection" else None
        for kind in KINDS:
            metadata = new.get(kind.key, _ABSENT)
            if old.get(kind.key, _ABSENT) == metadata:
                continue
            check_hook_writer(request, kind.key)
            if metadata is _ABSENT:
                continue
            old_metadata = old.get(kind.key)
            name = f"data.{kind.key}"
            check_metadata(request, metadata, old_metadata, bucket_id, collection_id, name, kind)
