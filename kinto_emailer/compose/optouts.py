"""Who asked to stop the emails of a bucket's or collection's hooks, and the signed links
with which they ask.

An opt-out is stored with Kinto's storage backend, under a resource of the plugin's own
below its bucket (``/buckets/{bid}/emailer``), so it lives where the bucket's data lives
and goes with the bucket when it is deleted (Kinto deletes everything below it); those of a
collection's hooks go with the collection (``forget_deleted_collections``).
"""

import base64
import binascii
import hashlib
import hmac
import json
import weakref
from typing import Any

from kinto.core.events import ResourceChanged
from kinto.core.storage import Filter, StorageBase, memory
from kinto.core.storage.exceptions import ObjectNotFoundError, ReadonlyError
from kinto.core.utils import COMPARISON

from .. import uris
from ..hooks.selection import HookFinder, hooks_of


RESOURCE_NAME = "kinto_emailer_optout"
PATH = "emailer/unsubscribe/"


class InvalidToken(ValueError):
    """A token that this server did not sign, or that was changed since."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(key: bytes, payload: str) -> str:
    return _b64(hmac.new(key, payload.encode("ascii"), hashlib.sha256).digest())


def token(key: bytes, address: str, owner: str) -> str:
    """A token naming ``address`` and the hooks' ``owner`` (``/buckets/b[/collections/c]``)."""
    payload = _b64(json.dumps([address, owner], separators=(",", ":")).encode("utf-8"))
    return f"{payload}.{_signature(key, payload)}"


def read_token(key: bytes | None, text: str) -> tuple[str, str]:
    """``(address, owner)`` of a token signed with ``key``; raises ``InvalidToken``."""
    payload, _, signature = text.partition(".")
    # ASCII first: the signature is of ASCII text, and ``compare_digest`` refuses other text.
    if key is None or not text.isascii():
        raise InvalidToken("not ASCII")
    if not hmac.compare_digest(_signature(key, payload), signature):
        raise InvalidToken("signature")
    try:
        address, owner = json.loads(_unb64(payload))
    except (ValueError, TypeError, binascii.Error):
        raise InvalidToken("payload") from None
    return address, owner


def link(key: bytes | None, root_url: str, address: str, owner: str) -> str | None:
    """The one-click unsubscribe URL of ``address`` for ``owner``'s hooks; ``None`` unsigned."""
    if key is None or not owner:
        return None
    return f"{root_url.rstrip('/')}/{PATH}{token(key, address, owner)}"


def bucket_of(owner: str) -> str:
    return owner.split("/")[2]


def parent_id(bucket_id: str) -> str:
    return f"{uris.bucket_uri(bucket_id)}/emailer"


def optout_id(address: str, owner: str) -> str:
    # One per address and owner, whatever the case of the address: asking twice is one.
    return hashlib.sha256(f"{owner}\n{address.lower()}".encode()).hexdigest()[:32]


def add(storage: StorageBase, address: str, owner: str) -> dict[str, Any]:
    object_id = optout_id(address, owner)
    obj = {"id": object_id, "address": address.lower(), "owner": owner}
    return storage.update(
        resource_name=RESOURCE_NAME,
        parent_id=parent_id(bucket_of(owner)),
        object_id=object_id,
        obj=obj,
    )


def of_bucket(storage: StorageBase, bucket_id: str) -> list[dict[str, Any]]:
    return storage.list_all(resource_name=RESOURCE_NAME, parent_id=parent_id(bucket_id))


def remove(storage: StorageBase, bucket_id: str, object_id: str) -> dict[str, Any] | None:
    """The opt-out removed, or ``None`` when there was none."""
    try:
        return storage.delete(
            resource_name=RESOURCE_NAME,
            parent_id=parent_id(bucket_id),
            object_id=object_id,
            with_deleted=False,
        )
    except ObjectNotFoundError:
        return None


def forget_deleted_collections(event: ResourceChanged) -> None:
    """Remove the opt-outs of the hooks of the collections that ``event`` deleted."""
    storage = event.request.registry.storage
    bucket_id = event.payload["bucket_id"]
    for change in event.impacted_objects:
        owner = uris.collection_uri(bucket_id, change["old"]["id"])
        storage.delete_all(
            resource_name=RESOURCE_NAME,
            parent_id=parent_id(bucket_id),
            filters=[Filter("owner", owner, COMPARISON.EQ)],
            with_deleted=False,
        )


def has_hooks(storage: StorageBase, owner: str) -> bool:
    """Whether ``owner`` (``/buckets/b[/collections/c]``) still exists and holds hooks."""
    parts = owner.split("/")
    finder = HookFinder(storage)
    if len(parts) == 5 and parts[3] == "collections":
        metadata = finder.metadata("collection", parts[2], parts[4])
    elif len(parts) == 3:
        metadata = finder.metadata("bucket", parts[2])
    else:
        return False
    return bool(metadata and hooks_of(metadata))


def by_owner(storage: StorageBase, bucket_id: str) -> dict[str, frozenset[str]]:
    """The opted-out addresses of a bucket, by owner: ``{owner: addresses}``."""
    owners: dict[str, set[str]] = {}
    for optout in of_bucket(storage, bucket_id):
        owners.setdefault(optout.get("owner", ""), set()).add(optout["address"])
    return {owner: frozenset(addresses) for owner, addresses in owners.items()}


class _MemoryStorageCache:
    """The opt-outs read from Kinto's memory storage, kept while they don't change.

    That storage lives in this process, and any change to the opt-outs of a bucket (one
    added, removed, the bucket deleted, the storage flushed) moves their timestamp, which is
    a dictionary read: listing them again costs more than the rest of a hook's email.
    Other backends are shared with other processes: they are read on each request.
    """

    def __init__(self) -> None:
        self.read: weakref.WeakKeyDictionary[StorageBase, dict[str, Any]] = (
            weakref.WeakKeyDictionary()
        )

    def by_owner(self, storage: StorageBase, bucket_id: str) -> dict[str, frozenset[str]]:
        try:
            stamp = storage.resource_timestamp(RESOURCE_NAME, parent_id(bucket_id))
        except ReadonlyError:  # None yet, and a read-only server can't make one.
            return by_owner(storage, bucket_id)
        known = self.read.setdefault(storage, {})
        cached = known.get(bucket_id)
        if cached is None or cached[0] != stamp:
            cached = known[bucket_id] = (stamp, by_owner(storage, bucket_id))
        return cached[1]


_memory = _MemoryStorageCache()


def opted_out(finder: HookFinder, owner: str) -> frozenset[str]:
    """The addresses (lower case) that asked to stop ``owner``'s emails; read once a request."""
    storage = getattr(finder, "storage", None)
    if storage is None or not owner.startswith("/buckets/"):
        return frozenset()

    def read() -> frozenset[str]:
        bucket_id = bucket_of(owner)
        if isinstance(storage, memory.Storage):
            owners = _memory.by_owner(storage, bucket_id)
        else:
            owners = by_owner(storage, bucket_id)
        return owners.get(owner, frozenset())

    return finder.remember(("optouts", owner), read)
