"""The SQL of the worker's side of the outbox table: claims in turn between buckets, and
when the next email falls due."""

from .. import ENDED
from .admission import PENDING_SQL
from .table import TABLE


ENDED_SQL = "(" + ", ".join(f"'{status}'" for status in ENDED) + ")"
COLUMNS = (
    "bucket_id, collection_id, hook, uri, action, event, subject, recipients_count, "
    "message, size, status, error, channel, destination, payload"
)
CLAIMABLE = """
    (o.status IN ('queued', 'retrying') AND o.next_attempt <= now())
    OR (o.status = 'sending' AND o.lease_until < now())
"""
# Not greatest(0, ...) in SQL: it would turn "nothing pending" (NULL) into 0.
NEXT_DUE_AT = (
    f"SELECT min(CASE WHEN status = 'sending' THEN lease_until ELSE next_attempt END) "
    f"FROM {TABLE} WHERE status IN {PENDING_SQL}"
)
# One email per bucket and turn: the n-th waiting email of every bucket before any (n+1)-th.
CLAIM = f"""
WITH picked AS (
    SELECT o.id FROM {TABLE} o
    JOIN (
        SELECT id, row_number() OVER (PARTITION BY bucket_id ORDER BY id) AS turn
        FROM {TABLE} o WHERE {CLAIMABLE}
    ) ranked ON ranked.id = o.id
    WHERE {CLAIMABLE}
    ORDER BY ranked.turn, o.id
    LIMIT %(limit)s
    FOR UPDATE OF o SKIP LOCKED
)
UPDATE {TABLE} o
   SET status = 'sending', worker = %(worker)s, last_modified = clock_timestamp(),
       lease_until = now() + make_interval(secs => %(lease)s)
  FROM picked WHERE o.id = picked.id
RETURNING o.id, o.bucket_id, o.collection_id, o.hook, o.uri, o.action, o.event, o.message,
          o.remaining, o.size, o.attempts, extract(epoch FROM o.created) AS created, o.refused,
          o.channel, o.destination, o.payload
"""
