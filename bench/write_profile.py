"""What the web process spends per hooked write beyond Kinto, through the real app: the
plugin on PostgreSQL with ``kinto_emailer.outbox = postgresql`` and ``outbox_worker =
false``, one record created at a time in a hooked collection (and as many in a collection
without hooks, for Kinto's own share). Prints the statements each write sends to
PostgreSQL (by kind) and cProfile's top functions of the plugin.

``.venv/bin/python bench/write_profile.py [WRITES]``; needs PostgreSQL at 127.0.0.1:5432.
"""

import cProfile
import os
import pstats
import re
import sys
import time
from collections import Counter

import psycopg2.extensions
import webtest
from kinto.core.testing import get_user_headers


sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tests.support import (  # noqa: E402
    KINTO_SETTINGS,
    TemporaryDatabase,
    hooked,
    migrate,
    postgresql_settings,
    record_hook,
)


class Statements:
    """Every statement sent on the connections of Kinto's storage, by its first words."""

    def __init__(self):
        self.sent: list[str] = []
        statements = self

        class CountingCursor(psycopg2.extensions.cursor):
            def execute(self, query, vars=None):
                statements.sent.append(kind(query))
                return super().execute(query, vars)

        self.cursor_factory = CountingCursor

    def watch(self, storage):
        from sqlalchemy import event

        engine = storage.client.session_factory.session_factory.kw["bind"]

        def checkout(dbapi_connection, record, proxy):
            dbapi_connection.cursor_factory = self.cursor_factory

        event.listen(engine, "checkout", checkout)


def kind(query) -> str:
    text = query.decode() if isinstance(query, bytes) else str(query)
    text = " ".join(text.split())
    for table in ("kinto_emailer_outbox", "objects", "timestamps", "access_control_entries"):
        if table in text:
            break
    else:
        table = ""
    verb = re.match(r"\s*(WITH|\w+)", text)
    return f"{verb.group(1).upper() if verb else '?'} {table}".strip()


def make_app(url, smtp_port):
    settings = {
        **KINTO_SETTINGS,
        **postgresql_settings(url),
        "includes": "kinto_emailer",
        "multiauth.policies": "basicauth",
        "userid_hmac_secret": "profile",
        "mail.host": "127.0.0.1",
        "mail.port": str(smtp_port),
        "mail.default_sender": "kinto@example.com",
        "kinto_emailer.outbox": "postgresql",
        "kinto_emailer.outbox_worker": "false",
    }
    migrate(settings)
    import kinto

    return webtest.TestApp(kinto.main({}, **settings))


def main(writes=300):
    headers = {"Content-Type": "application/json", **get_user_headers("alice")}
    with TemporaryDatabase(prefix="kinto_emailer_profile") as database:
        app = make_app(database.url, 2525)  # Nothing is sent: no worker in this process.
        app.put_json("/v1/buckets/b", {"data": {}}, headers=headers)
        app.put_json("/v1/buckets/b/collections/plain", {"data": {}}, headers=headers)
        app.put_json(
            "/v1/buckets/b/collections/c", {"data": hooked(record_hook())}, headers=headers
        )
        statements = Statements()
        statements.watch(app.app.registry.storage)
        for collection in ("plain", "c") * 20:  # Warm-up.
            app.post_json(f"/v1/buckets/b/collections/{collection}/records", {}, headers=headers)
        per_write = {}
        for collection in ("plain", "c"):
            statements.sent.clear()
            path = f"/v1/buckets/b/collections/{collection}/records"
            app.post_json(path, {}, headers=headers)
            per_write[collection] = Counter(statements.sent)
        profiles = {}
        for collection in ("plain", "c"):
            path = f"/v1/buckets/b/collections/{collection}/records"
            profile = cProfile.Profile()
            started = time.perf_counter()
            profile.enable()
            for _ in range(writes):
                app.post_json(path, {}, headers=headers)
            profile.disable()
            profiles[collection] = (profile, (time.perf_counter() - started) / writes)
        del app
    for collection, counts in per_write.items():
        total = sum(counts.values())
        print(f"{collection}: {total} statements per write: {dict(counts)}")
    for collection, (_, seconds) in profiles.items():
        print(f"{collection}: {seconds * 1000:.2f} ms per write (under cProfile)")
    stats = pstats.Stats(profiles["c"][0])
    print(f"\nThe plugin's functions, hooked writes ({writes}), cumulative:")
    stats.sort_stats("cumulative").print_stats(r"kinto_emailer", 25)


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:2]))
