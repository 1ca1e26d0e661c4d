"""The PostgreSQL outbox's worker side in bursts: a claim, a burst's outcomes and its leases
each one statement; a worker killed with outcomes unwritten leaves its burst to another
after the lease; the purge in batches; the upgrade from schema version 4 keeps the rows."""

import json
import time

import psycopg2
import psycopg2.errors
import psycopg2.extensions
import pytest

from kinto_emailer.compose import drafts
from kinto_emailer.config import read_settings
from kinto_emailer.delivery.outcomes import Report
from kinto_emailer.delivery.rounds import Sender
from kinto_emailer.outbox.postgresql import PostgreSQLOutbox, delivering, outcomes, table
from kinto_emailer.outbox.testing import email, outbox_settings, render
from kinto_emailer.smtp.connection import SMTPTransport
from tests.backlog import fill
from tests.support import SMTPServer, TemporaryDatabase, migrate, postgresql_settings


pytestmark = [pytest.mark.postgresql]


def settings_of(url):
    return {
        **postgresql_settings(url),
        "includes": "kinto_emailer",
        "kinto_emailer.outbox": "postgresql",
    }


@pytest.fixture(scope="module")
def database():
    with TemporaryDatabase() as database:
        migrate(settings_of(database.url))
        yield database


class Statements:
    """The statements an outbox sends on its worker connection, one per round trip; those
    that prepare one (once per connection) apart."""

    def __init__(self, outbox):
        self.sent, self.prepared = [], []
        sent, prepared = self.sent, self.prepared

        class Cursor(psycopg2.extensions.cursor):
            def execute(self, sql, params=None):
                (prepared if str(sql).startswith("PREPARE ") else sent).append(str(sql))
                return super().execute(sql, params)

        class Connection(psycopg2.extensions.connection):
            def cursor(self, *args, **kwargs):
                return super().cursor(*args, cursor_factory=Cursor, **kwargs)

        outbox._connection = psycopg2.connect(outbox.url, connection_factory=Connection)

    def __len__(self):
        return len(self.sent)


@pytest.fixture
def make_outbox(database):
    made = []

    def make(**settings):
        outbox = PostgreSQLOutbox(outbox_settings(**settings), database.url, drafts)
        made.append(outbox)
        return outbox

    yield make
    made[0].flush()
    for outbox in made:
        outbox.close()


def rows(outbox, columns="status"):
    with outbox._worker_connection() as cursor:
        cursor.execute(f"SELECT subject, {columns} FROM kinto_emailer_outbox ORDER BY id")
        return cursor.fetchall()


def test_a_burst_is_claimed_and_its_outcomes_written_in_one_statement_each(make_outbox):
    outbox = make_outbox()
    outbox.put([email(subject=f"e{n:02}") for n in range(50)])
    statements = Statements(outbox)
    claimed = outbox.claim(50)
    assert len(claimed) == 50 and len(statements) == 1
    for claimed_email in claimed:
        assert outbox.renew(claimed_email)  # Half its lease hasn't passed: nothing to send.
        claimed_email.attempts += 1
        outbox.sent(claimed_email)
    assert len(statements) == 1  # Nothing written yet: the outcomes wait for the next claim.
    assert outbox.claim(50) == []
    assert len(statements) == 2  # The 50 outcomes and the next claim: one round trip.
    assert {status for _, status in rows(outbox)} == {"sent"}


def test_a_connection_prepares_each_statement_once_then_only_executes_it(make_outbox):
    outbox = make_outbox()
    outbox.put([email(subject=f"m{n}") for n in range(4)])
    statements = Statements(outbox)
    for _ in range(2):
        for claimed in outbox.claim(2):
            outbox.sent(claimed)
        outbox.next_wake()
    assert sorted(sql.split()[1] for sql in statements.prepared) == [
        "kinto_emailer_claim", "kinto_emailer_next_wake", "kinto_emailer_outcomes",
    ]  # fmt: skip
    assert all(sql.startswith("EXECUTE ") for sql in statements.sent), statements.sent
    assert {subject for subject, status in rows(outbox) if status == "sent"} == {
        "m0", "m1", "m2", "m3",
    }  # fmt: skip
    # A new connection (the database restarted, say) prepares them again.
    with pytest.raises(psycopg2.OperationalError):
        with outbox._worker_connection() as cursor:
            cursor.execute("SELECT pg_terminate_backend(pg_backend_pid())")
    outbox.put([email(subject="m4")])
    assert [e.subject for e in outbox.claim(10)] == ["m4"]


def test_a_table_changed_under_a_prepared_claim_costs_one_failed_claim():
    with TemporaryDatabase() as database:
        migrate(settings_of(database.url))
        outbox = PostgreSQLOutbox(outbox_settings(), database.url, drafts)
        try:
            outbox.put([email(subject="m0")])
            assert [e.subject for e in outbox.claim(10)] == ["m0"]  # Prepared, and run.
            with outbox._worker_connection() as cursor:  # As a migration might.
                cursor.execute("ALTER TABLE kinto_emailer_outbox ALTER COLUMN hook TYPE varchar")
            outbox.put([email(subject="m1")])
            with pytest.raises(psycopg2.errors.FeatureNotSupported):
                outbox.claim(10)  # Its plan's result type changed.
            assert [e.subject for e in outbox.claim(10)] == ["m1"]  # Prepared anew.
        finally:
            outbox.close()


def test_a_reply_holding_a_nul_byte_is_recorded_without_it(make_outbox):
    outbox = make_outbox()
    outbox.put([email(subject="m0"), email(subject="m1")])
    first, second = outbox.claim(10)
    first.attempts = second.attempts = 1
    first.refused = [{"address": "a@example.com", "code": 550, "message": "no\x00such"}]
    outbox.sent(first)
    outbox.failed(second, "554 refused\x00 here")
    assert outbox.claim(10) == []  # The outcomes written with it.
    assert rows(outbox, "status, error") == [
        ("m0", "sent", "refused for some recipients: 550 nosuch (1 recipient(s))"),
        ("m1", "failed", "554 refused here"),
    ]


def test_outcomes_that_can_t_be_written_are_dropped_not_kept_for_every_statement(
    make_outbox, caplog
):
    outbox = make_outbox()
    outbox.put([email(subject="m0"), email(subject="m1")])
    poisoned = outbox.claim(1)[0]
    poisoned.attempts = 1
    outbox.retry(poisoned, 60, "try later")
    outbox._outcomes.take()  # As if PostgreSQL couldn't take what it carries:
    outbox._outcomes.add(outcomes.Outcome(int(poisoned.id), "retrying", 1, "x", "{", "[]", 60))
    with pytest.raises(psycopg2.DataError):
        outbox.claim(10)
    assert "Could not record the outcomes of 1 email(s)" in caplog.text
    (other,) = outbox.claim(10)  # Not failed again: the worker goes on.
    assert other.subject == "m1"
    assert dict(rows(outbox)) == {"m0": "sending", "m1": "sending"}  # m0 back after its lease.


def test_without_prepared_statements_each_is_sent_whole(make_outbox):
    outbox = make_outbox(outbox_prepared=False)
    outbox.put([email(subject="m0")])
    statements = Statements(outbox)
    for claimed in outbox.claim(2):
        outbox.sent(claimed)
    outbox.next_wake()
    assert statements.prepared == []
    assert not any(sql.startswith("EXECUTE ") for sql in statements.sent), statements.sent
    assert rows(outbox) == [("m0", "sent")]


def test_every_kind_of_outcome_of_a_burst_is_recorded(make_outbox):
    outbox = make_outbox()
    outbox.put([email(subject=s, to=["a@example.com", "b@example.com"]) for s in "abcd"])
    sent, later, soon, failed = sorted(outbox.claim(10), key=lambda e: e.subject or "")
    for claimed_email in (sent, later, soon, failed):
        outbox.prepare(claimed_email, render)
        claimed_email.attempts = 1
    sent.refused.append({"address": "b@example.com", "code": 550, "message": "no such user"})
    outbox.sent(sent)
    later.outgoing.recipients = ["b@example.com"]
    outbox.retry(later, 3600, "451 try again")
    outbox.retry(soon, 0, "421 busy")
    outbox.failed(failed, "550 refused")
    statements = Statements(outbox)
    assert outbox.pending() == 2  # Written first, in the same round trip: two retries wait.
    assert len(statements) == 1
    recorded = rows(outbox, "status, attempts, error, remaining, refused, sent IS NOT NULL, "
                            "next_attempt > now() + interval '1 minute', worker")  # fmt: skip
    assert recorded == [
        ("a", "sent", 1, "refused for some recipients: 550 no such user (1 recipient(s))", None,
         sent.refused, True, False, None),
        ("b", "retrying", 1, "451 try again", ["b@example.com"], [], False, True, None),
        ("c", "retrying", 1, "421 busy", ["a@example.com", "b@example.com"], [], False, False,
         None),
        ("d", "failed", 1, "550 refused", ["a@example.com", "b@example.com"], [], False, False,
         None),
    ]  # fmt: skip
    assert [e.subject for e in outbox.claim(10)] == ["c"]  # The retry due now.


def test_a_burst_sent_by_the_sender_is_written_once_it_ends(make_outbox, monkeypatch):
    monkeypatch.setattr(outcomes, "OUTCOMES_WAIT", 3600)  # Not before the burst's end here.
    outbox = make_outbox()
    server = SMTPServer().start()
    try:
        settings = read_settings({"mail.host": "127.0.0.1", "mail.port": str(server.port)})
        sender = Sender(settings, SMTPTransport(settings), outbox, Report())
        outbox.put([email(subject=f"s{n}") for n in range(20)])
        claimed = outbox.claim(20)
        for claimed_email in claimed:
            outbox.prepare(claimed_email, render)
        statements = Statements(outbox)
        sender.send_burst(claimed)
        sender.close()
        assert len(server.inbox.wait_for(20)) == 20
        assert len(statements) == 0  # Twenty emails, no statement.
        assert outbox.pending() == 0
        assert len(statements) == 1
    finally:
        server.stop()


def test_leases_of_a_whole_burst_are_renewed_in_one_statement(make_outbox):
    outbox = make_outbox(outbox_lease=2)
    outbox.put([email(subject=f"l{n}") for n in range(10)])
    claimed = outbox.claim(10)
    leases = dict(rows(outbox, "lease_until"))
    time.sleep(1.1)  # Past half of the lease: the next email's renewal goes to the database.
    statements = Statements(outbox)
    for claimed_email in claimed:
        assert outbox.renew(claimed_email)
    assert len(statements) == 1
    renewed = dict(rows(outbox, "lease_until"))
    assert all(renewed[subject] > leases[subject] for subject in leases)


def test_a_killed_worker_s_burst_is_taken_over_once_its_leases_end(make_outbox):
    killed = make_outbox(outbox_lease=0.5)
    killed.put([email(subject=f"k{n}") for n in range(5)])
    burst = killed.claim(5)
    for claimed_email in burst[:2]:
        claimed_email.attempts = 1
        killed.sent(claimed_email)  # Accepted by the mail server, not written yet...
    killed._connection.close()  # ...when the process dies: nothing more reaches the table.
    killed._outcomes.forget()
    other = make_outbox(outbox_lease=0.5)
    assert other.claim(5) == []  # Still leased.
    taken, deadline = [], time.monotonic() + 10
    while len(taken) < 5 and time.monotonic() < deadline:
        taken += other.claim(5)
        time.sleep(0.05)
    # All five again: the two whose outcomes were lost are sent twice (at least once).
    assert sorted(e.subject for e in taken) == [f"k{n}" for n in range(5)]
    for claimed_email in taken:
        other.sent(claimed_email)
    assert other.pending() == 0


def test_the_purge_deletes_what_is_due_in_batches_and_leaves_the_rest(
    make_outbox, database, monkeypatch
):
    outbox = make_outbox(outbox_retention_days=7)
    fill(database.url, pending=10, ended=2500, ended_days_ago=30)
    fill(database.url, pending=0, ended=30, ended_days_ago=1)  # Within the retention.
    monkeypatch.setattr(delivering, "PURGE_BATCH", 1000)
    statements = Statements(outbox)
    assert outbox.purge() == 2500
    assert sum(sql.lstrip().startswith("DELETE") for sql in statements.sent) == 3
    left = rows(outbox, "status")
    assert len(left) == 40
    assert sorted({status for _, status in left}) == ["cancelled", "failed", "queued", "sent"]
    assert outbox.purge() == 0


def test_an_outbox_of_version_4_with_rows_is_upgraded_and_claims_them(monkeypatch):
    with TemporaryDatabase() as database:
        monkeypatch.setattr(table.Migration, "schema_version", 4)
        migrate(settings_of(database.url))
        fill(database.url, pending=30, ended=30, buckets=3)
        monkeypatch.undo()
        migrate(settings_of(database.url))
        table.check_schema(database.url)  # The current version: a server starts.
        connection = psycopg2.connect(database.url)
        try:
            with connection, connection.cursor() as cursor:
                cursor.execute("SELECT count(*) FROM kinto_emailer_outbox")
                assert cursor.fetchone()[0] == 60
                cursor.execute(
                    "SELECT indexname FROM pg_indexes WHERE tablename = 'kinto_emailer_outbox'"
                )
                indexes = {name for (name,) in cursor.fetchall()}
        finally:
            connection.close()
        assert {
            "idx_kinto_emailer_outbox_queued",
            "idx_kinto_emailer_outbox_retrying",
            "idx_kinto_emailer_outbox_sending",
            "idx_kinto_emailer_outbox_bucket_listed",
            "idx_kinto_emailer_outbox_bucket_hour",
        } <= indexes
        assert (
            not {
                "idx_kinto_emailer_outbox_pending",
                "idx_kinto_emailer_outbox_bucket_created",
                "idx_kinto_emailer_outbox_bucket_queued",
            }
            & indexes
        )
        outbox = PostgreSQLOutbox(outbox_settings(), database.url, drafts)
        try:
            # The rows written before the upgrade, claimed in turn between their buckets.
            first = outbox.claim(3)
            assert sorted(e.bucket_id for e in first) == ["bucket-0", "bucket-1", "bucket-2"]
            assert len(outbox.claim(100)) == 27
            assert json.loads(json.dumps(first[0].message.recipients)) == ["alice@example.com"]
        finally:
            outbox.close()
