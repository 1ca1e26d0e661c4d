"""One-click unsubscribe (RFC 8058) from a bucket's or collection's hooks, and the views with
which the bucket's writers list and undo opt-outs.

``GET /emailer/unsubscribe/{token}`` shows a page whose button makes the POST: mail scanners
follow links, and following one must not unsubscribe. ``POST`` to the same URL, without
authentication, unsubscribes the address that the token names from the hooks of its owner.
Both answer 410 when that owner, or its hooks, are gone: an opt-out written then would
outlive them, and a bucket made again under the same name would inherit it.
"""

import html
import re
from typing import Any

from kinto.core import Service
from kinto.core.errors import ERRORS, http_error
from pyramid.config import Configurator
from pyramid.httpexceptions import (
    HTTPBadRequest,
    HTTPForbidden,
    HTTPGone,
    HTTPNotFound,
    HTTPUnauthorized,
)
from pyramid.request import Request
from pyramid.response import Response
from pyramid.security import NO_PERMISSION_REQUIRED

from .. import uris
from ..compose import optouts
from ..delivery.optouts import of_bucket
from ..permissions import has_permission
from .emails import checked_bucket_id


unsubscribe = Service(
    name="emailer-unsubscribe",
    description="Stop the emails of a bucket's or collection's hooks to one address",
    path=f"/{optouts.PATH}{{token}}",
)
bucket_optouts = Service(
    name="emailer-optouts",
    description="The addresses that unsubscribed from a bucket's hooks",
    path="/buckets/{bucket_id}/emailer/optouts",
)
bucket_optout = Service(
    name="emailer-optout",
    description="One address that unsubscribed from a bucket's or collection's hooks",
    path="/buckets/{bucket_id}/emailer/optouts/{id}",
)

_OPTOUT_ID = re.compile(r"[0-9a-f]{32}")
_PAGE = """<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>{title}</title></head>
<body>
<h1>{title}</h1>
{content}
</body>
</html>
"""


def _page(title: str, content: str) -> Response:
    body = _PAGE.format(title=html.escape(title), content=content)
    return Response(body, content_type="text/html", charset="utf-8")


def _read_token(request: Request) -> tuple[str, str]:
    key = request.registry.emailer.settings.unsubscribe_key
    try:
        address, owner = optouts.read_token(key, request.matchdict["token"])
    except optouts.InvalidToken:
        message = "This unsubscribe link is not valid: it was not made by this server, or changed"
        raise http_error(HTTPBadRequest(), errno=ERRORS.INVALID_PARAMETERS, message=message)
    if not optouts.has_hooks(request.registry.storage, owner):
        message = f"This unsubscribe link no longer applies: the hooks of {owner} are gone"
        raise http_error(HTTPGone(), errno=ERRORS.MISSING_RESOURCE, message=message)
    return address, owner


@unsubscribe.get(permission=NO_PERMISSION_REQUIRED)
def confirm_page(request: Request) -> Response:
    address, owner = _read_token(request)
    content = (
        f"<p>Stop the emails of the hooks of <code>{html.escape(owner)}</code> "
        f"to <strong>{html.escape(address)}</strong>?</p>\n"
        '<form method="post">\n'
        '<input type="hidden" name="List-Unsubscribe" value="One-Click">\n'
        '<button type="submit">Unsubscribe</button>\n'
        "</form>"
    )
    return _page("Unsubscribe", content)


@unsubscribe.post(permission=NO_PERMISSION_REQUIRED)
def unsubscribe_post(request: Request) -> Response:
    address, owner = _read_token(request)
    optouts.add(request.registry.storage, address, owner)
    content = (
        f"<p><strong>{html.escape(address)}</strong> will receive no more emails from the "
        f"hooks of <code>{html.escape(owner)}</code>.</p>"
    )
    return _page("Unsubscribed", content)


def _check_writer(request: Request) -> str:
    bucket_id = checked_bucket_id(request)
    principals = request.prefixed_principals
    if request.prefixed_userid is None:
        raise http_error(HTTPUnauthorized(), errno=ERRORS.MISSING_AUTH_TOKEN)
    if not has_permission(request, principals, uris.bucket_uri(bucket_id), "write"):
        message = f"Only the writers of bucket {bucket_id} can see and undo its opt-outs"
        raise http_error(HTTPForbidden(), errno=ERRORS.FORBIDDEN, message=message)
    return bucket_id


@bucket_optouts.get(permission=NO_PERMISSION_REQUIRED)
def list_optouts(request: Request) -> dict[str, Any]:
    listed = of_bucket(request.registry.storage, _check_writer(request))
    return {"data": sorted(listed, key=lambda o: (o["owner"], o["address"]))}


@bucket_optout.delete(permission=NO_PERMISSION_REQUIRED)
def delete_optout(request: Request) -> dict[str, Any]:
    bucket_id = _check_writer(request)
    optout_id = request.matchdict["id"]
    removed = None
    if _OPTOUT_ID.fullmatch(optout_id):  # Else none: and a NUL byte would reach the database.
        removed = optouts.remove(request.registry.storage, bucket_id, optout_id)
    if removed is None:
        raise http_error(
            HTTPNotFound(), errno=ERRORS.INVALID_RESOURCE_ID, message="No such opt-out"
        )
    return {"data": removed}


def includeme(config: Configurator) -> None:
    for service in (unsubscribe, bucket_optouts, bucket_optout):
        config.add_cornice_service(service)
