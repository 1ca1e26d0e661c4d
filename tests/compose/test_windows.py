"""Issue 14, point 2: time-window digests through the real app and the real SMTP server, on
the memory outbox and on the PostgreSQL outbox."""

import pytest

from tests.support import (
    HookWebTest,
    MaildirQueueMixin,
    PostgreSQLOutboxMixin,
    outbox_database_for,
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


class TestMemoryOutboxWindows(WindowScenarios, HookWebTest):
    pass


@pytest.mark.postgresql
@pytest.mark.usefixtures("windows_database")
class TestPostgreSQLOutboxWindows(PostgreSQLOutboxMixin, WindowScenarios, HookWebTest):
    pass


windows_database = outbox_database_for(TestPostgreSQLOutboxWindows)


class MaildirWindowsTest(MaildirQueueMixin, HookWebTest):
    def test_the_maildir_outbox_refuses_digest_windows(self):
        assert self.refused(window_hook()) == (
            'data.kinto-emailer in body: hooks.0: "digest_window" is not available with the '
            "Maildir outbox (mail.queue_path): remove it for one email per request, "
            "or use kinto_emailer.outbox"
        )
