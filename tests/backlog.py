"""A deep outbox, made fast: ``fill(url, pending, ended)`` writes rows straight into the
PostgreSQL outbox table of a migrated database with ``INSERT ... SELECT generate_series``
(no kinto_emailer code: the bench and the tests both use it, whatever the plugin does).

Pending rows are ``queued`` emails spread over ``buckets`` buckets, claimable now; ended
rows are ``sent``, ``failed`` and ``cancelled`` emails, ended days ago (but within the
default retention: ``ended_days_ago`` moves them past it, for the purge), as the status
views keep them.
"""

import psycopg2


TABLE = "kinto_emailer_outbox"
#: A message as the outbox keeps it (``message_to_json``); its subject is the row's number.
MESSAGE = """jsonb_build_object(
    'subject', 'backlog ' || n, 'sender', 'kinto@example.com',
    'recipients', jsonb_build_array('alice@example.com'), 'cc', '[]'::jsonb,
    'bcc', '[]'::jsonb, 'body', 'A record was created.', 'html', NULL,
    'headers', jsonb_build_object('Message-ID', '<backlog.' || n || '@kinto-emailer>'))"""
COLUMNS = (
    "bucket_id, collection_id, hook, uri, action, event, subject, recipients_count, message, "
    "size, status, attempts, error, next_attempt, created, last_modified, queued_at, sent"
)
#: Rows per statement: each is its own transaction, so that a big fill keeps WAL in check.
CHUNK = 100_000


def _rows(status: str, ended_days_ago: float, buckets: int) -> str:
    # ``age``: when the row was written; ended rows in the past, pending ones now.
    age = "now()" if status == "queued" else f"now() - make_interval(days => {ended_days_ago})"
    error = {"failed": "'550 no such user'", "cancelled": "NULL", "sent": "NULL"}.get(
        status, "NULL"
    )
    sent = f"{age}" if status == "sent" else "NULL"
    attempts = "0" if status in ("queued", "cancelled") else "1"
    return f"""
        SELECT 'bucket-' || mod(n, {buckets}), 'c',
               '/buckets/bucket-' || mod(n, {buckets}) || '#0',
               '/buckets/bucket-' || mod(n, {buckets}) || '/collections/c/records/r' || n,
               'create', 'record.create', 'backlog ' || n, 1, {MESSAGE}, 300,
               '{status}', {attempts}, {error}, {age}, {age}, {age}, {age}, {sent}
          FROM generate_series(%(start)s::bigint, %(stop)s::bigint) AS n"""


def fill(
    url: str,
    pending: int,
    ended: int,
    buckets: int = 10,
    ended_days_ago: float = 1,
) -> None:
    """Add ``pending`` queued emails and ``ended`` ended ones (a third each sent, failed,
    cancelled) to the outbox of the database at ``url``, then ``ANALYZE`` it."""
    statuses = ("sent", "failed", "cancelled")
    batches = [("queued", pending)] + [
        (status, ended // 3 + (1 if i < ended % 3 else 0)) for i, status in enumerate(statuses)
    ]
    connection = psycopg2.connect(url)
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            for status, count in batches:
                select = _rows(status, ended_days_ago, buckets)
                for start in range(1, count + 1, CHUNK):
                    stop = min(count, start + CHUNK - 1)
                    cursor.execute(
                        f"INSERT INTO {TABLE} ({COLUMNS}) {select}",
                        {"start": start, "stop": stop},
                    )
            cursor.execute(f"VACUUM ANALYZE {TABLE}")
    finally:
        connection.close()
