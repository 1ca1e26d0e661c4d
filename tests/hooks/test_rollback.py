"""A save refused with a 400 leaves the bucket or collection as it was, on every backend.

Every scenario runs on the memory backend, which has no transaction to roll back, and on
PostgreSQL. After the refused save, GET gives the previous object (or nothing for a refused
create), and a later record write sends only what the previous hooks send.
"""

import json

import pytest

from tests.support import (
    EmailerWebTest,
    TemporaryDatabase,
    hooked,
    postgresql_settings,
)
from tests.support import record_hook as hook


#: Would send "refused" if it were stored: its second hook has a typo.
REFUSED = hooked(hook("refused"), hook("typo", acton="create"))
PREVIOUS = hooked(hook("previous"))


@pytest.fixture(scope="session")
def rollback_database():
    with TemporaryDatabase("kinto_emailer_rollback") as database:
        TestPostgreSQLRollback.database_url = database.url
        yield database


class RefusedSaveScenarios:
    """Mixed into one test class per backend."""

    def setUp(self):
        super().setUp()
        self.create_bucket("sentinel")
        self.create_collection("sentinel", "flush", hooked(hook("flushed")))
        self.create_bucket()

    def subjects_of_a_record_write(self, bucket_id="b", collection_id="c"):
        """What a record written in ``collection_id`` sends, every pending email included."""
        self.drain()
        self.inbox.clear()
        self.create_record(bucket_id, collection_id)
        self.drain()
        # An email sent after the record's: nothing of the record's can still be on its way.
        before = len(self.inbox.messages)
        self.create_record("sentinel", "flush")
        messages = self.inbox.wait_for(before + 1)
        return sorted(m["Subject"] for m in messages if m["Subject"] != "flushed")

    def get(self, path, status=200):
        return self.app.get(path, headers=self.headers, status=status)

    def refuse(self, method, path, body, content_type="application/json"):
        response = self.app.request(
            path,
            method=method,
            body=json.dumps(body).encode(),
            headers={**self.headers, "Content-Type": content_type},
            status=400,
        )
        assert 'Unknown field "acton" in hook 1' in response.json["message"]
        return response

    def assert_previous(self, path, previous, permissions=None):
        stored = self.get(path).json
        assert {k: v for k, v in stored["data"].items() if k != "last_modified"} == previous
        if permissions is not None:
            assert stored["permissions"] == permissions

    # Refused creates leave nothing behind.

    def test_a_refused_put_of_a_new_collection_is_not_stored(self):
        self.refuse("PUT", "/buckets/b/collections/c", {"data": REFUSED})
        self.get("/buckets/b/collections/c", status=404)
        self.create_collection()
        assert self.subjects_of_a_record_write() == []

    def test_a_refused_post_of_a_new_collection_is_not_stored(self):
        self.refuse("POST", "/buckets/b/collections", {"data": {"id": "c", **REFUSED}})
        self.get("/buckets/b/collections/c", status=404)
        assert self.get("/buckets/b/collections").json["data"] == []
        self.create_collection()
        assert self.subjects_of_a_record_write() == []

    def test_a_refused_new_bucket_is_not_stored_nor_its_permissions(self):
        self.refuse("PUT", "/buckets/new", {"data": REFUSED})
        self.refuse("POST", "/buckets", {"data": {"id": "other", **REFUSED}})
        # 403, not 404: alice keeps no permission on a bucket that doesn't exist.
        self.get("/buckets/new", status=403)
        self.get("/buckets/other", status=403)
        listed = {b["id"] for b in self.get("/buckets").json["data"]}
        assert listed == {"b", "sentinel"}
        self.create_bucket("new")
        self.create_collection("new")
        assert self.subjects_of_a_record_write("new") == []

    # Refused updates leave the previous version, hooks and permissions.

    def collection_with_previous_hooks(self):
        self.create_collection(data={"title": "before", **PREVIOUS})
        return {"id": "c", "title": "before", **PREVIOUS}

    def test_a_refused_put_keeps_the_previous_collection(self):
        previous = self.collection_with_previous_hooks()
        self.refuse("PUT", "/buckets/b/collections/c", {"data": {"title": "after", **REFUSED}})
        self.assert_previous("/buckets/b/collections/c", previous)
        assert self.subjects_of_a_record_write() == ["previous"]

    def test_a_refused_patch_keeps_the_previous_collection_whatever_its_format(self):
        previous = self.collection_with_previous_hooks()
        patches = [
            ("application/json", {"data": {"title": "after", **REFUSED}}),
            ("application/merge-patch+json", {"data": {"title": "after", **REFUSED}}),
            (
                "application/json-patch+json",
                [
                    {"op": "replace", "path": "/data/title", "value": "after"},
                    {"op": "add", "path": "/data/kinto-emailer/hooks/0/acton", "value": "x"},
                ],
            ),
        ]
        for content_type, body in patches:
            with self.subTest(content_type):
                response = self.app.patch(
                    "/buckets/b/collections/c",
                    json.dumps(body),
                    headers={**self.headers, "Content-Type": content_type},
                    status=400,
                )
                assert 'Unknown field "acton"' in response.json["message"]
                self.assert_previous("/buckets/b/collections/c", previous)
        assert self.subjects_of_a_record_write() == ["previous"]

    def test_a_refused_patch_of_a_bucket_keeps_the_previous_bucket(self):
        self.app.patch_json("/buckets/b", {"data": PREVIOUS}, headers=self.headers)
        self.create_collection()
        self.refuse("PATCH", "/buckets/b", {"data": REFUSED})
        self.assert_previous("/buckets/b", {"id": "b", **PREVIOUS})
        assert self.subjects_of_a_record_write() == ["previous"]

    def test_a_refused_save_keeps_the_previous_permissions(self):
        previous = self.collection_with_previous_hooks()
        permissions = self.get("/buckets/b/collections/c").json["permissions"]
        self.refuse(
            "PATCH",
            "/buckets/b/collections/c",
            {"data": REFUSED, "permissions": {"write": ["system.Everyone"], "read": ["bob"]}},
        )
        self.assert_previous("/buckets/b/collections/c", previous, permissions)
        # Anonymous writes would be allowed had the permissions stayed.
        self.app.put_json("/buckets/b/collections/c/records/r", {"data": {}}, status=401)

    # Batches: every bucket and collection the batch saved is put back.

    def batch(self, *requests):
        body = {"defaults": {"method": "PUT"}, "requests": list(requests)}
        response = self.app.post_json("/batch", body, headers=self.headers, status=400)
        assert 'Unknown field "acton"' in response.json["message"]

    def test_a_refused_batch_puts_back_the_collections_it_saved(self):
        previous = self.collection_with_previous_hooks()
        self.batch(
            {"path": "/buckets/b/collections/new", "body": {"data": hooked(hook("new"))}},
            {"method": "PATCH", "path": "/buckets/b/collections/c", "body": {"data": REFUSED}},
        )
        self.get("/buckets/b/collections/new", status=404)
        self.assert_previous("/buckets/b/collections/c", previous)
        assert self.subjects_of_a_record_write() == ["previous"]

    def test_a_refused_batch_puts_back_what_it_saved_after_the_refused_object(self):
        self.create_collection(collection_id="other")
        self.batch(
            {"path": "/buckets/b/collections/c", "body": {"data": REFUSED}},
            # Notified after the refused collection: the bucket's hooks would apply to "other".
            {"method": "PATCH", "path": "/buckets/b", "body": {"data": hooked(hook("bucket"))}},
        )
        self.assert_previous("/buckets/b", {"id": "b"})
        assert self.subjects_of_a_record_write(collection_id="other") == []

    def test_a_refused_batch_that_saves_an_object_twice_puts_back_the_first_version(self):
        previous = self.collection_with_previous_hooks()
        self.batch(
            {"path": "/buckets/b/collections/c", "body": {"data": hooked(hook("first"))}},
            {"method": "PATCH", "path": "/buckets/b/collections/c", "body": {"data": REFUSED}},
        )
        self.assert_previous("/buckets/b/collections/c", previous)
        assert self.subjects_of_a_record_write() == ["previous"]

    def test_a_valid_save_is_stored(self):
        self.collection_with_previous_hooks()
        self.app.patch_json(
            "/buckets/b/collections/c", {"data": hooked(hook("after"))}, headers=self.headers
        )
        assert self.subjects_of_a_record_write() == ["after"]


class TestMemoryRollback(RefusedSaveScenarios, EmailerWebTest):
    pass


@pytest.mark.postgresql
@pytest.mark.usefixtures("rollback_database")
class TestPostgreSQLRollback(RefusedSaveScenarios, EmailerWebTest):
    database_url = None  # Set by the session's database fixture, before the app starts.

    @classmethod
    def extra_settings(cls):
        return postgresql_settings(cls.database_url)
