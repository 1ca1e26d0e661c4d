"""Who asked to stop the emails of a bucket's or collection's hooks, and the signed links
with which they ask.

An opt-out is stored with Kinto's storage backend, under a resource of the plugin's own
below its bucket (``/buckets/{bid}/emailer``), so it lives where the bucket's data lives
and goes with the bucket when it is deleted (Kinto deletes everything below it); those of a
collection's hooks go with the collection (``forget_deleted_collections``).

They are applied at delivery (``delivery.optouts``), just before each email is sent: a write
reads none, and an unsubscribe stops the emails already waiting too.
"""

import base64
import binascii
import hashlib
import hmac
import json
from typing import Any

from kinto.core.events import ResourceChanged
from kinto.core.storage import Filter, StorageBase
from kinto.core.storage.exceptions import ObjectNotFoundError
from kinto.core.utils import COMPARISON

from .. import uris
from ..delivery.optouts import RESOURCE_NAME, bucket_of, parent_id, read_by_owner
from ..hooks.selection import HookFinder, hooks_of


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


def opted_out(finder: HookFinder, owner: str) -> frozenset[str]:
    """The addresses (lower case) that asked to stop ``owner``'s emails, read once a request;
    none but where the finder composes a preview (its ``reads_optouts``): writes leave them
    to delivery, and the preview says what delivery would do."""
    storage = getattr(finder, "storage", None)
    if (
        not getattr(finder, "reads_optouts", False)
        or storage is None
        or not owner.startswith("/buckets/")
    ):
        return frozenset()

    def read() -> frozenset[str]:
        return read_by_owner(storage, bucket_of(owner)).get(owner, frozenset())

    return finder.remember(("optouts", owner), read)
