"""Issue 23: what a hooked write costs the web process on PostgreSQL, counted statement by
statement on Kinto's connections (a cursor that notes each one), through the real app."""

import psycopg2.extensions
from sqlalchemy import event

from tests.support import HookWebTest, PostgreSQLOutboxMixin, record_hook


OUTBOX_TABLE = "kinto_emailer_outbox"
OPTOUTS = "kinto_emailer_optout"


def text(query):
    return query.decode() if isinstance(query, bytes) else str(query)


class TestStatementsOfAHookedWrite(PostgreSQLOutboxMixin, HookWebTest):
    @classmethod
    def extra_settings(cls):
        return {**super().extra_settings(), "kinto_emailer.outbox_worker": "false"}

    def setUp(self):
        super().setUp()
        self.addCleanup(self.app.app.registry.emailer.delivery.outbox.flush)
        self.sent = []
        sent = self.sent

        class NotingCursor(psycopg2.extensions.cursor):
            def execute(self, query, vars=None):
                sent.append((query, vars))
                return super().execute(query, vars)

        def checkout(dbapi_connection, record, proxy):
            dbapi_connection.cursor_factory = NotingCursor

        def checkin(dbapi_connection, record):
            dbapi_connection.cursor_factory = psycopg2.extensions.cursor

        engine = self.app.app.registry.storage.client.session_factory.session_factory.kw["bind"]
        event.listen(engine, "checkout", checkout)
        event.listen(engine, "checkin", checkin)
        self.addCleanup(event.remove, engine, "checkout", checkout)
        self.addCleanup(event.remove, engine, "checkin", checkin)
        self.save_hooks(record_hook(), record_hook(action="delete"))
        self.create_collection("b", "unmatched", data=self.hooked(record_hook(action="delete")))

    def statements(self, write):
        write()  # Once before: the first write of a collection reads and creates more.
        del self.sent[:]
        write()
        return [(text(query), str(params)) for query, params in self.sent]

    def test_a_hooked_write_adds_one_insert_and_reads_no_opt_out(self):
        hooked = self.statements(lambda: self.create_record())
        unmatched = self.statements(lambda: self.create_record(collection_id="unmatched"))
        ours = [query for query, _ in hooked if OUTBOX_TABLE in query]
        assert len(ours) == 1 and ours[0].lstrip().startswith("INSERT"), ours
        assert not any(OPTOUTS in query + params for query, params in hooked)
        # The same path in Kinto (a collection with hooks, none of which matches), plus one.
        assert len(hooked) == len(unmatched) + 1, (hooked, unmatched)

    def test_a_batch_of_hooked_writes_adds_one_insert_for_all_its_emails(self):
        path = "/buckets/b/collections/c/records"
        requests = [{"method": "POST", "path": path, "body": {"data": {}}}] * 5

        def batch():
            self.app.post_json("/batch", {"requests": requests}, headers=self.headers)

        statements = self.statements(batch)
        ours = [query for query, _ in statements if OUTBOX_TABLE in query]
        assert len(ours) == 1 and ours[0].lstrip().startswith("INSERT"), ours
        outbox = self.app.app.registry.emailer.delivery.outbox
        assert outbox.pending() == 10


def bucket_reads(statements):
    return [(q, p) for q, p in statements if "'bucket'" in p and "objects" in q]


class TestStatementsWithoutHTTPChannels(TestStatementsOfAHookedWrite):
    def test_a_collection_with_hooks_of_its_own_reads_no_bucket(self):
        # Neither Slack nor webhooks are configured: no hook of theirs is looked for.
        assert not bucket_reads(self.statements(lambda: self.create_record()))


class TestStatementsWithSlack(TestStatementsOfAHookedWrite):
    @classmethod
    def extra_settings(cls):
        return {**super().extra_settings(), "slack.webhook_url": "http://127.0.0.1:9/slack"}

    def test_the_bucket_is_read_for_its_slack_hooks(self):
        # The collection has no kinto-slack key: its bucket's may have hooks.
        assert len(bucket_reads(self.statements(lambda: self.create_record()))) == 1
