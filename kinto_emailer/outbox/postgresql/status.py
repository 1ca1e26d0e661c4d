"""The status views' queries on the outbox table (see ``outbox/status.py``)."""

import json
import re
from typing import Any

from .. import QUEUED, Email
from ..limits import HOUR
from ..status import FIELDS, RECIPIENTS, REFUSED, Query, QueueRefused, check_transition, millis
from .admission import COUNTED_IN_HOUR, Admission
from .cursors import Cursor
from .table import CHANNEL, TABLE


RECORD = (
    "id, channel, destination, status, attempts, error, hook, bucket_id, collection_id, uri, "
    "action, event, subject, "
    "recipients_count, extract(epoch FROM created), extract(epoch FROM last_modified), "
    "extract(epoch FROM sent), refused, message->'recipients', message->'cc', message->'bcc'"
)


#: A bigint id: ``isdigit`` is true of "²", which ``int`` refuses.
_ROW_ID = re.compile(r"[1-9][0-9]{0,17}", re.ASCII)
#: Rows that are emails: not the time windows that gather a digest's objects.
EMAILS = "status NOT IN ('collecting', 'closing')"


def visible(bucket_id: str, collection_ids: list[str] | None) -> tuple[list[str], dict[str, Any]]:
    params: dict[str, Any]
    where, params = ["bucket_id = %(bucket)s", EMAILS], {"bucket": bucket_id}
    if collection_ids is not None:
        where.append("collection_id = ANY(%(collections)s)")
        params["collections"] = list(collection_ids)
    return where, params


def as_record(row: tuple[Any, ...]) -> dict[str, Any]:
    record = dict(zip(FIELDS, row[: len(FIELDS)]))
    record["id"] = str(record["id"])
    for name in ("created", "last_modified", "sent"):
        record[name] = millis(None if record[name] is None else float(record[name]))
    refused, to, cc, bcc = row[len(FIELDS) :]
    record[REFUSED] = refused or []
    record[RECIPIENTS] = [*(to or ()), *(cc or ()), *(bcc or ())]
    return record


def emails(cursor: Cursor, query: Query) -> list[dict[str, Any]]:
    where, params = visible(query.bucket_id, query.collection_ids)
    # Only names of ``status.FIELDS`` reach here: the views refuse others.
    for index, (name, values) in enumerate(query.filters):
        where.append(f"{name}::text = ANY(%(f{index})s)")
        params[f"f{index}"] = [str(v) for v in values]
    order = ", ".join(
        f"{name} {'DESC NULLS LAST' if descending else 'ASC NULLS FIRST'}"
        for name, descending in query.sort
    )
    params.update(limit=query.limit, offset=query.offset)
    cursor.execute(
        f"SELECT {RECORD} FROM {TABLE} WHERE {' AND '.join(where)} "
        f"ORDER BY {order} LIMIT %(limit)s OFFSET %(offset)s",
        params,
    )
    return [as_record(row) for row in cursor.fetchall()]


def email(cursor: Cursor, bucket_id: str, email_id: str) -> dict[str, Any] | None:
    if not _ROW_ID.fullmatch(email_id):
        return None
    cursor.execute(
        f"SELECT {RECORD} FROM {TABLE} WHERE bucket_id = %(b)s AND id = %(id)s AND {EMAILS}",
        {"b": bucket_id, "id": int(email_id)},
    )
    row = cursor.fetchone()
    return None if row is None else as_record(row)


def change(
    cursor: Cursor, bucket_id: str, email_id: str, status: str, admission: Admission
) -> dict[str, Any] | None:
    if not _ROW_ID.fullmatch(email_id):
        return None
    params: dict[str, Any] = {"b": bucket_id, "id": int(email_id), "hour": HOUR}
    cursor.execute(
        f"SELECT status, size, remaining, refused, {COUNTED_IN_HOUR} FROM {TABLE} "
        "WHERE bucket_id = %(b)s AND id = %(id)s FOR UPDATE",
        params,
    )
    row = cursor.fetchone()
    if row is None:
        return None
    current, size, remaining, refused, counted = row
    check_transition(current, status)
    if status == QUEUED:
        again = Email(None, bucket_id=bucket_id, id=email_id, size=size)
        reason = admission.readmit(cursor, again, counted)
        if reason is not None:
            raise QueueRefused(reason)
        if remaining is not None:
            # Those who took it get no second copy; those refused for good are tried again.
            remaining += [r["address"] for r in refused or () if r["address"] not in remaining]
        params.update(remaining=None if remaining is None else json.dumps(remaining))
        sets = (
            "status = 'queued', attempts = 0, error = NULL, remaining = %(remaining)s, "
            "refused = '[]', sent = NULL, next_attempt = now(), queued_at = CASE WHEN "
            f"{COUNTED_IN_HOUR} THEN queued_at ELSE clock_timestamp() END"
        )
    else:
        sets = "status = 'cancelled'"
    cursor.execute(
        f"UPDATE {TABLE} SET {sets}, last_modified = clock_timestamp() WHERE id = %(id)s",
        params,
    )
    cursor.execute("SELECT pg_notify(%(channel)s, '')", {"channel": CHANNEL})
    return email(cursor, bucket_id, email_id)
