"""Time-window digests in the outbox table: one ``collecting`` row per open window, shared
by every process; the worker that claims it once closed puts its emails in the outbox.

A change that finds its hook's window closed but not yet claimed marks it ``closing`` (the
worker still sends it) and opens a new one: a window never takes changes past its end.
"""

import json
from typing import TYPE_CHECKING

from .. import DraftCompleter, Email, Window, text_size


if TYPE_CHECKING:
    from . import Cursor
    from .admission import Admission

Refused = list[tuple[Window, str]]


TABLE = "kinto_emailer_outbox"
_CLOSE_STALE = f"""
UPDATE {TABLE} SET status = 'closing', last_modified = clock_timestamp()
 WHERE hook = %(hook)s AND status = 'collecting' AND window_closes <= now()
"""
# Origin fields that differ between two changes of the window are NULL.
_SAME = ", ".join(
    f"{name} = CASE WHEN w.{name} IS DISTINCT FROM %({name})s THEN NULL ELSE w.{name} END"
    for name in ("collection_id", "uri", "action", "event")
)
# A change's part: its count and first lines, never its draft (the window keeps its first).
# Its lines count in the window's size while the window lists fewer than max_items.
_JOINED = f"""
    items = (
        SELECT coalesce(jsonb_agg(e.value ORDER BY e.n), '[]'::jsonb)
          FROM jsonb_array_elements(w.items || %(items)s::jsonb) WITH ORDINALITY AS e(value, n)
         WHERE e.n <= %(max_items)s),
    item_count = w.item_count + %(count)s,
    authors_mixed = w.authors_mixed OR w.author IS DISTINCT FROM %(author)s,
    size = w.size + CASE WHEN jsonb_array_length(w.items) < %(max_items)s
                         THEN %(lines_size)s ELSE 0 END,
    {_SAME},
    last_modified = clock_timestamp()
"""
_JOIN = f"""
UPDATE {TABLE} AS w SET {_JOINED}
 WHERE hook = %(hook)s AND status = 'collecting' AND window_closes > now()
RETURNING id
"""
# Another process may open the hook's window between our join and this insert: then join it.
_OPEN = f"""
INSERT INTO {TABLE} AS w (
    bucket_id, collection_id, hook, uri, action, event, subject, recipients_count, message,
    size, status, window_closes, window_draft, items, item_count, author)
VALUES (
    %(bucket_id)s, %(collection_id)s, %(hook)s, %(uri)s, %(action)s, %(event)s, %(subject)s,
    %(recipients_count)s, %(message)s, %(size)s, 'collecting',
    now() + make_interval(secs => %(seconds)s), %(draft)s, %(items)s, %(count)s, %(author)s)
ON CONFLICT (hook) WHERE status = 'collecting' DO UPDATE SET {_JOINED}
"""
# SKIP LOCKED: each closed window is taken by one worker, whatever the processes.
_TAKE_CLOSED = f"""
DELETE FROM {TABLE} WHERE id IN (
    SELECT id FROM {TABLE}
     WHERE status IN ('collecting', 'closing') AND window_closes <= now()
     ORDER BY window_closes LIMIT %(limit)s
     FOR UPDATE SKIP LOCKED)
RETURNING hook, bucket_id, collection_id, uri, action, event, window_draft, items, item_count,
          CASE WHEN authors_mixed THEN NULL ELSE author END
"""
NEXT_WINDOW_AT = f"""
SELECT min(window_closes) FROM {TABLE} WHERE status IN ('collecting', 'closing')
"""
# Not greatest(0, ...): it would turn "no window open" (NULL) into 0.
NEXT_WINDOW = f"SELECT extract(epoch FROM ({NEXT_WINDOW_AT}) - now())"


def gather(
    cursor: "Cursor", windows: list[Window], admission: "Admission", drafts: DraftCompleter
) -> Refused:
    """Add each part to its hook's open window, else open one if the queue has room for its
    draft (``queue_bytes``); returns the parts that opened none, with why."""
    refused: Refused = []
    # Always in the order of hooks: two requests never wait for each other's rows in a cycle.
    for window in sorted(windows, key=lambda w: w.location):
        lines = window.lines[: window.max_items]
        part = {
            "hook": window.location,
            "collection_id": window.collection_id,
            "uri": window.uri,
            "action": window.action,
            "event": window.event,
            "items": json.dumps(lines),
            "count": window.count,
            "author": window.author,
            "max_items": window.max_items,
            "lines_size": sum(text_size(line) for line in lines),
        }
        # Most changes join an open window: one statement, and no draft sent.
        cursor.execute(_JOIN, part)
        if cursor.fetchone() is not None:
            continue
        cursor.execute(_CLOSE_STALE, {"hook": window.location})
        reason = admission.room_for_window(cursor, window.bucket_id, window.open())
        if reason is not None:
            refused.append((window, reason))
            continue
        first = window.draft["messages"][0]
        cursor.execute(
            _OPEN,
            {
                **part,
                "bucket_id": window.bucket_id,
                "subject": drafts.placeholders(first["subject"] or "", window.draft),
                "recipients_count": sum(
                    len(m["recipients"]) + len(m["cc"]) + len(m["bcc"])
                    for m in window.draft["messages"]
                ),
                "message": json.dumps(first),
                "size": window.size,
                "seconds": window.seconds,
                "draft": json.dumps(window.draft),
            },
        )
    return refused


def take_closed(cursor: "Cursor", limit: int, drafts: DraftCompleter) -> list[Email]:
    """The emails of the windows that have closed; the windows are removed."""
    cursor.execute(_TAKE_CLOSED, {"limit": limit})
    rows = cursor.fetchall()
    emails = []
    for hook, bucket_id, cid, uri, action, event, draft, items, count, author in rows:
        origin = {"bucket_id": bucket_id, "collection_id": cid, "uri": uri, "action": action}
        for message in drafts.complete(draft, items, count, author):
            emails.append(Email(message, hook, event=event, **origin))
    return emails
