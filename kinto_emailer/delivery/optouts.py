"""Who asked to stop a hook owner's emails, read just before they are sent.

An opt-out is an object of Kinto's storage under a resource of the plugin's own below its
bucket (``/buckets/{bid}/emailer``, see ``compose.optouts`` for the links that make them).
The worker reads them for each burst, bucket by bucket, and leaves opted-out addresses out
of every email not sent yet: an unsubscribe applies to the emails already waiting too, and
a write reads none.
"""

import weakref
from collections.abc import Callable
from typing import Any

import transaction
from kinto.core.storage import StorageBase, memory
from kinto.core.storage.exceptions import ReadonlyError

from .. import addresses as recipients
from .. import uris
from ..outbox import Email, Outbox
from .outcomes import CANCELLED, Report


RESOURCE_NAME = "kinto_emailer_optout"


def bucket_of(owner: str) -> str:
    return owner.split("/")[2]


def parent_id(bucket_id: str) -> str:
    return f"{uris.bucket_uri(bucket_id)}/emailer"


def of_bucket(storage: StorageBase, bucket_id: str) -> list[dict[str, Any]]:
    return storage.list_all(resource_name=RESOURCE_NAME, parent_id=parent_id(bucket_id))


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
    a dictionary read: listing them again costs more than the rest of an email. Other
    backends are shared with other processes: they are read for each burst.
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


def read_by_owner(storage: StorageBase, bucket_id: str) -> dict[str, frozenset[str]]:
    """``by_owner``, from the cache on Kinto's memory storage."""
    if isinstance(storage, memory.Storage):
        return _memory.by_owner(storage, bucket_id)
    return by_owner(storage, bucket_id)


def owner_of(email: Email) -> str:
    """The hooks' owner whose opt-outs apply to ``email``: ``/buckets/b[/collections/c]``."""
    return email.location.partition("#")[0]


#: Why an email was not sent: each of its recipients opted out.
EVERYONE_LEFT = "every recipient unsubscribed from the hooks of {owner}"


class OptOuts:
    """The opt-outs of Kinto's storage, as the worker applies them to a burst."""

    def __init__(self, storage: StorageBase | None):
        self.storage = storage

    def read(self, bucket_ids: set[str]) -> dict[str, dict[str, frozenset[str]]]:
        """``{bucket_id: {owner: addresses}}``, in a transaction of this thread's own that is
        discarded (Kinto's PostgreSQL storage joins the thread's transaction)."""
        storage = self.storage
        if storage is None or not bucket_ids:
            return {}
        if isinstance(storage, memory.Storage):
            return {bucket_id: read_by_owner(storage, bucket_id) for bucket_id in bucket_ids}
        transaction.begin()
        try:
            return {bucket_id: by_owner(storage, bucket_id) for bucket_id in bucket_ids}
        finally:
            transaction.abort()

    def for_burst(
        self, claimed: list[Email], outbox: Outbox, report: Report
    ) -> Callable[[Email], bool]:
        """Whether someone is left to send each email of ``claimed`` to, once the addresses
        that opted out (read now) are out of it; an email with nobody left is cancelled."""
        optouts = self.of(claimed)

        def left(email: Email) -> bool:
            owner = owner_of(email)
            opted_out = optouts.get(owner)
            if not opted_out or leave_out(email, opted_out):
                return True
            reason = EVERYONE_LEFT.format(owner=owner)
            report(CANCELLED, email, reason)
            outbox.cancelled(email, reason)
            return False

        return left

    def of(self, emails: list[Email]) -> dict[str, frozenset[str]]:
        """The opted-out addresses (lower case) of the owners of ``emails``' hooks, read now:
        ``{owner: addresses}``, only the owners that have some."""
        owners = {owner_of(email) for email in emails}
        owners = {owner for owner in owners if owner.startswith("/buckets/")}
        read = self.read({bucket_of(owner) for owner in owners})
        found = {owner: read.get(bucket_of(owner), {}).get(owner) for owner in owners}
        return {owner: addresses for owner, addresses in found.items() if addresses}


def leave_out(email: Email, opted_out: frozenset[str]) -> bool:
    """Take the ``opted_out`` addresses (lower case) out of ``email``: from its message, which
    is rendered later (its headers then name only those left), and from the envelope when it
    is rendered already (a Maildir file, or who is still to try after a refusal). False when
    nobody is left in ``To:`` (or in the envelope)."""

    def others(entries: list[str]) -> list[str]:
        return [e for e in entries if recipients.address_key(e) not in opted_out]

    message = email.message
    if message is not None and email.outgoing is None:
        message.recipients = others(list(message.recipients))
        message.cc = others(list(message.cc or ()))
        message.bcc = others(list(message.bcc or ()))
        if not message.recipients:
            return False
    if email.outgoing is not None:
        email.outgoing.recipients = others(list(email.outgoing.recipients))
        if not email.outgoing.recipients:
            return False
    return True
