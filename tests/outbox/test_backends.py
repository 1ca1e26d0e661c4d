"""The outbox backends pass one suite (kinto_emailer/outbox/testing/)."""

import shutil
import tempfile
import time
import tracemalloc
import unittest

import pytest

from kinto_emailer.compose import drafts
from kinto_emailer.outbox.maildir import MaildirOutbox
from kinto_emailer.outbox.memory import MemoryOutbox
from kinto_emailer.outbox.postgresql import PostgreSQLOutbox
from kinto_emailer.outbox.testing import OutboxTests, email, outbox_settings, window_part
from kinto_emailer.smtp import mime
from tests.support import TemporaryDatabase, migrate, postgresql_settings


class TestMaildirOutbox(OutboxTests, unittest.TestCase):
    shared = True
    leased = False  # A claim ends with its process (see tests/outbox/test_maildir_queue.py).

    def setUp(self):
        self.directory = tempfile.mkdtemp()
        self.outboxes = []
        self.addCleanup(shutil.rmtree, self.directory, ignore_errors=True)
        super().setUp()

    def tearDown(self):
        for outbox in self.outboxes:
            outbox.close()
        super().tearDown()

    def make_outbox(self, **settings):
        settings = outbox_settings(queue_path=self.directory, **settings)
        outbox = MaildirOutbox(settings, lambda message: mime.render(message, "kinto@localhost"))
        self.outboxes.append(outbox)
        return outbox


class TestMemoryOutbox(OutboxTests, unittest.TestCase):
    def make_outbox(self, **settings):
        return MemoryOutbox(outbox_settings(**settings), drafts)

    def test_a_window_holds_one_draft_in_memory_however_many_parts_join(self):
        # Issue 24, attack 1: each part kept its draft (100 KB here) until the window closed.
        preamble = "x" * 100_000
        self.outbox.gather([window_part(["first"], seconds=60, preamble=preamble)])
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            for n in range(200):
                self.outbox.gather([window_part([str(n)], seconds=60, preamble=preamble)])
            grown = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        assert grown < 200_000, grown  # Their lines; 200 drafts would be 20 MB.


@pytest.fixture(scope="class")
def outbox_database(request):
    with TemporaryDatabase() as database:
        migrate(
            {
                **postgresql_settings(database.url),
                "includes": "kinto_emailer",
                "kinto_emailer.outbox": "postgresql",
            }
        )
        request.cls.database_url = database.url
        yield database


@pytest.mark.postgresql
@pytest.mark.usefixtures("outbox_database")
class TestPostgreSQLOutbox(OutboxTests, unittest.TestCase):
    shared = True

    def setUp(self):
        self.outboxes = []
        super().setUp()
        self.outbox.flush()  # Each test starts from an empty table.

    def tearDown(self):
        for outbox in self.outboxes:
            outbox.close()
        super().tearDown()

    def make_outbox(self, **settings):
        outbox = PostgreSQLOutbox(outbox_settings(**settings), self.database_url, drafts)
        self.outboxes.append(outbox)
        return outbox

    def test_purge_deletes_ended_rows_past_the_retention(self):
        self.outbox = self.make_outbox(outbox_retention_days=1 / 86400)  # One second.
        self.outbox.put([email(subject="sent"), email(subject="waiting")])
        (sent,) = [e for e in self.outbox.claim(10) if e.message.subject == "sent"]
        self.outbox.sent(sent)
        assert self.outbox.purge() == 0  # Ended a moment ago: kept for the status views.
        time.sleep(1.1)
        assert self.outbox.purge() == 1
        with self.outbox._worker_connection() as cursor:
            cursor.execute("SELECT subject FROM kinto_emailer_outbox")
            assert cursor.fetchall() == [("waiting",)]

    def test_a_lease_is_renewed_in_the_database_only_once_half_of_it_passed(self):
        self.outbox = self.make_outbox(outbox_lease=2)
        self.outbox.put([email(subject="a"), email(subject="b")])
        first, second = self.outbox.claim(10)

        def lease_until():
            with self.outbox._worker_connection() as cursor:
                cursor.execute("SELECT lease_until FROM kinto_emailer_outbox WHERE id = %s",
                               (int(first.id),))  # fmt: skip
                return cursor.fetchone()[0]

        claimed = lease_until()
        # A statement per email would hold the worker and the database for nothing: no other
        # worker can take the email before its lease ends.
        assert self.outbox.renew(first) is True
        assert lease_until() == claimed
        time.sleep(1.1)
        assert self.outbox.renew(first) is True
        assert lease_until() > claimed
        self.outbox.sent(first)
        self.outbox.sent(second)
        assert self.outbox._held == {}

    def test_a_commit_in_another_process_wakes_a_waiting_worker(self):
        writer = self.make_outbox()
        assert self.outbox.wait(0.1) is False  # Listening now; nothing committed yet.
        writer.put([email()])
        assert self.outbox.wait(30) is True  # Woken by the commit's NOTIFY, not the time-out.
        assert self.subjects(self.outbox.claim(10)) == ["hello"]
