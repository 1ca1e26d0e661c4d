"""The query string of ``GET /buckets/{bid}/emails`` read into an outbox ``Query``:
``_limit``, ``_sort``, ``_token`` and the filters, as Kinto's lists name them; and the link
to the next page. A parameter it can't read is Kinto's 400 naming it."""

import base64
import json
import re
from collections.abc import Callable
from typing import NoReturn
from urllib.parse import urlencode

from kinto.core import errors
from pyramid.request import Request

from ..outbox.status import FIELDS, Query


#: Fields a list may be filtered on (``?status=failed``, ``?in_status=failed,dropped``).
FILTERABLE = tuple(f for f in FIELDS if f not in ("created", "last_modified", "sent"))
_WHOLE = re.compile(r"[0-9]{1,30}", re.ASCII)
#: The largest offset a ``_token`` may carry: a database's OFFSET is a bigint.
_MAX_OFFSET = 2**63 - 1
#: Kinto's 400 with errno 107; it always raises.
raise_invalid: Callable[..., NoReturn] = errors.raise_invalid


def read_query(request: Request, bucket_id: str, collection_ids: list[str] | None) -> Query:
    """The list that ``request`` asks for, of ``collection_ids`` (``None``: all) only."""
    settings = request.registry.settings
    # Kinto's: at most ``paginate_by`` a page when set, else what storage fetches at once.
    limit = int(settings.get("paginate_by") or 0) or int(settings["storage_max_fetch_size"])
    query = Query(bucket_id, collection_ids, limit=limit)
    for param, value in request.GET.items():
        if "\x00" in param + value:
            _invalid(request, param, f"{param} must not contain a NUL byte")
        if param == "_limit":
            query.limit = min(_whole_number(request, param, value, minimum=1), limit)
        elif param == "_sort":
            query.sort = _sorting(request, value)
        elif param == "_token":
            query.offset = _offset(request, value)
        else:
            query.filters.append(_filter(request, param, value))
    return query


def _invalid(request: Request, name: str, description: str) -> NoReturn:
    raise_invalid(request, location="querystring", name=name, description=description)


def _whole_number(request: Request, param: str, value: str, minimum: int = 0) -> int:
    if not _WHOLE.fullmatch(value) or int(value) < minimum:
        _invalid(request, param, f"{param} must be a whole number of at least {minimum}")
    return int(value)


def _sorting(request: Request, value: str) -> tuple[tuple[str, bool], ...]:
    sort = []
    for part in value.split(","):
        name = part.strip().lstrip("-")
        if name not in FIELDS:
            _invalid(request, "_sort", f"Unknown sort field {name!r}: one of {', '.join(FIELDS)}")
        sort.append((name, part.strip().startswith("-")))
    return (*sort, ("id", True))


def _filter(request: Request, param: str, value: str) -> tuple[str, tuple[str, ...]]:
    values: tuple[str, ...]
    name, values = param, (value,)
    if param.startswith("in_"):
        name, values = param[3:], tuple(v for v in value.split(",") if v)
    if name not in FILTERABLE:
        _invalid(
            request,
            param,
            f"Unknown filter field {param!r}: filter on {', '.join(FILTERABLE)}",
        )
    return name, values


def _offset(request: Request, token: str) -> int:
    try:
        offset = json.loads(base64.urlsafe_b64decode(token.encode()))["offset"]
        # Not ``isinstance``: ``true`` is an int to Python.
        if type(offset) is not int or not 0 <= offset <= _MAX_OFFSET:
            raise ValueError
    except (ValueError, KeyError, TypeError):
        _invalid(request, "_token", "_token is not a token of this list")
    return offset


def next_page(request: Request, query: Query, count: int) -> str:
    token = base64.urlsafe_b64encode(json.dumps({"offset": query.offset + count}).encode())
    params = {k: v for k, v in request.GET.items() if k != "_token"}
    params["_token"] = token.decode()
    return f"{request.path_url}?{urlencode(params)}"
