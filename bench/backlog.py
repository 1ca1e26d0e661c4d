"""The PostgreSQL outbox's worker, alone: a burst-by-burst drain of a deep backlog, and the
query plans of a deep outbox.

``python bench/backlog.py drain --pending 5000 [--ended 0] [--profile]``: fills a temporary
database (``tests/backlog.py``), drains it with one ``Worker`` of the plugin against the
bench's mail server (a process of its own), and prints the worker's CPU per email, its
statements per email (counted by a cursor wrapper) and its rate; ``--profile`` prints
cProfile's top functions too.

``python bench/backlog.py plans --pending 100000 --ended 1000000``: the ``EXPLAIN (ANALYZE,
BUFFERS)`` of the claim, an outcome, the next due, the status listing, the admission counts,
a hooked write's INSERT and the purge, on such an outbox.
"""

import argparse
import cProfile
import os
import pstats
import sys
import time
from collections import Counter


sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import psycopg2  # noqa: E402
import psycopg2.extensions  # noqa: E402

from bench.processes import Inbox  # noqa: E402
from tests.backlog import fill  # noqa: E402
from tests.support import KINTO_SETTINGS, TemporaryDatabase, migrate, postgresql_settings  # noqa: E402


class Statements:
    """Counts what the outbox sends to PostgreSQL, by the statement's first words."""

    def __init__(self):
        self.counts = Counter()
        statements = self

        class CountingCursor(psycopg2.extensions.cursor):
            def execute(self, sql, params=None):
                statements.counts[" ".join(str(sql).split()[:3])] += 1
                return super().execute(sql, params)

        class CountingConnection(psycopg2.extensions.connection):
            def cursor(self, *args, **kwargs):
                kwargs.setdefault("cursor_factory", CountingCursor)
                return super().cursor(*args, **kwargs)

        self.factory = CountingConnection

    def install(self):
        connect = psycopg2.connect

        def counting_connect(*args, **kwargs):
            kwargs.setdefault("connection_factory", self.factory)
            return connect(*args, **kwargs)

        psycopg2.connect = counting_connect

    def total(self):
        return sum(self.counts.values())


def settings(url, smtp_port):
    return {
        **KINTO_SETTINGS,
        **postgresql_settings(url),
        "includes": "kinto_emailer",
        "kinto_emailer.outbox": "postgresql",
        "kinto_emailer.outbox_worker": "false",
        "mail.host": "127.0.0.1",
        "mail.port": str(smtp_port),
        "mail.default_sender": "kinto@example.com",
        "kinto.userid_hmac_secret": "bench",
    }


def emailer(app_settings):
    import kinto
    from pyramid.config import Configurator

    config = Configurator(settings=app_settings)
    kinto.main({}, config=config)
    return config.registry.emailer


def drain(args):
    inbox = Inbox()
    with TemporaryDatabase("kinto_emailer_backlog") as database:
        app_settings = settings(database.url, inbox.port)
        migrate(app_settings)
        fill(database.url, args.pending, args.ended)
        statements = Statements()
        statements.install()
        delivery = emailer(app_settings).delivery
        worker = delivery.new_worker()
        profile = cProfile.Profile() if args.profile else None
        if profile:  # The worker's thread, not this one that waits.
            run = worker.run
            worker.run = lambda: profile.runcall(run)
        cpu, started = time.process_time(), time.monotonic()
        worker.ensure_started()
        took = inbox.wait_for("backlog", args.pending, timeout=600)
        cpu, elapsed = time.process_time() - cpu, time.monotonic() - started
        worker.stop(timeout=5)
        inbox.stop()
    if took is None:
        print(f"only {inbox.counts.get('backlog', 0)} of {args.pending} emails arrived")
    n = args.pending
    print(
        f"{n} emails ({args.ended} ended rows): {n / elapsed:.0f} emails/s, "
        f"CPU {cpu / n * 1000:.3f} ms per email, "
        f"{statements.total() / n:.3f} statements per email ({statements.total()} in all)"
    )
    for statement, count in statements.counts.most_common(12):
        print(f"  {count:7d}  {statement}")
    if profile:
        pstats.Stats(profile).sort_stats("tottime").print_stats(25)


PLANS = {
    "claim (100)": "CLAIM",
    "next due": "NEXT_DUE",
    "outcomes (100 sent, one statement)": "OUTCOMES",
    "status listing (default sort, first page)": (
        "SELECT id FROM kinto_emailer_outbox WHERE bucket_id = 'bucket-1' "
        "AND status NOT IN ('collecting', 'closing') "
        "ORDER BY created DESC NULLS LAST, id DESC NULLS LAST LIMIT 10 OFFSET 0"
    ),
    "hourly count (admission)": (
        "SELECT bucket_id, count(*) FROM kinto_emailer_outbox WHERE bucket_id = ANY('{bucket-1}') "
        "AND queued_at > now() - make_interval(secs => 3600) "
        "AND status NOT IN ('dropped', 'collecting', 'closing') GROUP BY bucket_id"
    ),
    "queue usage (admission)": (
        "SELECT bucket_id, count(*) FILTER (WHERE status IN ('queued', 'sending', 'retrying')), "
        "coalesce(sum(size), 0) FROM kinto_emailer_outbox WHERE status IN "
        "('queued', 'sending', 'retrying', 'collecting', 'closing') GROUP BY bucket_id"
    ),
    "pending count (a count per status)": "PENDING",
    "pending count (4.x)": (
        "SELECT count(*) FROM kinto_emailer_outbox "
        "WHERE status IN ('queued', 'sending', 'retrying')"
    ),
    "purge (one batch)": "PURGE",
    "one outcome (4.x: a statement per email)": (
        "UPDATE kinto_emailer_outbox SET status = 'sent', sent = clock_timestamp(), "
        "attempts = 1, error = NULL, refused = '[]', last_modified = clock_timestamp(), "
        "lease_until = NULL, worker = NULL WHERE id = 50"
    ),
    "purge (4.x: one DELETE)": (
        "DELETE FROM kinto_emailer_outbox WHERE status IN ('sent', 'failed', 'cancelled', "
        "'dropped') AND last_modified < now() - make_interval(secs => %(seconds)s)"
    ),
    "hooked write's INSERT": (
        "INSERT INTO kinto_emailer_outbox (bucket_id, hook, recipients_count, message, size) "
        "VALUES ('bucket-1', '/buckets/bucket-1#0', 1, '{}', 300)"
    ),
}


def plans(args):
    from kinto_emailer.outbox.postgresql import outcomes, queries

    with TemporaryDatabase("kinto_emailer_plans") as database:
        migrate(settings(database.url, 25))
        started = time.monotonic()
        fill(database.url, args.pending, args.ended, ended_days_ago=30)
        print(f"filled {args.pending} pending, {args.ended} ended in "
              f"{time.monotonic() - started:.0f}s")  # fmt: skip
        sql = {
            "CLAIM": queries.CLAIM.sql,
            "NEXT_DUE": f"SELECT extract(epoch FROM ({queries.NEXT_DUE_AT}) - now())",
            "OUTCOMES": outcomes.WRITE.sql,
            "PURGE": queries.PURGE,
            "PENDING": queries.PENDING_COUNT,
        }
        sent = [outcomes.Outcome(n, "sent", 1, None, None, "[]") for n in range(1, 101)]
        written = outcomes.write(sent, "bench")[1]
        params = {
            "limit": 100, "worker": "bench", "lease": 60, "batch": 1000,
            "seconds": 7 * 86400, **written,
        }  # fmt: skip
        connection = psycopg2.connect(database.url)
        try:
            with connection.cursor() as cursor:
                for title, statement in PLANS.items():
                    statement = sql.get(statement, statement)
                    if statement is None:
                        continue
                    cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {statement}", params)
                    print(f"\n== {title}")
                    for (line,) in cursor.fetchall():
                        print(line)
                    connection.rollback()  # Plans of writes leave the outbox as it was.
        finally:
            connection.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("drain")
    run.add_argument("--pending", type=int, default=5000)
    run.add_argument("--ended", type=int, default=0)
    run.add_argument("--profile", action="store_true")
    run.set_defaults(handler=drain)
    show = commands.add_parser("plans")
    show.add_argument("--pending", type=int, default=100_000)
    show.add_argument("--ended", type=int, default=1_000_000)
    show.set_defaults(handler=plans)
    args = parser.parse_args()
    args.handler(args)


if __name__ == "__main__":
    main()
