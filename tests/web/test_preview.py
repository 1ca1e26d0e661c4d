"""Issue 22: ``POST .../emailer-preview`` shows what a change would send, and sends nothing.

Through the real app, with the real SMTP server on loopback: what the preview answers comes
from the listener's own path, and nothing reaches the server, the outbox or storage.
"""

import base64
import dataclasses
import functools
from unittest import mock
from urllib.parse import urlsplit

import bcrypt
import psycopg2
from kinto.core.testing import get_user_headers
from kinto.plugins.accounts.scripts import create_user

from kinto_emailer.compose import optouts
from kinto_emailer.compose.email import SPARED_AUTHOR
from kinto_emailer.web.preview import PATH, UNREADABLE_GROUP
from tests.hooks.test_selection import ATTACK_ID, CATASTROPHIC
from tests.http_receiver import HTTPChannelsMixin
from tests.support import (
    ALICE,
    EmailerWebTest,
    HookWebTest,
    PostgreSQLOutboxMixin,
    hook,
    record_hook,
)


URL = PATH.format(bucket_id="b", collection_id="c")
BOB = "bob@example.com"
TIMED_OUT = "regular expressions ran out of the request's 0.1s (kinto_emailer.regex_timeout)"


def tried(*hooks):
    return {"kinto-emailer": {"hooks": list(hooks)}}


class PreviewWebTest(HookWebTest):
    def preview(self, data=None, status=200, headers=None, url=URL):
        headers = self.headers if headers is None else headers
        response = self.app.post_json(url, {"data": data or {}}, headers=headers, status=status)
        return response.json if status != 200 else response.json["data"]

    def user(self, name):
        """Headers of another user, and their principal."""
        headers = {**self.headers, **get_user_headers(name)}
        return headers, self.app.get("/", headers=headers).json["user"]["id"]

    def refusal(self, data, status=400):
        answer = self.preview(data, status=status)
        assert answer["errno"] == (107 if status == 400 else 121), answer
        return answer["message"]


class PreviewTest(PreviewWebTest):
    def test_a_saved_hook_renders_from_the_posted_record_and_nothing_is_sent_nor_stored(self):
        self.save_hooks(
            record_hook(
                "New: {new[title]}",
                template="{new[title]} by {user_id}, was {old[title]}",
                html_template="<p>{new[title]}</p>",
                cc=[f"Bob <{BOB}>"],
                reply_to="{new[author]}",
            )
        )
        new = {"id": "r1", "title": "Tea & <cake>", "author": "carol@example.com"}
        user_id = self.app.get("/", headers=self.headers).json["user"]["id"]
        emails_before = self.app.get("/buckets/b/emails", headers=self.headers).json["data"]

        (answer,) = self.preview({"action": "create", "new": new})

        assert answer == {
            "hook": "/buckets/b/collections/c#0",
            "channel": "email",
            "matched": True,
            "reason": None,
            "messages": [
                {
                    "subject": "New: Tea & <cake>",
                    "sender": "kinto@example.com",
                    "recipients": [ALICE],
                    "cc": [f"Bob <{BOB}>"],
                    "bcc": [],
                    "reply_to": ["carol@example.com"],
                    "text": f"Tea & <cake> by {user_id}, was ",
                    "html": "<p>Tea &amp; &lt;cake&gt;</p>",
                    "headers": {},
                }
            ],
            "left_out": [],
        }
        self.no_email()
        records = self.app.get("/buckets/b/collections/c/records", headers=self.headers)
        assert records.json["data"] == []
        emails = self.app.get("/buckets/b/emails", headers=self.headers).json["data"]
        assert emails == emails_before

    def test_an_update_reads_the_stored_record_as_old(self):
        self.save_hooks(record_hook("{old[title]} -> {new[title]}"))
        self.create_record(data={"id": "r1", "title": "before"})
        self.emails(1)
        self.inbox.clear()
        (answer,) = self.preview({"action": "update", "new": {"id": "r1", "title": "after"}})
        assert answer["messages"][0]["subject"] == "before -> after"
        self.no_email()

    def test_unsaved_hooks_are_tried_instead_of_the_saved_ones(self):
        self.save_hooks(record_hook("saved"))
        metadata = tried(record_hook("tried one"), record_hook("tried two", action="delete"))
        answers = self.preview({"new": {"id": "r1"}, "metadata": metadata})
        assert [a["matched"] for a in answers] == [True, False]
        assert answers[0]["messages"][0]["subject"] == "tried one"
        # The saved hooks stay as they were.
        saved = self.app.get("/buckets/b/collections/c", headers=self.headers).json["data"]
        assert saved["kinto-emailer"]["hooks"][0]["subject"] == "saved"
        self.no_email()

    def test_a_typo_in_unsaved_hooks_is_refused_with_the_saves_message(self):
        self.create_collection()
        typo = {**record_hook(), "templat": "x"}
        message = self.refusal({"metadata": tried(typo)})
        saved_message = self.refused(typo)
        assert 'did you mean "template"?' in saved_message
        assert message == saved_message.replace(
            "data.kinto-emailer", "data.metadata.kinto-emailer"
        )

    def test_a_filter_that_does_not_match_says_which_and_why(self):
        self.save_hooks(
            record_hook(action="delete"),
            record_hook(record_id="^abc"),
            hook(resource_name="collection"),
            hook(record_id="r1", event="kinto_signer.events.ReviewRequested"),
        )
        self.emails(1)  # The collection's creation, a real write, matches the third hook.
        self.inbox.clear()
        answers = self.preview({"new": {"id": "r1"}})
        assert [(a["matched"], a["messages"]) for a in answers] == [(False, [])] * 4
        assert [a["reason"] for a in answers] == [
            'Filter "action" is "delete": the change\'s action is "create"',
            'Filter "record_id" is "^abc": the pattern does not match "r1"',
            'Filter "resource_name" is "collection": the change\'s resource_name is "record"',
            'Filter "event" is "kinto_signer.events.ReviewRequested": the change\'s event is '
            '"kinto.core.events.AfterResourceChanged"',
        ]

    def test_a_filter_on_a_field_the_change_lacks_and_stored_hooks_that_cant_work(self):
        self.create_collection()
        # Saved before validation existed: a broken pattern, a subject that isn't a string.
        broken = [hook(id="^("), hook(subject=7), hook(record_id="r1")]
        self.store_unchecked(tried(*broken), collection_id="c")
        body = {"resource_name": "collection", "action": "delete"}
        with self.assertLogs("kinto_emailer", "WARNING"):
            answers = self.preview(body)
        assert [(a["matched"], a["reason"]) for a in answers] == [
            (
                False,
                "Invalid regular expression (missing ), unterminated subpattern at position 1)",
            ),
            (True, "Could not build the email: subject must be a string, not int"),
            (False, 'Filter "record_id" is "r1": the change has no record_id'),
        ]

    def test_a_group_is_expanded_to_its_members_with_those_without_an_address_said(self):
        members = ["ldap:bob@example.com", "carol@example.com", "basicauth:0123abcd"]
        self.app.put_json(
            "/buckets/b/groups/editors", {"data": {"members": members}}, headers=self.headers
        )
        self.save_hooks(record_hook(recipients=["/buckets/{bucket_id}/groups/editors"]))
        (answer,) = self.preview({"new": {"id": "r1"}})
        assert answer["messages"][0]["recipients"] == [BOB, "carol@example.com"]
        assert answer["left_out"] == [
            {
                "address": "/buckets/{bucket_id}/groups/editors",
                "field": "recipients",
                "reason": "1 of its 3 members have no email address: basicauth:0123abcd",
            }
        ]

    def test_a_group_the_caller_cant_read_is_not_expanded(self):
        self.app.put_json(
            "/buckets/b/groups/editors", {"data": {"members": [BOB]}}, headers=self.headers
        )
        self.save_hooks(record_hook(recipients=["/buckets/b/groups/editors"]))
        headers, principal = self.user("dave")
        permissions = {"permissions": {"write": [principal]}}
        self.app.patch_json("/buckets/b/collections/c", permissions, headers=self.headers)
        (answer,) = self.preview({"new": {"id": "r1"}}, headers=headers)
        assert answer["matched"] is True and answer["messages"] == []
        assert answer["reason"] == 'Nobody left in "recipients" (see "left_out")'
        assert answer["left_out"] == [
            {
                "address": "/buckets/b/groups/editors",
                "field": "recipients",
                "reason": UNREADABLE_GROUP,
            }
        ]
        # Unsaved, such a hook is refused as its save would be.
        metadata = tried(record_hook("new", recipients=["/buckets/b/groups/editors"]))
        refused = self.preview({"metadata": metadata}, status=403, headers=headers)
        assert "you can't read that group" in refused["message"]

    def test_anonymous_gets_a_401_and_others_a_403(self):
        self.save_hooks(record_hook())
        self.preview({}, status=401, headers={})
        headers, _ = self.user("eve")
        refused = self.preview({}, status=403, headers=headers)
        assert refused["message"] == (
            "Previewing the hooks of /buckets/b/collections/c needs write permission on it"
        )

    def test_a_collection_writer_may_not_preview_the_bucket_hooks_it_cant_read(self):
        self.app.patch_json(
            "/buckets/b", {"data": tried(record_hook("bucket's"))}, headers=self.headers
        )
        self.create_collection()
        headers, principal = self.user("dave")
        permissions = {"permissions": {"write": [principal]}}
        self.app.patch_json("/buckets/b/collections/c", permissions, headers=self.headers)
        refused = self.preview({"new": {"id": "r1"}}, status=403, headers=headers)
        assert refused["message"] == (
            "The hooks that apply are those of /buckets/b: previewing them needs read "
            "permission on it"
        )
        # Trying the bucket's hooks needs write permission on the bucket.
        body = {"metadata": tried(record_hook()), "metadata_on": "bucket"}
        refused = self.preview(body, status=403, headers=headers)
        assert "/buckets/b needs write permission" in refused["message"]
        (answer,) = self.preview({"new": {"id": "r1"}})
        assert answer["hook"] == "/buckets/b#0"
        assert answer["messages"][0]["subject"] == "bucket's"

    def test_bucket_hooks_may_be_tried(self):
        self.create_collection()
        body = {"new": {"id": "r1"}, "metadata": tried(record_hook()), "metadata_on": "bucket"}
        (answer,) = self.preview(body)
        assert answer["hook"] == "/buckets/b#0" and answer["matched"] is True

    def test_a_digest_shows_the_one_message_of_the_request(self):
        self.create_collection()
        digest = record_hook(
            "{count} change(s)", template="Changes:", digest=True, item_template="{id}: {new[t]}"
        )
        (answer,) = self.preview({"new": {"id": "r1", "t": "tea"}, "metadata": tried(digest)})
        (message,) = answer["messages"]
        assert message["subject"] == "1 change(s)"
        assert message["text"] == "Changes:\n\nr1: tea"

    def test_the_catastrophic_pattern_time_limit_applies(self):
        self.save_hooks(
            hook(record_id=CATASTROPHIC),
            record_hook("fast pattern", record_id="^a+-$"),
            record_hook("no pattern"),
        )
        answers = self.preview({"new": {"id": ATTACK_ID}})
        assert [(a["matched"], a["reason"]) for a in answers] == [
            (False, f"No match: {TIMED_OUT}"),
            (False, f"Not tried: {TIMED_OUT} before it"),
            (True, None),
        ]
        assert answers[2]["messages"][0]["subject"] == "no pattern"

    def test_a_review_event_renders_its_comment(self):
        review = hook(
            event="kinto_signer.events.ReviewRequested",
            subject="Review of {collection_id}: {comment} ({changes_count})",
        )
        body = {
            "event": "kinto_signer.events.ReviewRequested",
            "comment": "please",
            "changes_count": 3,
            "metadata": tried(review),
        }
        (answer,) = self.preview(body)
        assert answer["messages"][0]["subject"] == "Review of c: please (3)"

    def test_a_collection_change_keeps_the_collections_hooks(self):
        self.save_hooks(hook(resource_name="collection", subject="{new[status]}"))
        self.emails(1)  # The collection's creation, a real write, matches the hook.
        self.inbox.clear()
        body = {"resource_name": "collection", "action": "update", "new": {"status": "signed"}}
        (answer,) = self.preview(body)
        assert answer["messages"][0]["subject"] == "signed"
        self.no_email()

    def test_what_the_body_may_say(self):
        self.create_collection()
        assert self.refusal({"nwe": {}}) == (
            'data.nwe in body: Unknown field "nwe"; did you mean "new"?'
        )
        assert self.refusal({"action": "updated"}) == (
            'data.action in body: "action" must be create or update or delete; '
            'did you mean "update"?'
        )
        assert self.refusal({"event": "ReviewRequested"}).endswith(
            'Unknown event "ReviewRequested"; did you mean "kinto_signer.events.ReviewRequested"?'
        )
        assert self.refusal({"metadata": {"kinto-slak": {}}}) == (
            'data.metadata in body: Unknown hooks "kinto-slak" in "metadata": try '
            '"kinto-emailer", "kinto-slack", "kinto-webhooks"'
        )
        self.preview({"new": {}}, status=404, url=URL.replace("/c/", "/other/"))

    def test_it_is_described_in_the_openapi_description_and_the_capability(self):
        api = self.app.get("/__api__").json
        assert "post" in api["paths"][PATH]
        capability = self.app.get("/").json["capabilities"]["emailer"]
        assert capability["preview"] == PATH


class UnofferedChannelPreviewTest(PreviewWebTest):
    def test_hooks_of_a_channel_the_server_doesn_t_offer_are_left_out_as_the_listener_does(self):
        # Saved before the server lost its Slack URL (or under kinto-slack): never posted.
        self.store_unchecked(
            {
                **self.hooked(record_hook()),
                "kinto-slack": {"hooks": [{"channel": "#ops", "template": "New"}]},
            },
            collection_id="c",
        )
        answers = self.preview({"new": {"id": "r1"}})
        assert [(a["hook"], a["channel"]) for a in answers] == [
            ("/buckets/b/collections/c#0", "email")
        ]


class PrivateHookPreviewTest(PreviewWebTest):
    @classmethod
    def extra_settings(cls):
        return {"userid_hmac_secret": "preview-tests"}

    def test_a_private_hook_shows_one_message_each_with_a_link_that_unsubscribes_nobody(self):
        private = record_hook(
            private=True, template="Stop: {unsubscribe_url}", recipients=[ALICE, BOB]
        )
        self.save_hooks(private)
        (answer,) = self.preview({"new": {"id": "r1"}})
        assert [m["recipients"] for m in answer["messages"]] == [[ALICE], [BOB]]
        for message in answer["messages"]:
            link = message["headers"]["List-Unsubscribe"].strip("<>")
            assert message["text"] == f"Stop: {link}"
            assert message["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
            path = urlsplit(link).path.removeprefix("/v1")
            self.app.post(path, status=400)
        assert self.app.get("/buckets/b/emailer/optouts", headers=self.headers).json["data"] == []
        self.no_email()

    def test_an_address_that_unsubscribed_is_left_out_and_said(self):
        self.save_hooks(record_hook(recipients=[ALICE, BOB]))
        optouts.add(self.app.app.registry.storage, BOB, "/buckets/b/collections/c")
        (answer,) = self.preview({"new": {"id": "r1"}})
        assert answer["messages"][0]["recipients"] == [ALICE]
        assert answer["left_out"] == [
            {
                "address": BOB,
                "field": "recipients",
                "reason": "Unsubscribed from the hooks of /buckets/b/collections/c",
            }
        ]


class LimitsPreviewTest(PreviewWebTest):
    @classmethod
    def extra_settings(cls):
        return {
            "kinto_emailer.max_emails_per_hour": "1",
            "kinto_emailer.max_request_bytes": "20000",
            "kinto_emailer.recipient_domains": "example.com",
        }

    def test_previews_are_not_counted_against_the_hourly_limit(self):
        self.save_hooks(record_hook("real"))
        for _ in range(3):
            self.preview({"new": {"id": "r1"}})
        self.create_record()
        assert self.one_email()["Subject"] == "real"

    def test_past_the_request_bytes_a_preview_answers_what_a_write_would_do(self):
        self.save_hooks(record_hook(template="{new[text]}"), record_hook("second"))
        answers = self.preview({"new": {"id": "r1", "text": "x" * 30000}})
        assert [a["messages"] for a in answers] == [[], []]
        assert answers[0]["reason"] == (
            "request too large (kinto_emailer.max_request_bytes = 20000)"
        )
        assert answers[1]["reason"] == (
            "request too large (kinto_emailer.max_request_bytes = 20000): not built"
        )

    def test_addresses_outside_the_recipient_domains_are_left_out_and_said(self):
        members = ["ldap:bob@example.com", "mallory@elsewhere.org"]
        self.app.put_json(
            "/buckets/b/groups/g", {"data": {"members": members}}, headers=self.headers
        )
        self.save_hooks(record_hook(recipients=["/buckets/b/groups/g"]))
        (answer,) = self.preview({"new": {"id": "r1"}})
        assert answer["messages"][0]["recipients"] == [BOB]
        assert answer["left_out"] == [
            {
                "address": "mallory@elsewhere.org",
                "field": "recipients",
                "reason": "Outside kinto_emailer.recipient_domains (example.com)",
            }
        ]


class HookWritersPreviewTest(PreviewWebTest):
    @classmethod
    def extra_settings(cls):
        return {"kinto_emailer.hook_write_principals": "system.Authenticated"}

    def test_only_hook_writers_may_preview(self):
        self.save_hooks(record_hook())
        self.preview({"new": {"id": "r1"}})
        emailer = self.app.app.registry.emailer
        only_admins = dataclasses.replace(emailer.settings, hook_write_principals=("admins",))
        with mock.patch.object(emailer, "settings", only_admins):
            refused = self.preview({}, status=403)
        assert "kinto_emailer.hook_write_principals" in refused["message"]


class PostgreSQLPreviewTest(PostgreSQLOutboxMixin, PreviewWebTest):
    """The outbox in the request's transaction: a preview adds no row to it, nor a window."""

    def rows(self):
        with psycopg2.connect(self.database_url) as connection:
            with connection.cursor() as cursor:
                cursor.execute("SELECT count(*) FROM kinto_emailer_outbox")
                return cursor.fetchone()[0]

    def test_nothing_is_queued_nor_gathered_in_a_window(self):
        self.save_hooks(record_hook("now"), record_hook(digest=True, digest_window=60))
        answers = self.preview({"new": {"id": "r1"}})
        assert [len(a["messages"]) for a in answers] == [1, 1]
        assert self.rows() == 0
        self.no_email()
        self.create_record()  # A write, for comparison: its email, and its window.
        assert self.rows() == 2


def auth(user):
    token = base64.b64encode(f"{user}:secret-{user}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


class NotifyAuthorPreviewTest(EmailerWebTest):
    """``"notify_author": false`` with the caller as the author (Kinto accounts)."""

    @classmethod
    def setUpClass(cls):
        # The fewest bcrypt rounds: the accounts' passwords are not what these tests prove.
        cls.fast_hashing = mock.patch.object(
            bcrypt, "gensalt", functools.partial(bcrypt.gensalt, 4)
        )
        cls.fast_hashing.start()
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        cls.fast_hashing.stop()

    @classmethod
    def extra_settings(cls):
        return {
            "includes": "kinto.plugins.accounts kinto_emailer",
            "multiauth.policies": "account",
            "multiauth.policy.account.use": (
                "kinto.plugins.accounts.authentication.AccountsAuthenticationPolicy"
            ),
            # Accounts made by an administrator, whose user ids prove their address.
            "account_create_principals": "account:admin",
            "account_write_principals": "account:admin",
            "kinto_emailer.verified_author_prefixes": "account:",
            "bucket_create_principals": "system.Authenticated",
        }

    def test_the_caller_is_the_author(self):
        create_user({"registry": self.app.app.registry}, "admin", "secret-admin")
        body = {"data": {"password": f"secret-{ALICE}"}}
        self.app.put_json(f"/accounts/{ALICE}", body, headers=auth("admin"))
        self.app.put_json("/buckets/b", {"data": {}}, headers=auth(ALICE))
        spare = functools.partial(record_hook, recipients=[ALICE, BOB], notify_author=False)
        hooks = tried(spare(), spare(digest=True))
        self.app.put_json("/buckets/b/collections/c", {"data": hooks}, headers=auth(ALICE))
        response = self.app.post_json(URL, {"data": {"new": {"id": "r1"}}}, headers=auth(ALICE))
        for answer in response.json["data"]:  # The digest spares the author as it completes.
            assert [m["recipients"] for m in answer["messages"]] == [[BOB]]
            assert answer["left_out"] == [
                {"address": ALICE, "field": "recipients", "reason": SPARED_AUTHOR}
            ]


class HTTPChannelsPreviewTest(HTTPChannelsMixin, PreviewWebTest):
    """Slack and webhook hooks, saved or tried, previewed with the emails' path."""

    def test_slack_and_webhook_hooks_show_what_they_would_post(self):
        self.save_hooks(record_hook())
        tried_hooks = {
            "kinto-slack": {"hooks": [{"channel": "#ops", "template": "New: {new[title]}"}]},
            "kinto-webhooks": {"hooks": [{"endpoint": "audit", "action": "delete"}]},
        }
        new = {"id": "r1", "title": "<b>"}
        answers = self.preview({"new": new, "metadata": tried_hooks})
        assert [(a["hook"], a["channel"], a["matched"]) for a in answers] == [
            ("/buckets/b/collections/c#0", "email", True),
            ("/buckets/b/collections/c#slack/0", "slack", True),
            ("/buckets/b/collections/c#webhook/0", "webhook", False),
        ]
        assert answers[1]["messages"] == [{"channel": "#ops", "text": "New: &lt;b&gt;"}]
        assert (
            answers[2]["reason"] == 'Filter "action" is "delete": the change\'s action is "create"'
        )

        tried_hooks["kinto-webhooks"]["hooks"][0].pop("action")
        webhook = self.preview({"new": new, "metadata": tried_hooks})[2]
        [message] = webhook["messages"]
        assert message["endpoint"] == "audit"
        assert message["body"]["type"] == "kinto.record.create"
        assert message["body"]["data"]["new"]["title"] == "<b>"  # JSON: no escaping.
        assert self.app.get("/buckets/b/emails", headers=self.headers).json["data"] == []

    def test_tried_hooks_are_refused_as_a_save_would_refuse_them(self):
        self.create_collection()
        message = self.refusal({"metadata": {"kinto-webhooks": {"hooks": [{"endpoint": "x"}]}}})
        assert message == (
            'data.metadata.kinto-webhooks in body: hooks.0: Unknown endpoint "x" '
            "(endpoints of bucket b: audit)"
        )
