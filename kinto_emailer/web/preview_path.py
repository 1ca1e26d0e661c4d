"""What the listener's path reads and decides in a preview: ``PreviewFinder`` reads the tried
metadata instead of the saved, and only the groups the caller may read; ``PreviewTrace``
keeps what the path decided, by hook."""

from typing import Any

from pyramid.request import Request

from .. import uris
from ..hooks import selection
from ..permissions import can_read
from ..trace import Trace


class PreviewFinder(selection.HookFinder):
    """Reads as the listener does, but the tried metadata instead of the saved, and only
    the groups that the caller may read (the others are noted in ``unreadable``)."""

    #: Opt-outs are applied at delivery: the preview reads them to say what it would do.
    reads_optouts = True

    def __init__(self, request: Request, tried: dict[str, Any], tried_on: str):
        super().__init__(request.registry.storage)
        self.request = request
        self.tried, self.tried_on = tried, tried_on
        self.unreadable: set[str] = set()

    def saved(
        self, resource_name: str, bucket_id: str, object_id: str | None = None
    ) -> dict[str, Any] | None:
        """The bucket or collection as stored."""
        return super().metadata(resource_name, bucket_id, object_id)

    def metadata(
        self, resource_name: str, bucket_id: str, object_id: str | None = None
    ) -> dict[str, Any] | None:
        stored = self.saved(resource_name, bucket_id, object_id)
        if resource_name != self.tried_on or not self.tried:
            return stored
        return {**(stored or {"id": object_id or bucket_id}), **self.tried}

    def group(self, bucket_id: str, group_id: str) -> dict[str, Any] | None:
        uri = uris.group_uri(bucket_id, group_id)
        principals = self.request.prefixed_principals
        if not self.remember(("readable", uri), lambda: can_read(self.request, principals, uri)):
            self.unreadable.add(uri)
            return None
        return super().group(bucket_id, group_id)


class PreviewTrace(Trace):
    """What the listener's path decided, by hook."""

    def __init__(self) -> None:
        self.refusals: dict[str, object | None] = {}
        self.left: dict[str, list[dict[str, str]]] = {}
        self.drops: dict[str, list[str]] = {}

    def hook(self, where: str, refusal: object | None) -> None:
        self.refusals[where] = refusal

    def left_out(self, where: str, field: str, address: str, reason: str) -> None:
        entry = {"address": address, "field": field, "reason": reason}
        if entry not in self.left.setdefault(where, []):
            self.left[where].append(entry)

    def dropped(self, where: str, reason: str) -> None:
        if reason not in self.drops.setdefault(where, []):
            self.drops[where].append(reason)
