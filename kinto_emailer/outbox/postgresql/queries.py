"""The SQL of the worker's side of the outbox table: claims in turn between buckets, leases,
when the next email falls due, and the purge. Each reads only what it needs through the
partial indexes of ``migration_005_006.sql``, so that its cost stays flat however deep the
backlog and however many ended rows the status views keep. A claim's cost grows with the
number of buckets that have emails waiting: each gives up to a burst of candidates."""

from .. import ENDED, PENDING
from .admission import PENDING_SQL
from .cursors import Statement
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
# A queued row is due at once (``put``, ``release`` and the status views queue rows with
# ``next_attempt = now()``): any one of them says so, without reading them all.
# Not greatest(0, ...) in SQL: it would turn "nothing pending" (NULL) into 0.
NEXT_DUE_AT = f"""SELECT least(
    (SELECT next_attempt FROM {TABLE} WHERE status = 'queued' ORDER BY bucket_id LIMIT 1),
    (SELECT min(next_attempt) FROM {TABLE} WHERE status = 'retrying'),
    (SELECT min(lease_until) FROM {TABLE} WHERE status = 'sending'))"""
# A count per status: each reads its own partial index, not the ended rows.
PENDING_COUNT = "SELECT " + " + ".join(
    f"(SELECT count(*) FROM {TABLE} WHERE status = '{status}')" for status in PENDING
)
# One email per bucket and turn: the n-th waiting email of every bucket before any (n+1)-th.
# The candidates: each bucket's first queued rows (a loose scan finds the buckets, one probe
# each), then the retries due and the leases expired, the oldest first; never the whole
# backlog. Twice the limit in turn order: a worker claiming at the same moment skips the
# rows another holds, and still finds a burst.
CLAIM_SQL = f"""
WITH RECURSIVE buckets(bucket_id) AS (
    (SELECT bucket_id FROM {TABLE} WHERE status = 'queued' ORDER BY bucket_id LIMIT 1)
    UNION ALL
    SELECT (SELECT o.bucket_id FROM {TABLE} o WHERE o.status = 'queued'
             AND o.bucket_id > b.bucket_id ORDER BY o.bucket_id LIMIT 1)
      FROM buckets b WHERE b.bucket_id IS NOT NULL
), candidates AS (
    SELECT q.id, q.bucket_id FROM buckets b CROSS JOIN LATERAL (
        SELECT o.id, o.bucket_id FROM {TABLE} o
         WHERE o.status = 'queued' AND o.bucket_id = b.bucket_id
         ORDER BY o.id LIMIT %(limit)s
    ) q
    UNION ALL (
        SELECT id, bucket_id FROM {TABLE} WHERE status = 'retrying' AND next_attempt <= now()
         ORDER BY next_attempt LIMIT %(limit)s
    )
    UNION ALL (
        SELECT id, bucket_id FROM {TABLE} WHERE status = 'sending' AND lease_until < now()
         ORDER BY lease_until LIMIT %(limit)s
    )
), ranked AS (
    SELECT id, row_number() OVER (PARTITION BY bucket_id ORDER BY id) AS turn FROM candidates
     ORDER BY turn, id LIMIT 2 * %(limit)s
), picked AS (
    SELECT o.id FROM {TABLE} o JOIN ranked ON ranked.id = o.id
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
CLAIM = Statement(
    "kinto_emailer_claim",
    CLAIM_SQL,
    (("limit", "int"), ("worker", "text"), ("lease", "float8")),
)
# The leases of a whole burst, renewed together: those that come back are still ours.
RENEW = Statement(
    "kinto_emailer_renew",
    f"""
UPDATE {TABLE} SET lease_until = now() + make_interval(secs => %(lease)s)
 WHERE id = ANY(%(ids)s) AND status = 'sending' AND worker = %(worker)s RETURNING id
""",
    (("lease", "float8"), ("ids", "bigint[]"), ("worker", "text")),
)
RELEASE = f"""
UPDATE {TABLE} SET status = CASE WHEN attempts > 0 THEN 'retrying' ELSE 'queued' END,
       lease_until = NULL, worker = NULL, next_attempt = now(), last_modified = clock_timestamp()
 WHERE id = ANY(%(ids)s) AND worker = %(w)s
"""
#: Rows the purge deletes per transaction.
PURGE_BATCH = 1000
# The oldest first, through the index of ended rows (whose predicate it repeats): a batch
# reads what it deletes, not the rows that wait nor those earlier batches left dead.
PURGE = f"""
DELETE FROM {TABLE} WHERE id IN (
    SELECT id FROM {TABLE} WHERE status NOT IN {PENDING_SQL} AND status IN {ENDED_SQL}
       AND last_modified < now() - make_interval(secs => %(seconds)s)
     ORDER BY last_modified LIMIT %(batch)s FOR UPDATE SKIP LOCKED)
"""
