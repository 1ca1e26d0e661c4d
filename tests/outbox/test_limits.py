"""outbox/limits.py, request_bytes.py: one bucket can't exceed its volume nor starve others.

Through the real app, on the memory outbox and on the PostgreSQL outbox: the hourly limit of
a bucket, the bytes of one request, and another bucket's email served during a backlog.
"""

import functools
import uuid
from concurrent.futures import ThreadPoolExecutor

import psycopg2

from kinto_emailer.delivery.worker import BURST
from tests.support import (
    EmailerWebTest,
    Inbox,
    PostgreSQLOutboxMixin,
    SMTPServer,
    per_outbox,
    record_hook,
)


hook = functools.partial(record_hook, template="{new[text]}")

HOURLY = 3
REQUEST_BYTES = 60000
BACKLOG = 2000
WRITERS = 8
TEXT = "x" * 10000  # Emails of about 20 kB (see ``message_size``): two fit in a request.


def dropped_lines(logs):
    return [line for line in logs.output if "Email dropped" in line]


class Tenants:
    """Mixed into one test class per outbox; each test writes in buckets of its own."""

    @classmethod
    def extra_settings(cls):
        return {
            "kinto_emailer.max_emails_per_hour": str(HOURLY),
            "kinto_emailer.max_request_bytes": str(REQUEST_BYTES),
        }

    def hooked_bucket(self, *hooks, app=None, bucket_id=None):
        """A bucket (a new one by default) whose collection ``c`` has ``hooks``; its id."""
        app = app or self.app
        bucket_id = bucket_id or f"t-{uuid.uuid4().hex[:10]}"
        app.put_json(f"/buckets/{bucket_id}", {"data": {}}, headers=self.headers)
        app.put_json(
            f"/buckets/{bucket_id}/collections/c",
            {"data": self.hooked(*hooks)},
            headers=self.headers,
        )
        return bucket_id

    def write(self, bucket_id, app=None, text="x"):
        app = app or self.app
        path = f"/buckets/{bucket_id}/collections/c/records"
        record = app.post_json(path, {"data": {"text": text}}, headers=self.headers, status=201)
        # The write is stored, whatever happened to its emails.
        app.get(f"{path}/{record.json['data']['id']}", headers=self.headers, status=200)

    def subjects(self, count):
        """The subjects of exactly ``count`` emails, once everything was delivered."""
        return sorted(m["Subject"] for m in self.emails(count))

    def test_emails_past_the_hourly_limit_are_dropped_and_the_writes_succeed(self):
        busy = self.hooked_bucket(hook("busy"))
        quiet = self.hooked_bucket(hook("quiet"))
        with self.assertLogs("kinto_emailer.outcomes", "ERROR") as logs:
            for _ in range(HOURLY + 2):
                self.write(busy)
        self.write(quiet)  # The limit is per bucket.
        assert self.subjects(HOURLY + 1) == ["busy"] * HOURLY + ["quiet"]
        dropped = dropped_lines(logs)
        assert len(dropped) == 2, logs.output
        reason = (
            f"hourly limit of the bucket reached (kinto_emailer.max_emails_per_hour = {HOURLY})"
        )
        assert all(f"hook=/buckets/{busy}/collections/c#0" in line for line in dropped)
        assert all(f'reason="{reason}"' in line for line in dropped)

    def test_sending_does_not_give_the_hour_back(self):
        busy = self.hooked_bucket(hook("busy"))
        for _ in range(HOURLY):
            self.write(busy)
        assert self.subjects(HOURLY) == ["busy"] * HOURLY
        with self.assertLogs("kinto_emailer.outcomes", "ERROR") as logs:
            self.write(busy)
        assert len(dropped_lines(logs)) == 1
        assert self.subjects(HOURLY) == ["busy"] * HOURLY

    def test_a_request_past_its_bytes_is_written_and_its_extra_emails_dropped(self):
        bucket_id = self.hooked_bucket(*[hook(f"hook {i}") for i in range(5)])
        with self.assertLogs("kinto_emailer.outcomes", "ERROR") as logs:
            self.write(bucket_id, text=TEXT)
        assert self.subjects(2) == ["hook 0", "hook 1"]
        reason = f"request too large (kinto_emailer.max_request_bytes = {REQUEST_BYTES})"
        where = f"/buckets/{bucket_id}/collections/c"
        refused, *not_built = dropped_lines(logs)
        assert f"hook={where}#2 recipients=1 " in refused
        assert refused.endswith(f'reason="{reason}"')
        # The request's later emails are not even built: one line per hook says so.
        assert [line.split("Email dropped: ")[1] for line in not_built] == [
            f'id=- hook={where}#{i} recipients=0 emails=1 reason="{reason}: not built"'
            for i in (3, 4)
        ]

    def test_a_batch_shares_the_bytes_of_its_request(self):
        bucket_id = self.hooked_bucket(hook("record"))
        path = f"/buckets/{bucket_id}/collections/c/records"
        requests = [{"path": path, "body": {"data": {"text": TEXT}}} for _ in range(4)]
        body = {"defaults": {"method": "POST"}, "requests": requests}
        with self.assertLogs("kinto_emailer.outcomes", "ERROR") as logs:
            response = self.app.post_json("/batch", body, headers=self.headers)
        assert [r["status"] for r in response.json["responses"]] == [201] * 4
        assert self.subjects(2) == ["record", "record"]
        # The third is refused once built; the fourth is not built.
        assert [("not built" in line) for line in dropped_lines(logs)] == [False, True]


class TestMemoryOutbox(Tenants, EmailerWebTest):
    def test_the_hourly_limit_counts_each_process_on_its_own(self):
        other = self.make_app()
        try:
            busy = self.hooked_bucket(hook("busy"))
            self.hooked_bucket(hook("busy"), app=other, bucket_id=busy)  # Its own storage.
            for app in (self.app, other):
                for _ in range(HOURLY):
                    self.write(busy, app=app)
            assert other.app.registry.emailer.delivery.drain(timeout=10)
            assert self.subjects(2 * HOURLY) == ["busy"] * 2 * HOURLY
        finally:
            other.app.registry.emailer.delivery.stop(timeout=1)


class TestPostgreSQLOutbox(PostgreSQLOutboxMixin, Tenants, EmailerWebTest):
    def test_the_hourly_limit_counts_every_process_on_the_database(self):
        # Another process writing to the same database: a web process of its own.
        other = self.make_app({"kinto_emailer.outbox_worker": "false"})
        try:
            busy = self.hooked_bucket(hook("busy"))
            with self.assertLogs("kinto_emailer.outcomes", "ERROR") as logs:
                for app in (self.app, other, self.app, other):
                    self.write(busy, app=app)
            assert self.subjects(HOURLY) == ["busy"] * HOURLY
            (line,) = dropped_lines(logs)
            assert "kinto_emailer.max_emails_per_hour = 3" in line
            with psycopg2.connect(self.database_url) as connection:
                with connection.cursor() as cursor:
                    cursor.execute(
                        "SELECT status, count(*) FROM kinto_emailer_outbox "
                        "WHERE bucket_id = %s GROUP BY status ORDER BY status",
                        (busy,),
                    )
                    assert cursor.fetchall() == [("dropped", 1), ("sent", HOURLY)]
        finally:
            other.app.registry.emailer.delivery.stop(timeout=1)

    def test_concurrent_writes_do_not_exceed_the_hourly_limit(self):
        busy = f"t-{uuid.uuid4().hex[:10]}"
        self.app.put_json(
            f"/buckets/{busy}", {"data": self.hooked(hook("busy"))}, headers=self.headers
        )
        for n in range(WRITERS):  # One collection each: concurrent writes, no conflict.
            self.app.put_json(
                f"/buckets/{busy}/collections/c{n}", {"data": {}}, headers=self.headers
            )
        apps = [self.app, self.make_app({"kinto_emailer.outbox_worker": "false"})]

        def write(n):
            path = f"/buckets/{busy}/collections/c{n}/records"
            apps[n % 2].post_json(path, {"data": {}}, headers=self.headers, status=201)

        try:
            with ThreadPoolExecutor(WRITERS) as pool:
                list(pool.map(write, range(WRITERS)))
            assert self.subjects(HOURLY) == ["busy"] * HOURLY
        finally:
            apps[1].app.registry.emailer.delivery.stop(timeout=1)


class Fairness:
    """A backlog of 2,000 emails for one bucket; then one email for another bucket."""

    @classmethod
    def setUpClass(cls):
        # A mail server that takes a little time per message, as real ones do.
        cls.slow = SMTPServer(inbox=Inbox(delay=0.002)).start()
        super().setUpClass()
        cls.smtp = cls.slow

    @classmethod
    def tearDownClass(cls):
        # What is left of the backlog is not waited for.
        cls.app.app.registry.emailer.delivery.stop(timeout=0)
        super().tearDownClass()
        cls.slow.stop()

    @classmethod
    def extra_settings(cls):
        return {
            "mail.port": str(cls.slow.port),
            "kinto_emailer.max_expanded_recipients": str(BACKLOG),
        }

    def test_another_bucket_is_served_while_a_backlog_drains(self):
        members = [f"user{i}@example.com" for i in range(BACKLOG)]
        self.create_bucket("busy")
        self.app.put_json(
            "/buckets/busy/groups/everyone", {"data": {"members": members}}, headers=self.headers
        )
        private = hook("backlog", private=True, recipients=["/buckets/busy/groups/everyone"])
        self.create_collection("busy", "c", data=self.hooked(private))
        self.create_bucket("quiet")
        self.create_collection("quiet", "c", data=self.hooked(hook("quiet")))

        self.create_record("busy", "c", data={"text": "x"})  # 2,000 emails.
        self.inbox.wait_for(1, timeout=30)  # The backlog is being delivered.
        self.create_record("quiet", "c", data={"text": "x"})

        with self.inbox.condition:
            arrived = self.inbox.condition.wait_for(
                lambda: any(m["Subject"] == "quiet" for m in self.inbox.messages), timeout=60
            )
            subjects = [m["Subject"] for m in self.inbox.messages]
        assert arrived, f"quiet email not received after {len(subjects)} backlog emails"
        before = subjects.index("quiet")
        # At most the burst under way and the next one: never the whole backlog.
        assert before <= 2 * BURST, before
        assert set(subjects[:before]) == {"backlog"}


per_outbox(Fairness, EmailerWebTest, globals())
