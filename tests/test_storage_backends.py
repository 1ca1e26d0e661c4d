"""Where storage matters: hook and group look-ups, and rollback, on memory and PostgreSQL.

Every scenario runs twice, once per backend. Only PostgreSQL is transactional: a failed
write leaves no record there, while the memory backend keeps it (but sends nothing either).
"""

import functools

import psycopg2
import pytest
import transaction
from kinto.core.events import ResourceChanged

import kinto_emailer
from tests.support import (
    EmailerWebTest,
    PostgreSQLOutboxMixin,
    TemporaryDatabase,
    postgresql_settings,
    record_hook,
)


hook = functools.partial(
    record_hook, template="{action} {resource_name} {id} in {bucket_id}/{collection_id}"
)

SENTINEL = {"bucket": "sentinel", "collection": "flush"}


@pytest.fixture(scope="session")
def postgresql_database():
    with TemporaryDatabase() as database:
        TestPostgreSQLBackend.database_url = database.url
        yield database


class AfterCommitEvent:
    """An event that a plugin notifies once the write has committed, as review events can be."""

    def __init__(self, request, payload, impacted_objects):
        self.request, self.payload, self.impacted_objects = request, payload, impacted_objects


def notify_after_commit(event):
    # Only in the collection of the test about them: other hooks have no ``event`` filter.
    if event.payload.get("collection_id") == "after-commit":
        later = AfterCommitEvent(event.request, {**event.payload}, list(event.impacted_objects))
        transaction.get().addAfterCommitHook(
            lambda success: success and event.request.registry.notify(later)
        )


def include_after_commit_events(config):
    config.add_subscriber(notify_after_commit, ResourceChanged)
    config.add_subscriber(kinto_emailer.build_notification, AfterCommitEvent)


class StorageScenarios:
    """Mixed into one test class per backend."""

    transactional = False

    @classmethod
    def extra_settings(cls):
        plugins = ["tests.failing_plugin", f"{__name__}.include_after_commit_events"]
        return {"includes": " ".join(["kinto_emailer", *plugins])}

    def setUp(self):
        super().setUp()
        self.create_bucket(SENTINEL["bucket"])
        self.create_collection(
            SENTINEL["bucket"], SENTINEL["collection"], self.hooked(hook("flushed"))
        )

    def flushed_messages(self):
        """Everything that arrived before an email sent after it: proves nothing is pending."""
        self.drain()
        before = len(self.inbox.messages)
        self.create_record(SENTINEL["bucket"], SENTINEL["collection"])
        messages = self.inbox.wait_for(before + 1)
        subjects = [m["Subject"] for m in messages]
        assert subjects.count("flushed") == 1, subjects
        return [m for m in messages if m["Subject"] != "flushed"]

    def subjects(self):
        return sorted(m["Subject"] for m in self.flushed_messages())

    def batch(self, *requests, status=200):
        body = {"defaults": {"method": "POST"}, "requests": list(requests)}
        return self.app.post_json("/batch", body, headers=self.headers, status=status)

    # Hook look-up: the collection's hooks, else its bucket's.

    def test_collection_hooks_replace_the_bucket_hooks(self):
        self.create_bucket(data=self.hooked(hook("from bucket")))
        self.create_collection(data=self.hooked(hook("from collection")))
        self.create_record()
        assert self.subjects() == ["from collection"]

    def test_bucket_hooks_apply_to_a_collection_without_hooks(self):
        self.create_bucket(data=self.hooked(hook("from bucket")))
        self.create_collection()
        record = self.create_record().json["data"]
        (message,) = self.flushed_messages()
        assert message["Subject"] == "from bucket"
        assert message.get_content().strip() == f"create record {record['id']} in b/c"

    def test_an_empty_hook_list_on_the_collection_silences_the_bucket(self):
        self.create_bucket(data=self.hooked(hook("from bucket")))
        self.create_collection(data=self.hooked())
        self.create_record()
        assert self.subjects() == []

    def test_hooks_saved_earlier_in_the_same_batch_are_read(self):
        self.create_bucket()
        self.create_collection()
        self.batch(
            {
                "method": "PATCH",
                "path": "/buckets/b/collections/c",
                "body": {"data": self.hooked(hook("same batch"))},
            },
            {"path": "/buckets/b/collections/c/records", "body": {"data": {}}},
        )
        assert self.subjects() == ["same batch"]

    def test_a_deleted_collection_is_mailed_with_its_own_hooks(self):
        self.create_bucket(
            data=self.hooked(hook("from bucket", action="delete", resource_name="collection"))
        )
        self.create_collection(
            data=self.hooked(
                hook("collection deleted", action="delete", resource_name="collection")
            )
        )
        self.app.delete("/buckets/b/collections/c", headers=self.headers)
        assert self.subjects() == ["collection deleted"]

    # Group look-ups.

    def create_group(self, group_id, members):
        self.app.put_json(
            f"/buckets/b/groups/{group_id}", {"data": {"members": members}}, headers=self.headers
        )

    def test_a_group_expands_to_its_members_with_email_addresses(self):
        self.create_bucket()
        self.create_group("reviewers", ["ldap:bob@example.com", "basicauth:abc", "carol@x.org"])
        self.create_collection(
            data=self.hooked(hook("group", recipients=["/buckets/b/groups/reviewers"]))
        )
        self.create_record()
        (message,) = self.flushed_messages()
        assert sorted(message.envelope_to) == ["bob@example.com", "carol@x.org"]

    def test_a_group_uri_with_a_placeholder_reads_the_matching_group(self):
        self.create_bucket()
        self.create_group("c-reviewers", ["ldap:bob@example.com"])
        self.create_group("d-reviewers", ["ldap:dave@example.com"])
        recipients = ["/buckets/b/groups/{collection_id}-reviewers"]
        self.create_collection(data=self.hooked(hook("group", recipients=recipients)))
        self.create_record()
        (message,) = self.flushed_messages()
        assert sorted(message.envelope_to) == ["bob@example.com"]

    def test_a_missing_group_sends_nothing(self):
        self.create_bucket()
        recipients = ["/buckets/b/groups/nobody"]
        self.create_collection(data=self.hooked(hook("group", recipients=recipients)))
        self.create_record()
        assert self.subjects() == []

    def test_a_group_created_earlier_in_the_same_batch_is_read(self):
        self.create_bucket()
        recipients = ["/buckets/b/groups/reviewers"]
        self.create_collection(data=self.hooked(hook("group", recipients=recipients)))
        self.batch(
            {
                "method": "PUT",
                "path": "/buckets/b/groups/reviewers",
                "body": {"data": {"members": ["ldap:bob@example.com"]}},
            },
            {"path": "/buckets/b/collections/c/records", "body": {"data": {}}},
        )
        (message,) = self.flushed_messages()
        assert sorted(message.envelope_to) == ["bob@example.com"]

    def test_an_event_notified_after_commit_reads_hooks_and_groups(self):
        self.create_bucket()
        self.create_group("reviewers", ["ldap:bob@example.com"])
        after_commit = hook(
            "after commit",
            event=f"{__name__}.AfterCommitEvent",
            recipients=["/buckets/b/groups/reviewers"],
        )
        self.create_collection(collection_id="after-commit", data=self.hooked(after_commit))
        record = self.create_record(collection_id="after-commit").json["data"]
        (message,) = self.flushed_messages()
        assert message.envelope_to == ["bob@example.com"]
        assert message.get_content().strip() == f"create record {record['id']} in b/after-commit"

    # Digests: composed at commit, before it, so storage is still readable.

    def test_a_digest_reads_its_group_when_the_request_commits(self):
        self.create_bucket()
        recipients = ["/buckets/b/groups/reviewers"]
        self.create_collection(
            data=self.hooked(
                hook("digest", digest=True, template="{count}", recipients=recipients)
            )
        )
        self.batch(
            {
                "method": "PUT",
                "path": "/buckets/b/groups/reviewers",
                "body": {"data": {"members": ["ldap:bob@example.com"]}},
            },
            {"path": "/buckets/b/collections/c/records", "body": {"data": {}}},
            {"path": "/buckets/b/collections/c/records", "body": {"data": {}}},
        )
        (message,) = self.flushed_messages()
        assert message.envelope_to == ["bob@example.com"]
        # A template without {items} gets the list after a blank line.
        count, blank, *items = message.get_content().strip().splitlines()
        assert (count, blank, len(items)) == ("2", "", 2)

    def test_a_digest_of_an_event_notified_after_commit_is_sent(self):
        self.create_bucket()
        self.create_group("reviewers", ["ldap:bob@example.com"])
        after_commit = hook(
            "after commit",
            event=f"{__name__}.AfterCommitEvent",
            digest=True,
            recipients=["/buckets/b/groups/reviewers"],
        )
        self.create_collection(collection_id="after-commit", data=self.hooked(after_commit))
        self.create_record(collection_id="after-commit")
        (message,) = self.flushed_messages()
        assert message.envelope_to == ["bob@example.com"]

    def test_a_batch_that_fails_sends_no_digest(self):
        self.create_bucket()
        self.create_collection(data=self.hooked(hook("digest", digest=True)))
        self.batch(
            {"path": "/buckets/b/collections/c/records", "body": {"data": {}}},
            {"path": "/buckets/b/collections/c/records", "body": {"data": {"explode": True}}},
            status=500,
        )
        assert self.subjects() == []

    # Rollback of a write that fails after its event.

    def assert_rolled_back(self, record_id):
        if self.transactional:  # The memory backend keeps what a failed request wrote.
            path = f"/buckets/b/collections/c/records/{record_id}"
            self.app.get(path, headers=self.headers, status=404)

    def test_a_failed_write_sends_nothing(self):
        self.create_bucket()
        self.create_collection(data=self.hooked(hook("record")))
        self.app.put_json(
            "/buckets/b/collections/c/records/boom",
            {"data": {"explode": True}},
            headers=self.headers,
            status=500,
        )
        assert self.subjects() == []
        self.assert_rolled_back("boom")

    def test_a_batch_that_fails_on_its_last_write_sends_nothing(self):
        self.create_bucket()
        self.create_collection(data=self.hooked(hook("record")))
        self.batch(
            {
                "method": "PUT",
                "path": "/buckets/b/collections/c/records/fine",
                "body": {"data": {}},
            },
            {
                "method": "PUT",
                "path": "/buckets/b/collections/c/records/boom",
                "body": {"data": {"explode": True}},
            },
            status=500,
        )
        assert self.subjects() == []
        self.assert_rolled_back("fine")
        self.assert_rolled_back("boom")


class TestMemoryBackend(StorageScenarios, EmailerWebTest):
    pass


@pytest.mark.postgresql
@pytest.mark.usefixtures("postgresql_database")
class TestPostgreSQLBackend(StorageScenarios, EmailerWebTest):
    transactional = True
    database_url = None  # Set by the session's database fixture, before the app starts.

    @classmethod
    def extra_settings(cls):
        return {**super().extra_settings(), **postgresql_settings(cls.database_url)}


class TestPostgreSQLOutbox(PostgreSQLOutboxMixin, StorageScenarios, EmailerWebTest):
    """The same on PostgreSQL, with emails written in the request's transaction."""

    transactional = True

    def rows(self):
        with psycopg2.connect(self.database_url) as connection, connection.cursor() as cursor:
            cursor.execute("SELECT subject, status FROM kinto_emailer_outbox ORDER BY id")
            return cursor.fetchall()

    def test_the_capability_names_the_outbox(self):
        capabilities = self.app.get("/", headers=self.headers).json["capabilities"]
        assert capabilities["emailer"]["outbox"] == "postgresql"

    def test_a_sent_email_is_a_row_marked_sent(self):
        self.create_bucket()
        self.create_collection(data=self.hooked(hook("as a row")))
        self.create_record()
        assert self.subjects() == ["as a row"]
        assert ("as a row", "sent") in self.rows()

    def test_a_failed_outbox_write_fails_the_request_and_rolls_its_change_back(self):
        self.create_bucket()
        self.create_collection(data=self.hooked(hook("never")))
        admin = psycopg2.connect(self.database_url)
        admin.autocommit = True
        self.addCleanup(admin.close)
        with admin.cursor() as cursor:
            cursor.execute("ALTER TABLE kinto_emailer_outbox RENAME TO kinto_emailer_away")
        try:
            response = self.create_record(data={"id": "lost"}, status="*")
            # Before this thread serves another request: no transaction left open, no lock.
            with admin.cursor() as cursor:
                cursor.execute(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND state LIKE 'idle in transaction%'"
                )
                assert cursor.fetchone()[0] == 0
        finally:
            with admin.cursor() as cursor:
                cursor.execute("ALTER TABLE kinto_emailer_away RENAME TO kinto_emailer_outbox")
        assert response.status_int >= 500
        self.app.get("/buckets/b/collections/c/records/lost", headers=self.headers, status=404)

    def test_a_failed_write_leaves_no_row(self):
        self.create_bucket()
        self.create_collection(data=self.hooked(hook("never")))
        before = self.rows()
        for explosion in (True, "at commit"):  # Before the rows are written, and after.
            # Nothing said queued either: the rows were never committed.
            with self.assertNoLogs("kinto_emailer.outcomes", level="INFO"):
                self.app.put_json(
                    "/buckets/b/collections/c/records/boom",
                    {"data": {"explode": explosion}},
                    headers=self.headers,
                    status=500,
                )
            transaction.abort()  # As the thread's next request does: a failed commit stays.
        assert self.rows() == before
