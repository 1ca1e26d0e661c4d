"""``/buckets/{bid}/emails``: what became of the emails of a bucket's hooks and of its
collections' hooks, for those who write them; resend and cancel with ``PATCH``.

Write permission on the bucket shows all its emails, with their addresses; write permission
on a collection shows that collection's, without addresses; anyone else gets a 403 (401
when anonymous). The list's query string is read in ``emails_query``.
"""

import re
from collections.abc import Callable
from typing import Any, NoReturn

from kinto.core import Service, errors
from kinto.core.errors import ERRORS, http_error
from pyramid.httpexceptions import (
    HTTPForbidden,
    HTTPNotFound,
    HTTPNotImplemented,
    HTTPTooManyRequests,
)
from pyramid.request import Request
from pyramid.security import NO_PERMISSION_REQUIRED

from .. import uris
from ..outbox import Outbox, StatusUnavailable
from ..outbox.backends import KEEPING_STATUS
from ..outbox.status import (
    TRANSITIONS,
    QueueRefused,
    TransitionError,
    without_addresses,
)
from ..permissions import has_permission
from .emails_query import next_page, read_query


emails = Service(
    name="emailer_emails",
    path="/buckets/{bucket_id}/emails",
    description="The emails of the bucket's hooks",
)
email = Service(
    name="emailer_email",
    path="/buckets/{bucket_id}/emails/{email_id}",
    description="One email of the bucket's hooks",
)

_COLLECTION_URI = re.compile(r"^/buckets/[^/]+/collections/([^/]+)$")
#: Kinto's bucket ids (``NameGenerator``): anything else names no bucket, and a NUL byte
#: would reach the database.
_BUCKET_ID = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_-]*")
#: An email's id: a positive bigint in a database outbox, a counter elsewhere.
_EMAIL_ID = re.compile(r"[1-9][0-9]{0,17}", re.ASCII)
#: Kinto's 400 with errno 107; it always raises.
raise_invalid: Callable[..., NoReturn] = errors.raise_invalid


class Scope:
    """What the request's principals may see of a bucket's emails."""

    def __init__(self, request: Request):
        bucket_id = checked_bucket_id(request)
        principals = request.prefixed_principals
        permission = request.registry.permission
        bucket_uri = uris.bucket_uri(bucket_id)
        self.bucket_id = bucket_id
        # Kinto's rules: the permission backend, and settings such as bucket_write_principals.
        self.whole_bucket = has_permission(request, principals, bucket_uri, "write")
        #: The collections whose emails they may see; ``None``: all the bucket's.
        self.collection_ids: list[str] | None = None
        if not self.whole_bucket:
            writable = permission.get_accessible_objects(
                principals, [(f"{bucket_uri}/collections/*", "write")], with_children=False
            )
            self.collection_ids = sorted(
                match.group(1)
                for uri in writable
                if (match := _COLLECTION_URI.match(uri)) and uri.startswith(bucket_uri + "/")
            )
            if not self.collection_ids:
                # Kinto's forbidden view answers 401 to the anonymous, 403 to the others.
                raise HTTPForbidden()

    def may_see(self, record: dict[str, Any]) -> bool:
        return self.whole_bucket or record["collection_id"] in (self.collection_ids or ())

    def show(self, record: dict[str, Any]) -> dict[str, Any]:
        if not self.whole_bucket:
            # Collection writers can't read the bucket's groups: no addresses for them.
            record = without_addresses(record)
        return record


def checked_bucket_id(request: Request) -> str:
    """The bucket id of the path; a 400 when it can't be one of Kinto's."""
    bucket_id: str = request.matchdict["bucket_id"]
    if not _BUCKET_ID.fullmatch(bucket_id):
        raise_invalid(request, location="path", name="bucket_id", description="Invalid bucket id")
    return bucket_id


def _outbox(request: Request) -> Outbox:
    outbox = request.registry.emailer.delivery.outbox
    if outbox is None:
        _unavailable("the debug mailer (mail.debug_mailer)")
    return outbox


def _unavailable(what: str) -> NoReturn:
    raise http_error(
        HTTPNotImplemented(),
        errno=ERRORS.UNDEFINED,
        message=(
            f"Emails sent through {what} keep no delivery status: it is in the server's "
            f"logs only. {KEEPING_STATUS}"
        ),
    )


@emails.get(permission=NO_PERMISSION_REQUIRED)
def list_emails(request: Request) -> dict[str, Any]:
    scope = Scope(request)
    query = read_query(
        request, scope.bucket_id, scope.collection_ids
    )  # Checked before the outbox: it may keep no status.
    outbox = _outbox(request)
    page_size = query.limit
    query.limit += 1  # One more than the page: whether there is a next page.
    try:
        records = outbox.emails(query)
    except StatusUnavailable:
        _unavailable(outbox.sent_through)
    query.limit = page_size
    if len(records) > page_size:
        records = records[:page_size]
        request.response.headers["Next-Page"] = next_page(request, query, page_size)
    return {"data": [scope.show(record) for record in records]}


def _visible_email(
    request: Request, scope: Scope, record: dict[str, Any] | None
) -> dict[str, Any]:
    if record is None or not scope.may_see(record):
        _no_such_email()
    return scope.show(record)


def _no_such_email() -> NoReturn:
    raise http_error(HTTPNotFound(), errno=ERRORS.INVALID_RESOURCE_ID, message="No such email")


def _email_id(request: Request) -> str:
    email_id: str = request.matchdict["email_id"]
    if not _EMAIL_ID.fullmatch(email_id):
        _no_such_email()  # Checked before the outbox: it may keep no status.
    return email_id


@email.get(permission=NO_PERMISSION_REQUIRED)
def get_email(request: Request) -> dict[str, Any]:
    scope = Scope(request)
    email_id = _email_id(request)
    outbox = _outbox(request)
    try:
        record = outbox.email(scope.bucket_id, email_id)
    except StatusUnavailable:
        _unavailable(outbox.sent_through)
    return {"data": _visible_email(request, scope, record)}


@email.patch(permission=NO_PERMISSION_REQUIRED)
def change_email(request: Request) -> dict[str, Any]:
    scope = Scope(request)
    email_id = _email_id(request)
    outbox = _outbox(request)
    try:
        _visible_email(request, scope, outbox.email(scope.bucket_id, email_id))
        wanted = _wanted_status(request)
        record = outbox.change(scope.bucket_id, email_id, wanted)
    except StatusUnavailable:
        _unavailable(outbox.sent_through)
    except TransitionError as e:
        raise_invalid(request, name="data.status", description=str(e))
    except QueueRefused as e:
        # A limit of the bucket or of the queue, that time lifts: the client may try later.
        raise http_error(
            HTTPTooManyRequests(),
            errno=ERRORS.CLIENT_REACHED_CAPACITY,
            message=f"The email can't be queued again now: {e}. It stays as it was.",
        )
    return {"data": _visible_email(request, scope, record)}


def _wanted_status(request: Request) -> Any:
    try:
        body = request.json_body
    except ValueError:
        body = None
    data = body.get("data") if isinstance(body, dict) else None
    allowed = " or ".join(f'{{"data": {{"status": "{status}"}}}}' for status in TRANSITIONS)
    if not isinstance(data, dict) or set(data) != {"status"}:
        raise_invalid(
            request,
            name="data",
            description=f"Only the status of an email changes: send {allowed}",
        )
    return data["status"]
