"""Issue 14, point 2: time-window digests through the real app and the real SMTP server, on
the memory outbox and on the PostgreSQL outbox."""

import psycopg2

from tests.support import (
    HookWebTest,
    MaildirQueueMixin,
    PostgreSQLOutboxMixin,
    per_outbox,
    record_hook,
)


def window_hook(**fields):
    """A digest of the changes of 3 seconds, in one email."""
    fields = {"digest": True, "digest_window": 3, "template": "{items}", **fields}
    return record_hook("{count} changes", **fields)


class WindowScenarios:
    def changes(self, count):
        return [self.create_record(data={"n": n}).json["data"]["id"] for n in range(count)]

    def none_yet(self, before=0):
        """No email arrived since the ``before`` first ones."""
        self.drain()
        assert len(self.inbox.messages) == before, [m["Subject"] for m in self.inbox.messages]

    def arrived(self, count):
        return self.inbox.expect(count, timeout=30)

    def test_changes_within_the_window_make_one_email_once_it_closes(self):
        self.save_hooks(window_hook())
        ids = self.changes(3)
        self.none_yet()  # The window is open: nothing sent.
        (message,) = self.arrived(1)
        assert message["Subject"] == "3 changes"
        lines = message.get_content().replace("\r\n", "\n").strip().split("\n")
        assert lines == [f"record {rid} created" for rid in ids]

        # The next change opens a new window: one more email, of its own.
        (fourth,) = self.changes(1)
        self.none_yet(before=1)
        first, second = self.arrived(2)
        assert first is message
        assert second["Subject"] == "1 changes"
        assert second.get_content().strip() == f"record {fourth} created"

    def test_without_a_window_a_digest_is_one_email_per_request(self):
        hook = window_hook()
        del hook["digest_window"]
        self.save_hooks(hook)
        self.changes(2)
        self.drain()
        assert [m["Subject"] for m in self.arrived(2)] == ["1 changes", "1 changes"]

    def test_digest_window_is_checked_when_saved(self):
        no_digest = window_hook(digest=False)
        assert '"digest_window" needs "digest": true' in self.refused(no_digest)
        for bad in (0, 86401, 2.5, "60", True):
            message = self.refused(window_hook(digest_window=bad))
            assert '"digest_window" must be a whole number of seconds from 1 to 86400' in message


#: Issue 24, attack 1: templates that render to the largest body, from a 2,000-character field.
BIG = "{new[b]}" * 512
BIG_WINDOW = window_hook(
    digest_window=3600, template=BIG, html_template=BIG, item_template="{new[b]}"
)
QUEUE_BYTES = 12_000_000  # Room for one such window's draft, not two.


class WindowBoundScenarios:
    """A window keeps one draft however many changes join it, and counts in queue_bytes."""

    @classmethod
    def extra_settings(cls):
        return {**super().extra_settings(), "kinto_emailer.queue_bytes": str(QUEUE_BYTES)}

    def setUp(self):
        super().setUp()
        self.addCleanup(self.app.app.registry.emailer.delivery.outbox.flush)

    def test_250_changes_into_a_window_keep_one_draft_within_queue_bytes(self):
        self.save_hooks(BIG_WINDOW)
        for n in range(250):
            self.create_record(data={"b": f"{n:04}" + "x" * 1996})
            if n in (0, 249):
                held = self.held_bytes()
                assert held <= QUEUE_BYTES, held
                if n == 0:
                    first = held
        # What the 249 later changes added: their lines, never another draft.
        assert held - first < 1_000_000, (first, held)

        # A second hook's window would pass queue_bytes: it doesn't open, and says so.
        other = {**BIG_WINDOW, "subject": "other {count}"}
        self.create_collection(collection_id="d", data=self.hooked(other))
        with self.assertLogs("kinto_emailer.outcomes", "ERROR") as logs:
            self.create_record(collection_id="d", data={"b": "y" * 2000})
        (dropped,) = logs.output
        assert "hook=/buckets/b/collections/d#0" in dropped
        assert "changes=1" in dropped
        assert 'reason="queue full (kinto_emailer.queue_bytes = 12000000): time window' in dropped
        assert self.held_bytes() <= QUEUE_BYTES

        self.close_windows()
        (digest,) = self.inbox.expect(1, timeout=30)
        assert digest["Subject"] == "250 changes"

    def held_bytes(self):
        raise NotImplementedError


class TestMemoryOutboxWindowBound(WindowBoundScenarios, HookWebTest):
    def held_bytes(self):
        return sum(self.app.app.registry.emailer.delivery.outbox._bytes.values())

    def close_windows(self):
        outbox = self.app.app.registry.emailer.delivery.outbox
        outbox.hurry()
        outbox.wake()


class TestPostgreSQLOutboxWindowBound(PostgreSQLOutboxMixin, WindowBoundScenarios, HookWebTest):
    def sql(self, query):
        connection = psycopg2.connect(self.database_url)
        try:
            with connection, connection.cursor() as cursor:
                cursor.execute(query)
                return cursor.fetchall() if cursor.description else []
        finally:
            connection.close()

    def held_bytes(self):
        ((size, windows),) = self.sql(
            "SELECT coalesce(sum(size), 0), count(*) FILTER (WHERE status = 'collecting') "
            "FROM kinto_emailer_outbox WHERE status IN ('queued', 'sending', 'retrying', "
            "'collecting', 'closing')"
        )
        assert windows <= 1
        return size

    def close_windows(self):
        self.sql(
            "UPDATE kinto_emailer_outbox SET window_closes = now() WHERE status = 'collecting'"
        )
        self.app.app.registry.emailer.delivery.outbox.wake()


per_outbox(WindowScenarios, HookWebTest, globals())


class MaildirWindowsTest(MaildirQueueMixin, HookWebTest):
    def test_the_maildir_outbox_refuses_digest_windows(self):
        assert self.refused(window_hook()) == (
            'data.kinto-emailer in body: hooks.0: "digest_window" is not available with the '
            "Maildir outbox (mail.queue_path): remove it for one email per request, "
            "or use kinto_emailer.outbox"
        )
