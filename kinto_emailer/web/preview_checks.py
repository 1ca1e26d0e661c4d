"""Who may preview, and what: the 401, 403 and 404 of the preview, and the 400 that saving the
tried metadata would answer. Who may write hooks at a place may preview them; the bucket's
hooks' addresses are its readers' to see."""

from typing import NoReturn

from kinto.core.errors import ERRORS, http_error
from pyramid.httpexceptions import HTTPForbidden, HTTPNotFound, HTTPUnauthorized
from pyramid.request import Request

from ..hooks.kinds import KINDS
from ..hooks.validation import check_hook_writer, check_metadata
from ..permissions import can_read, has_permission
from .preview_change import Described
from .preview_path import PreviewFinder


def _refuse(request: Request, message: str) -> NoReturn:
    if request.prefixed_userid is None:
        raise http_error(HTTPUnauthorized(), errno=ERRORS.MISSING_AUTH_TOKEN)
    raise http_error(HTTPForbidden(), errno=ERRORS.FORBIDDEN, message=message)


def check_writer(request: Request, uri: str) -> None:
    """A 401 or 403 unless the caller may write hooks at ``uri`` (or above it)."""
    principals = request.prefixed_principals
    if request.prefixed_userid is None or not has_permission(request, principals, uri, "write"):
        _refuse(request, f"Previewing the hooks of {uri} needs write permission on it")
    check_hook_writer(request)


def check_exists(request: Request, finder: PreviewFinder, resource_name: str) -> None:
    bucket_id, collection_id = request.matchdict["bucket_id"], request.matchdict["collection_id"]
    missing = None
    if finder.saved("bucket", bucket_id) is None:
        missing = f"bucket {bucket_id}"
    elif resource_name == "record" and not finder.saved("collection", bucket_id, collection_id):
        # A collection's creation may be previewed before it exists; its records can't.
        missing = f"collection {collection_id} in bucket {bucket_id}"
    if missing:
        raise http_error(HTTPNotFound(), errno=ERRORS.INVALID_RESOURCE_ID, message=f"No {missing}")


def check_tried(request: Request, finder: PreviewFinder, described: Described) -> None:
    """The 400 and 403 that saving the tried metadata where it is tried would answer."""
    bucket_id, collection_id = request.matchdict["bucket_id"], request.matchdict["collection_id"]
    if described.metadata_on == "bucket":
        place, collection_id = finder.saved("bucket", bucket_id), None
    else:
        place = finder.saved("collection", bucket_id, collection_id)
    kinds = {kind.key: kind for kind in KINDS}
    for key, value in described.metadata.items():
        saved = (place or {}).get(key)
        if value != saved:  # As a save: metadata left as it was is not checked again.
            name = f"data.metadata.{key}"
            check_metadata(request, value, saved, bucket_id, collection_id, name, kinds[key])


def check_reader(request: Request, location: str) -> None:
    """The bucket's hooks apply: their addresses are the bucket's readers' to see."""
    principals = request.prefixed_principals
    if "/collections/" not in location and not can_read(request, principals, location):
        _refuse(
            request,
            f"The hooks that apply are those of {location}: "
            "previewing them needs read permission on it",
        )
