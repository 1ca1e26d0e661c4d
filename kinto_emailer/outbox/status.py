"""What the status views say of an email, and the changes they may make.

A Slack message or a webhook delivery is listed as an email is: its ``channel`` says which,
its ``destination`` where it goes (the Slack channel, the endpoint's name; never a URL), and
it has no subject nor recipients.

``GET /buckets/{bid}/emails`` lists records of the fields below; a query filters them
(equality, or ``in_`` a list), sorts and pages them. Each outbox answers the same query.
"""

from dataclasses import dataclass, field
from typing import Any

from . import CANCELLED, DROPPED, FAILED, QUEUED, RETRYING, Email


#: The fields of a record, in the order they are shown.
FIELDS = (
    "id",
    "channel",
    "destination",
    "status",
    "attempts",
    "error",
    "hook",
    "bucket_id",
    "collection_id",
    "uri",
    "action",
    "event",
    "subject",
    "recipients_count",
    "created",
    "last_modified",
    "sent",
)
#: Every address the email goes to (To, Cc, Bcc): only for the bucket's writers.
RECIPIENTS = "recipients"
#: The recipients refused for good (``Email.refused``); collection writers see no address.
REFUSED = "refused"
#: The status a PATCH may set, and the statuses it may set it from.
TRANSITIONS: dict[str, tuple[str, ...]] = {
    QUEUED: (FAILED, CANCELLED, DROPPED),
    CANCELLED: (QUEUED, RETRYING),
}
DEFAULT_SORT = (("created", True), ("id", True))


class TransitionError(ValueError):
    """A change of status that the views don't allow; the message lists those they do."""


class QueueRefused(Exception):
    """A limit refuses to queue an email again; it stays as it was. The message says which."""


def transition_error(current: str, wanted: object) -> TransitionError:
    allowed = "; ".join(
        f'"{target}" from {" or ".join(repr(str(s)) for s in sources)}'
        for target, sources in TRANSITIONS.items()
    )
    # ``str``: a ``Status``'s own repr names its class.
    shown = str(wanted) if isinstance(wanted, str) else wanted
    return TransitionError(
        f"Can't change the status from {str(current)!r} to {shown!r}: "
        f"allowed changes are {allowed}"
    )


def check_transition(current: str, wanted: object) -> None:
    if not isinstance(wanted, str) or current not in TRANSITIONS.get(wanted, ()):
        raise transition_error(current, wanted)


@dataclass
class Query:
    bucket_id: str
    #: The collections whose emails the reader may see; ``None``: all the bucket's.
    collection_ids: list[str] | None = None
    #: ``(field, accepted values)``: a record matches when its field is one of them.
    filters: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    #: ``(field, descending)``, most significant first.
    sort: tuple[tuple[str, bool], ...] = DEFAULT_SORT
    limit: int = 100
    offset: int = 0


def millis(seconds: float | None) -> int | None:
    return None if seconds is None else int(seconds * 1000)


def describe(email: Email) -> dict[str, Any]:
    """The record of an email kept in this process (memory and Maildir outboxes)."""
    message = email.message
    return {
        "id": email.id,
        "channel": email.channel,
        "destination": email.destination,
        "status": email.status,
        "attempts": email.attempts,
        "error": email.error,
        "hook": email.location,
        "bucket_id": email.bucket_id,
        "collection_id": email.collection_id,
        "uri": email.uri,
        "action": email.action,
        "event": email.event,
        "subject": message.subject if message is not None else None,
        "recipients_count": len(email.recipients),
        "created": millis(email.created),
        "last_modified": millis(email.last_modified),
        "sent": millis(email.sent),
        REFUSED: [dict(entry) for entry in email.refused],
        RECIPIENTS: email.recipients,
    }


def without_addresses(record: dict[str, Any]) -> dict[str, Any]:
    """``record`` for a reader who may not see the recipients' addresses."""
    record = {k: v for k, v in record.items() if k != RECIPIENTS}
    record[REFUSED] = [
        {k: v for k, v in entry.items() if k != "address"} for entry in record[REFUSED]
    ]
    return record


def select(records: list[dict[str, Any]], query: Query) -> list[dict[str, Any]]:
    """``query`` applied to records in memory: visible, filtered, sorted, one page."""
    visible = [
        r
        for r in records
        if r["bucket_id"] == query.bucket_id
        and (query.collection_ids is None or r["collection_id"] in query.collection_ids)
        and all(str(r[name]) in map(str, values) for name, values in query.filters)
    ]
    for name, descending in reversed(query.sort):
        # None sorts first, as the smallest value: PostgreSQL's NULLS FIRST in ascending order.
        visible.sort(key=lambda r: _sortable(r[name], name), reverse=descending)
    return visible[query.offset : query.offset + query.limit]


def _sortable(value: Any, name: str) -> tuple[int, Any]:
    if name == "id":
        return (1, int(value))
    if value is None:
        return (0, 0)
    return (1, value)
