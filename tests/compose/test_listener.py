"""Events to emails, through the real Kinto app and a real SMTP server on loopback."""

import functools
import mailbox
import os
import re
import shutil
import tempfile
from email import message_from_binary_file, policy

from kinto_emailer import __version__
from tests.support import EmailerWebTest, HookWebTest, free_port, record_hook
from tests.support import hook as stored_hook


RECIPIENT = "alice@example.com"
ALL_PLACEHOLDERS = (
    "bucket_id",
    "collection_id",
    "record_id",
    "id",
    "user_id",
    "resource_name",
    "uri",
    "action",
    "timestamp",
    "root_url",
    "client_address",
    "user_agent",
    "event",
    "settings[project_name]",
    "settings[project_version]",
    "settings[url]",
)


# The body names where the record is.
hook = functools.partial(
    record_hook, template="{bucket_id}/{collection_id}/{record_id}", recipients=[RECIPIENT]
)


class ListenerTest(EmailerWebTest):
    def setUp(self):
        super().setUp()
        self.create_bucket("b")

    def subjects(self, count):
        return sorted(m["Subject"] for m in self.inbox.wait_for(count))

    def assert_nothing_sent(self):
        self.drain()
        assert self.inbox.messages == []


class RecordChangesTest(ListenerTest):
    def test_a_record_creation_sends_an_email(self):
        self.create_collection("b", "c", self.hooked(hook()))
        rid = self.create_record(data={"title": "hello"}).json["data"]["id"]
        [message] = self.inbox.wait_for(1)
        assert message["Subject"] == f"create record {rid}"
        assert message.get_content().strip() == f"b/c/{rid}"
        assert message.envelope_to == [RECIPIENT]
        assert message["To"] == RECIPIENT

    def test_a_record_update_sends_an_email(self):
        self.create_collection("b", "c", self.hooked(hook()))
        rid = self.create_record().json["data"]["id"]
        self.inbox.wait_for(1)
        self.inbox.clear()
        self.app.patch_json(
            f"/buckets/b/collections/c/records/{rid}", {"data": {"x": 1}}, headers=self.headers
        )
        assert self.subjects(1) == [f"update record {rid}"]

    def test_a_record_deletion_sends_an_email(self):
        self.create_collection("b", "c", self.hooked(hook()))
        rid = self.create_record().json["data"]["id"]
        self.inbox.wait_for(1)
        self.inbox.clear()
        self.app.delete(f"/buckets/b/collections/c/records/{rid}", headers=self.headers)
        [message] = self.inbox.wait_for(1)
        assert message["Subject"] == f"delete record {rid}"
        assert message.get_content().strip() == f"b/c/{rid}"

    def test_the_default_subject_is_new_message(self):
        self.create_collection("b", "c", self.hooked({"template": "x", "recipients": [RECIPIENT]}))
        self.inbox.wait_for(1)  # A hook without filters fires on its collection's creation too.
        self.inbox.clear()
        self.create_record()
        [message] = self.inbox.wait_for(1)
        assert message["Subject"] == "New message"

    def test_the_default_sender_is_mail_default_sender(self):
        self.create_collection("b", "c", self.hooked(hook()))
        self.create_record()
        [message] = self.inbox.wait_for(1)
        assert message["From"] == "kinto@example.com"
        assert message.envelope_from == "kinto@example.com"

    def test_the_sender_of_the_hook_replaces_the_default(self):
        sender = "Kinto team <team@example.com>"
        self.create_collection("b", "c", self.hooked(hook(sender=sender)))
        self.create_record()
        [message] = self.inbox.wait_for(1)
        assert message["From"] == sender
        assert message.envelope_from == "team@example.com"

    def test_an_empty_template_sends_an_email_with_an_empty_body(self):
        self.create_collection("b", "c", self.hooked(hook(template="")))
        self.create_record()
        [message] = self.inbox.wait_for(1)
        assert message.get_content().strip() == ""

    def test_every_address_form_receives_the_email(self):
        entries = ["Bob <bob@example.com>", "<carol@example.com>", "dave@localhost"]
        self.create_collection("b", "c", self.hooked(hook(recipients=entries)))
        self.create_record()
        [message] = self.inbox.wait_for(1)
        assert sorted(message.envelope_to) == [
            "bob@example.com",
            "carol@example.com",
            "dave@localhost",
        ]
        assert "Bob <bob@example.com>" in message["To"]

    def test_a_batch_of_20_records_sends_20_emails_each_with_its_own_ids(self):
        self.create_collection("b", "c", self.hooked(hook()))
        requests = [{"body": {"data": {"n": n}}} for n in range(20)]
        body = {
            "defaults": {"method": "POST", "path": "/buckets/b/collections/c/records"},
            "requests": requests,
        }
        responses = self.app.post_json("/batch", body, headers=self.headers).json["responses"]
        ids = sorted(r["body"]["data"]["id"] for r in responses)
        assert len(set(ids)) == 20
        messages = self.inbox.wait_for(20)
        self.drain()
        assert len(self.inbox.messages) == 20
        assert sorted(m["Subject"] for m in messages) == sorted(f"create record {i}" for i in ids)
        assert sorted(m.get_content().strip() for m in messages) == [f"b/c/{i}" for i in ids]

    def test_events_of_one_request_are_all_sent(self):
        # A batch on two collections makes two events: the second never replaces the first.
        self.create_collection("b", "c", self.hooked(hook()))
        self.create_collection("b", "d", self.hooked(hook()))
        body = {
            "defaults": {"method": "POST"},
            "requests": [
                {"path": "/buckets/b/collections/c/records", "body": {"data": {}}},
                {"path": "/buckets/b/collections/d/records", "body": {"data": {}}},
                {"path": "/buckets/b/collections/c/records", "body": {"data": {}}},
            ],
        }
        self.app.post_json("/batch", body, headers=self.headers)
        bodies = sorted(m.get_content().strip().rsplit("/", 1)[0] for m in self.inbox.wait_for(3))
        assert bodies == ["b/c", "b/c", "b/d"]

    def test_several_matching_hooks_send_several_emails(self):
        hooks = [hook(subject="first"), hook(subject="second"), hook(subject="x", action="delete")]
        self.create_collection("b", "c", self.hooked(*hooks))
        self.create_record()
        self.inbox.wait_for(2)
        self.drain()
        assert sorted(m["Subject"] for m in self.inbox.messages) == ["first", "second"]


class CollectionChangesTest(ListenerTest):
    def setUp(self):
        super().setUp()
        collection_hook = hook(resource_name="collection", template="{uri} {id}")
        self.app.patch_json(
            "/buckets/b", {"data": self.hooked(collection_hook)}, headers=self.headers
        )

    def test_a_collection_creation_sends_an_email(self):
        self.create_collection("b", "c")
        [message] = self.inbox.wait_for(1)
        assert message["Subject"] == "create collection c"
        assert message.get_content().strip() == "/buckets/b/collections/c c"

    def test_a_collection_update_sends_an_email(self):
        self.create_collection("b", "c")
        self.inbox.wait_for(1)
        self.inbox.clear()
        self.app.patch_json("/buckets/b/collections/c", {"data": {"x": 1}}, headers=self.headers)
        assert self.subjects(1) == ["update collection c"]

    def test_a_collection_deletion_sends_an_email(self):
        self.create_collection("b", "c")
        self.inbox.wait_for(1)
        self.inbox.clear()
        self.app.delete("/buckets/b/collections/c", headers=self.headers)
        assert self.subjects(1) == ["delete collection c"]

    def test_a_deleted_collection_is_mailed_with_its_own_hooks(self):
        own = hook(resource_name="collection", action="delete", subject="own {id}")
        self.create_collection("b", "c", self.hooked(own))
        self.app.delete("/buckets/b/collections/c", headers=self.headers)
        self.inbox.wait_for(1)
        self.drain()
        # Its own hooks replaced the bucket's from creation to deletion.
        assert [m["Subject"] for m in self.inbox.messages] == ["own c"]

    def test_a_record_id_filter_never_matches_a_collection_change(self):
        own = hook(resource_name="^.*", record_id="^.*", subject="{resource_name} {action}")
        self.create_collection("b", "c", self.hooked(own))
        self.app.patch_json("/buckets/b/collections/c", {"data": {"x": 1}}, headers=self.headers)
        self.assert_nothing_sent()
        self.create_record("b", "c")
        assert self.subjects(1) == ["record create"]


class HookLookupTest(ListenerTest):
    def test_a_collection_without_hooks_uses_its_buckets(self):
        self.app.patch_json(
            "/buckets/b", {"data": self.hooked(hook(subject="bucket"))}, headers=self.headers
        )
        self.create_collection("b", "c")
        self.create_record("b", "c")
        assert self.subjects(1) == ["bucket"]

    def test_the_collections_hooks_replace_the_buckets(self):
        self.app.patch_json(
            "/buckets/b", {"data": self.hooked(hook(subject="bucket"))}, headers=self.headers
        )
        self.create_collection("b", "c", self.hooked(hook(subject="collection")))
        self.create_record("b", "c")
        self.inbox.wait_for(1)
        self.drain()
        assert [m["Subject"] for m in self.inbox.messages] == ["collection"]

    def test_an_empty_hook_list_on_the_collection_silences_the_buckets(self):
        self.app.patch_json(
            "/buckets/b", {"data": self.hooked(hook(subject="bucket"))}, headers=self.headers
        )
        self.create_collection("b", "c", self.hooked())
        self.create_record("b", "c")
        self.assert_nothing_sent()

    def test_a_bucket_hook_fires_for_every_collection_of_the_bucket(self):
        self.app.patch_json(
            "/buckets/b",
            {"data": self.hooked(hook(subject="{collection_id}"))},
            headers=self.headers,
        )
        for cid in ("one", "two"):
            self.create_collection("b", cid)
            self.create_record("b", cid)
        assert self.subjects(2) == ["one", "two"]

    def test_a_hook_without_filters_fires_on_the_collection_and_its_records(self):
        unfiltered = {
            "subject": "{resource_name} {action}",
            "template": "",
            "recipients": [RECIPIENT],
        }
        self.create_collection("b", "c", self.hooked(unfiltered))
        self.create_record("b", "c")
        assert self.subjects(2) == ["collection create", "record create"]


class FilterTest(ListenerTest):
    def test_a_regular_expression_selects_collections(self):
        self.app.patch_json(
            "/buckets/b",
            {
                "data": self.hooked(
                    hook(collection_id="^(?!normandy-recipes$)", subject="{collection_id}")
                )
            },
            headers=self.headers,
        )
        for cid in ("normandy-recipes", "normandy-recipes-preview", "addons"):
            self.create_collection("b", cid)
            self.create_record("b", cid)
        self.inbox.wait_for(2)
        self.drain()
        assert sorted(m["Subject"] for m in self.inbox.messages) == [
            "addons",
            "normandy-recipes-preview",
        ]

    def test_literal_filters_on_action_and_record_id(self):
        hooks = [
            hook(action="update", subject="updated"),
            hook(record_id="rec-1", subject="rec-1 only"),
            hook(id="^rec-", action="delete", subject="deleted {id}"),
        ]
        self.create_collection("b", "c", self.hooked(*hooks))
        for rid in ("rec-1", "rec-2"):
            self.app.put_json(
                f"/buckets/b/collections/c/records/{rid}", {"data": {}}, headers=self.headers
            )
        self.app.delete("/buckets/b/collections/c/records/rec-2", headers=self.headers)
        self.inbox.wait_for(2)
        self.drain()
        assert sorted(m["Subject"] for m in self.inbox.messages) == [
            "deleted rec-2",
            "rec-1 only",
        ]

    def test_the_event_filter_accepts_both_names_of_an_ordinary_change(self):
        hooks = [
            hook(event="kinto.core.events.AfterResourceChanged", subject="after"),
            hook(event="kinto.core.events.ResourceChanged", subject="synonym"),
            hook(event="kinto_signer.events.ReviewRequested", subject="review"),
        ]
        self.create_collection("b", "c", self.hooked(*hooks))
        self.create_record()
        self.inbox.wait_for(2)
        self.drain()
        assert sorted(m["Subject"] for m in self.inbox.messages) == ["after", "synonym"]


class RecipientsTest(ListenerTest):
    def setUp(self):
        super().setUp()
        members = ["ldap:bob@example.com", "account:eve", "carol@example.com", "basicauth:1f0e"]
        self.app.put_json(
            "/buckets/b/groups/reviewers", {"data": {"members": members}}, headers=self.headers
        )

    def test_a_group_expands_to_its_members_with_email_addresses(self):
        entries = ["/buckets/b/groups/reviewers", RECIPIENT]
        self.create_collection("b", "c", self.hooked(hook(recipients=entries)))
        self.create_record()
        [message] = self.inbox.wait_for(1)
        assert sorted(message.envelope_to) == [RECIPIENT, "bob@example.com", "carol@example.com"]

    def test_a_group_uri_may_hold_a_placeholder(self):
        self.app.put_json(
            "/buckets/b/groups/addons-reviewers",
            {"data": {"members": ["ldap:zoe@example.com"]}},
            headers=self.headers,
        )
        entries = ["/buckets/b/groups/{collection_id}-reviewers"]
        self.app.patch_json(
            "/buckets/b", {"data": self.hooked(hook(recipients=entries))}, headers=self.headers
        )
        self.create_collection("b", "addons")
        self.create_record("b", "addons")
        [message] = self.inbox.wait_for(1)
        assert message.envelope_to == ["zoe@example.com"]

    def test_a_missing_group_contributes_nobody(self):
        entries = ["/buckets/b/groups/nobody", RECIPIENT]
        self.create_collection("b", "c", self.hooked(hook(recipients=entries)))
        self.create_record()
        [message] = self.inbox.wait_for(1)
        assert message.envelope_to == [RECIPIENT]

    def test_a_hook_left_without_recipients_sends_nothing(self):
        self.app.put_json(
            "/buckets/b/groups/robots",
            {"data": {"members": ["account:r2d2"]}},
            headers=self.headers,
        )
        hooks = [
            hook(recipients=["/buckets/b/groups/nobody"], subject="missing group"),
            hook(recipients=["/buckets/b/groups/robots"], subject="no address"),
            hook(subject="control"),
        ]
        self.create_collection("b", "c", self.hooked(*hooks))
        self.create_record()
        self.inbox.wait_for(1)
        self.drain()
        assert [m["Subject"] for m in self.inbox.messages] == ["control"]


class PlaceholdersTest(ListenerTest):
    @classmethod
    def extra_settings(cls):
        return {
            "project_name": "Kinto Test",
            "project_version": "9.9",
            "url": "https://kinto.example.com/",
            "userid_hmac_secret": "top-secret-hmac",
        }

    def test_every_placeholder_renders(self):
        template = "\n".join(f"{name}={{{name}}}" for name in ALL_PLACEHOLDERS)
        self.create_collection("b", "c", self.hooked(hook(template=template)))
        headers = {**self.headers, "User-Agent": "placeholder-test/1.0"}
        response = self.app.post_json(
            "/buckets/b/collections/c/records",
            {"data": {}},
            headers=headers,
            extra_environ={"REMOTE_ADDR": "192.0.2.7"},
        )
        record = response.json["data"]
        user_id = self.app.get("/", headers=self.headers).json["user"]["id"]
        [message] = self.inbox.wait_for(1)
        lines = dict(line.split("=", 1) for line in message.get_content().strip().splitlines())
        assert lines == {
            "bucket_id": "b",
            "collection_id": "c",
            "record_id": record["id"],
            "id": record["id"],
            "user_id": user_id,
            "resource_name": "record",
            "uri": f"/buckets/b/collections/c/records/{record['id']}",
            "action": "create",
            "timestamp": str(record["last_modified"]),
            "root_url": "https://localhost/v1/",
            "client_address": "192.0.2.7",
            "user_agent": "placeholder-test/1.0",
            "event": "kinto.core.events.AfterResourceChanged",
            "settings[project_name]": "Kinto Test",
            "settings[project_version]": "9.9",
            "settings[url]": "https://kinto.example.com/",
        }

    def test_the_issue_example_renders(self):
        example = "{user_id} has {action}d a {resource_name} in {bucket_id}."
        self.create_collection("b", "c", self.hooked(hook(subject=example)))
        self.create_record()
        user_id = self.app.get("/", headers=self.headers).json["user"]["id"]
        [message] = self.inbox.wait_for(1)
        # Python's parser keeps the space that folds a long header line.
        assert message["Subject"].strip() == f"{user_id} has created a record in b."

    def test_user_id_is_kintos_prefixed_id_and_empty_for_an_anonymous_write(self):
        self.app.put_json(
            "/buckets/b/collections/c",
            {
                "data": self.hooked(hook(template="by [{user_id}]")),
                "permissions": {"record:create": ["system.Everyone"]},
            },
            headers=self.headers,
        )
        self.create_record()
        self.app.post_json("/buckets/b/collections/c/records", {"data": {}})
        self.drain()
        bodies = sorted(m.get_content().strip() for m in self.inbox.wait_for(2))
        # Basic auth: the policy's name and a hash of the credentials, never "alice".
        assert bodies[0] == "by []"
        assert re.fullmatch(r"by \[basicauth:[0-9a-f]{64}\]", bodies[1]), bodies

    def test_no_other_setting_is_ever_rendered(self):
        self.create_collection("b", "c", self.hooked(hook()))
        # Metadata stored before validation existed: written straight to storage.
        legacy = hook(template="{settings[userid_hmac_secret]} {settings[mail.port]}")
        self.storage.update(
            resource_name="collection",
            parent_id="/buckets/b",
            object_id="c",
            obj={"id": "c", **self.hooked(legacy)},
        )
        self.create_record()
        [message] = self.inbox.wait_for(1)
        body = message.get_content()
        assert "top-secret-hmac" not in body
        assert body.strip() == "{settings[userid_hmac_secret]} {settings[mail.port]}"


class RollbackTest(ListenerTest):
    @classmethod
    def extra_settings(cls):
        return {"includes": "kinto_emailer tests.failing_plugin"}

    def setUp(self):
        super().setUp()
        self.create_collection("b", "c", self.hooked(hook()))

    def test_a_request_that_fails_after_its_event_sends_nothing(self):
        self.create_record(data={"explode": True}, status=500)
        self.assert_nothing_sent()

    def test_a_batch_that_fails_on_its_last_write_sends_nothing(self):
        body = {
            "defaults": {"method": "POST", "path": "/buckets/b/collections/c/records"},
            "requests": [{"body": {"data": {}}}, {"body": {"data": {"explode": True}}}],
        }
        self.app.post_json("/batch", body, headers=self.headers, status=500)
        self.assert_nothing_sent()

    def test_the_next_request_still_sends(self):
        self.create_record(data={"explode": True}, status=500)
        rid = self.create_record().json["data"]["id"]
        self.inbox.wait_for(1)
        self.drain()
        assert [m["Subject"] for m in self.inbox.messages] == [f"create record {rid}"]


class TemporaryDirectoryTest(ListenerTest):
    """An app whose settings name a directory made for the class."""

    @classmethod
    def setUpClass(cls):
        cls.directory = tempfile.mkdtemp(prefix="kinto-emailer-")
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        shutil.rmtree(cls.directory, ignore_errors=True)


class QueuePathTest(TemporaryDirectoryTest):
    @classmethod
    def extra_settings(cls):
        return {"mail.queue_path": os.path.join(cls.directory, "queue")}

    def test_emails_land_in_the_maildir_instead_of_the_smtp_server(self):
        self.create_collection("b", "c", self.hooked(hook(sender="Team <team@example.com>")))
        rid = self.create_record().json["data"]["id"]
        self.drain()
        queue = os.path.join(self.directory, "queue")
        assert len(os.listdir(os.path.join(queue, "new"))) == 1
        [message] = list(mailbox.Maildir(queue, create=False))
        assert message["Subject"] == f"create record {rid}"
        assert message["To"] == RECIPIENT
        assert message["From"] == "Team <team@example.com>"
        assert message.get_payload(decode=True).decode().strip() == f"b/c/{rid}"
        assert self.inbox.messages == []


class DebugMailerTest(TemporaryDirectoryTest):
    @classmethod
    def extra_settings(cls):
        return {"mail.debug_mailer": "true", "mail.top_level_directory": cls.directory}

    def test_emails_are_written_as_eml_files(self):
        self.create_collection("b", "c", self.hooked(hook()))
        rid = self.create_record().json["data"]["id"]
        self.drain()
        files = [f for f in os.listdir(self.directory) if f.endswith(".eml")]
        assert len(files) == 1
        with open(os.path.join(self.directory, files[0]), "rb") as f:
            message = message_from_binary_file(f, policy=policy.default)
        assert message["Subject"] == f"create record {rid}"
        assert message["To"] == RECIPIENT
        assert self.inbox.messages == []


class RefusingServerTest(ListenerTest):
    @classmethod
    def extra_settings(cls):
        # Nothing listens there; one attempt keeps the test short if delivery retries.
        return {"mail.port": str(free_port()), "kinto_emailer.retry_max_attempts": "1"}

    def test_an_unreachable_server_leaves_the_write_successful_and_logs_why(self):
        self.create_collection("b", "c", self.hooked(hook()))
        with self.assertLogs("kinto_emailer", level="ERROR") as logs:
            self.create_record(status=201)
            self.drain()
        output = "\n".join(logs.output)
        assert "Connection refused" in output or "111" in output, output


class RejectingServerTest(ListenerTest):
    def test_a_rejected_email_leaves_the_write_successful_and_logs_the_reply(self):
        self.create_collection("b", "c", self.hooked(hook()))
        self.inbox.scripted_replies.append("554 5.7.1 Message refused by policy")
        with self.assertLogs("kinto_emailer", level="ERROR") as logs:
            self.create_record(status=201)
            self.drain()
        assert "Message refused by policy" in "\n".join(logs.output)
        assert self.inbox.messages == []


class CapabilityTest(EmailerWebTest):
    def test_the_root_url_lists_the_emailer_capability(self):
        capabilities = self.app.get("/", headers=self.headers).json["capabilities"]
        assert capabilities["emailer"] == {
            "description": "Send emails when records and collections change.",
            "url": "https://kinto-emailer.readthedocs.io/",
            "version": __version__,
            "outbox": "memory",
            "preview": "/buckets/{bucket_id}/collections/{collection_id}/emailer-preview",
        }


# Whatever hook metadata storage holds, writes succeed and problems are logged.
#
# Validation keeps bad hooks out from now on, but storage may hold metadata saved before it
# existed, or written by another tool: these tests put it there directly.


GOOD = stored_hook(subject="good", template="good body")
WHERE = "/buckets/b/collections/c#0"

#: Hooks that validation refuses, each logged with its location when a record is written.
BROKEN_HOOKS = {
    "attribute access": stored_hook(template="{user_agent.__class__}"),
    "attribute after a key": stored_hook(template="{new[title].__class__}"),
    "conversion": stored_hook(template="{bucket_id!r}"),
    "huge format spec": stored_hook(template="{bucket_id:>300000000}"),
    "unbalanced brace": stored_hook(subject="Hello {bucket_id"),
    "positional placeholder": stored_hook(template="{0}"),
    "subject not a string": stored_hook(subject=None),
    "template not a string": stored_hook(template=42),
    "template a list": stored_hook(template=["{bucket_id}"]),
    "recipients an object": stored_hook(recipients={"to": "alice@example.com"}),
    "recipients a number": stored_hook(recipients=7),
    "non-string recipients": stored_hook(recipients=[42, None, {"a": 1}, ["x"]]),
    "broken group URI template": stored_hook(recipients=["/buckets/b/groups/{x!r}"]),
    "invalid regular expression": stored_hook(record_id="^("),
    "pattern too large to compile": stored_hook(record_id="^a{1000000000}"),
    "pattern nested too deeply": stored_hook(record_id="^" + "(" * 5000 + ")" * 5000),
}

#: Metadata of the wrong shape: nothing to send, nothing to break.
BROKEN_METADATA = {
    "settings not an object": {"kinto-emailer": "hooks"},
    "hooks not a list": {"kinto-emailer": {"hooks": {"0": GOOD}}},
    "hooks of the wrong type": {"kinto-emailer": {"hooks": [42, "hook", None, []]}},
    "no hooks": {"kinto-emailer": {}},
    "filters of the wrong type": {"kinto-emailer": {"hooks": [stored_hook(record_id={"$ne": 1})]}},
}


class NeverA500Test(HookWebTest):
    def setUp(self):
        super().setUp()
        self.create_collection()

    def write_record(self, record_id="r1"):
        return self.app.put_json(
            f"/buckets/b/collections/c/records/{record_id}",
            {"data": {"title": "x"}},
            headers=self.headers,
            status=[200, 201],
        )

    def test_a_broken_hook_is_skipped_and_logged_and_the_others_still_send(self):
        for problem, broken in BROKEN_HOOKS.items():
            with self.subTest(problem):
                self.inbox.clear()
                self.store_unchecked(self.hooked(broken, GOOD), collection_id="c")
                with self.assertLogs("kinto_emailer", "WARNING") as logs:
                    self.write_record()
                assert WHERE in "\n".join(logs.output), logs.output
                assert [m["Subject"] for m in self.emails(1)] == ["good"]

    def test_metadata_of_the_wrong_shape_sends_nothing(self):
        for problem, metadata in BROKEN_METADATA.items():
            with self.subTest(problem):
                self.store_unchecked(metadata, collection_id="c")
                self.write_record()
                self.no_email()

    def test_a_broken_bucket_hook_is_skipped_and_logged(self):
        self.store_unchecked(self.hooked(stored_hook(template="{a.b}"), GOOD))
        self.create_collection(collection_id="other")
        with self.assertLogs("kinto_emailer", "WARNING") as logs:
            self.create_record(collection_id="other")
        assert "/buckets/b#0" in "\n".join(logs.output)
        # The bucket's good hook: the collection's creation and its record.
        assert [m["Subject"] for m in self.emails(2)] == ["good", "good"]

    def test_other_writes_succeed_under_broken_hooks(self):
        self.store_unchecked(self.hooked(*BROKEN_HOOKS.values()), collection_id="c")
        self.write_record()
        self.app.patch_json(
            "/buckets/b/collections/c/records/r1", {"data": {"n": 1}}, headers=self.headers
        )
        self.app.delete("/buckets/b/collections/c/records/r1", headers=self.headers)
        # The metadata is not saved again: the rest of the collection stays writable.
        self.app.patch_json(
            "/buckets/b/collections/c", {"data": {"title": "t"}}, headers=self.headers
        )
        self.app.delete("/buckets/b/collections/c", headers=self.headers)
        self.no_email()

    def test_a_batch_under_broken_hooks_succeeds(self):
        self.store_unchecked(self.hooked(*BROKEN_HOOKS.values(), GOOD), collection_id="c")
        requests = [
            {"method": "PUT", "path": f"/buckets/b/collections/c/records/r{i}"} for i in range(5)
        ]
        response = self.app.post_json(
            "/batch",
            {"defaults": {"body": {"data": {}}}, "requests": requests},
            headers=self.headers,
        )
        assert [r["status"] for r in response.json["responses"]] == [201] * 5
        assert [m["Subject"] for m in self.emails(5)] == ["good"] * 5

    def test_a_huge_stored_template_renders_at_most_one_mebibyte(self):
        big = stored_hook(template="{bucket_id}" * 200_000 + "x" * 2_000_000, subject="s" * 5000)
        self.store_unchecked(self.hooked(big), collection_id="c")
        self.write_record()
        message = self.one_email()
        # The message ends with a line break of its own.
        assert len(message.get_content().rstrip("\r\n").encode("utf-8")) == 1024 * 1024
        assert len(message["Subject"]) == 998
