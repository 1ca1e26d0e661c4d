"""Issue 14, point 3: one-click unsubscribe on private hooks, through the real app and the
real SMTP server."""

import base64
import json
from urllib.parse import urlsplit

import pytest
from kinto.core.testing import get_user_headers

from tests.support import HookWebTest, TemporaryDatabase, postgresql_settings


def private_hook(**fields):
    return {
        "resource_name": "record",
        "private": True,
        "subject": "changed {id}",
        "template": "Stop these: {unsubscribe_url}",
        "recipients": ["bob@example.com", "Carol <carol@example.com>"],
        **fields,
    }


def path_of(url):
    # The test app adds the API prefix itself.
    return urlsplit(url).path.removeprefix("/v1")


class PrivateHookWebTest(HookWebTest):
    """The app with a secret to sign links, and collection ``c`` with a private hook."""

    @classmethod
    def extra_settings(cls):
        return {"userid_hmac_secret": "unsubscribe-tests"}

    def setUp(self):
        super().setUp()
        self.save_hooks(private_hook())

    def by_recipient(self, count):
        return {m["To"].addresses[0].addr_spec: m for m in self.emails(count)}

    def link(self, address):
        self.create_record()
        link = self.by_recipient(2)[address]["List-Unsubscribe"]
        self.inbox.clear()
        return link.strip("<>")

    def recipients_of_a_change(self, count):
        self.inbox.clear()
        self.create_record()
        return sorted(self.by_recipient(count))


class UnsubscribeTest(PrivateHookWebTest):
    def test_each_email_carries_its_own_one_click_link(self):
        self.create_record()
        mails = self.by_recipient(2)
        links = {a: m["List-Unsubscribe"] for a, m in mails.items()}
        assert links["bob@example.com"] != links["carol@example.com"]
        for address, message in mails.items():
            assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
            url = links[address].strip("<>")
            assert links[address] == f"<{url}>"
            assert url.startswith("https://localhost/v1/emailer/unsubscribe/")
            assert message.get_content().strip() == f"Stop these: {url}"

    def test_get_shows_a_button_and_does_not_unsubscribe(self):
        url = self.link("bob@example.com")
        page = self.app.get(path_of(url))
        assert page.content_type == "text/html"
        assert '<form method="post">' in page.text
        assert "bob@example.com" in page.text and "/buckets/b/collections/c" in page.text
        assert self.recipients_of_a_change(2) == ["bob@example.com", "carol@example.com"]

    def test_post_unsubscribes_that_address_from_that_owner_only(self):
        # A bucket hook and another collection's hook email bob too.
        bucket_hook = private_hook(recipients=["bob@example.com"], subject="bucket")
        self.app.patch_json("/buckets/b", {"data": self.hooked(bucket_hook)}, headers=self.headers)
        self.create_collection(collection_id="d", data=self.hooked(private_hook(subject="d")))
        url = self.link("bob@example.com")

        # As a mailbox provider does it (RFC 8058): no credentials, a form body.
        response = self.app.post(
            path_of(url),
            "List-Unsubscribe=One-Click",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert response.status_code == 200
        assert "bob@example.com" in response.text

        assert self.recipients_of_a_change(1) == ["carol@example.com"]
        self.inbox.clear()
        self.create_record(collection_id="d")
        assert sorted(self.by_recipient(2)) == ["bob@example.com", "carol@example.com"]
        self.inbox.clear()
        self.create_collection(collection_id="plain")
        self.create_record(collection_id="plain")
        assert [m["Subject"] for m in self.emails(1)] == ["bucket"]  # The bucket's hook.

    def test_a_non_private_hook_of_the_owner_leaves_the_address_out_too(self):
        self.app.post(path_of(self.link("bob@example.com")), "List-Unsubscribe=One-Click")
        shared = private_hook(private=False, template="{id}", cc=["bob@example.com"])
        self.create_collection(data=self.hooked(shared), status=200)
        self.inbox.clear()
        self.create_record()
        (message,) = self.emails(1)
        assert message.envelope_to == ["carol@example.com"]

    def test_forged_altered_and_other_address_tokens_are_refused(self):
        url = self.link("bob@example.com")
        token = path_of(url).rsplit("/", 1)[1]
        payload, signature = token.split(".")
        flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
        carol = json.dumps(
            ["carol@example.com", "/buckets/b/collections/c"], separators=(",", ":")
        )
        carol = base64.urlsafe_b64encode(carol.encode()).rstrip(b"=").decode()
        for bad in ("forged.token", f"{payload}.{flipped}", f"{payload}x.{signature}",
                    f"{carol}.{signature}"):  # fmt: skip
            for method in (self.app.post, self.app.get):
                response = method(f"/emailer/unsubscribe/{bad}", status=400)
                assert response.json["message"] == (
                    "This unsubscribe link is not valid: it was not made by this server, "
                    "or changed"
                )
        assert self.recipients_of_a_change(2) == ["bob@example.com", "carol@example.com"]

    def test_bucket_writers_list_and_undo_opt_outs(self):
        self.app.post(path_of(self.link("bob@example.com")), "List-Unsubscribe=One-Click")
        listed = self.app.get("/buckets/b/emailer/optouts", headers=self.headers).json["data"]
        assert [(o["address"], o["owner"]) for o in listed] == [
            ("bob@example.com", "/buckets/b/collections/c")
        ]
        optout = f"/buckets/b/emailer/optouts/{listed[0]['id']}"
        mallory = get_user_headers("mallory")
        self.app.get("/buckets/b/emailer/optouts", status=401)
        self.app.get("/buckets/b/emailer/optouts", headers=mallory, status=403)
        self.app.delete(optout, headers=mallory, status=403)
        assert self.recipients_of_a_change(1) == ["carol@example.com"]

        self.app.delete(optout, headers=self.headers)
        self.app.delete(optout, headers=self.headers, status=404)
        assert self.app.get("/buckets/b/emailer/optouts", headers=self.headers).json["data"] == []
        assert self.recipients_of_a_change(2) == ["bob@example.com", "carol@example.com"]


class TestOptOutLifetime(PrivateHookWebTest):
    """Issue 24, attack 5: opt-outs go with their bucket or collection, and a link to hooks
    that are gone writes nothing (410). On Kinto's memory storage here, PostgreSQL below."""

    def unsubscribe(self, url, status=200):
        return self.app.post(path_of(url), "List-Unsubscribe=One-Click", status=status)

    def optouts(self, bucket_id="b"):
        listed = self.app.get(f"/buckets/{bucket_id}/emailer/optouts", headers=self.headers)
        return [(o["address"], o["owner"]) for o in listed.json["data"]]

    def assert_gone(self, url, owner):
        for method in (self.app.get, self.app.post):
            response = method(path_of(url), status=410)
            assert response.json["errno"] == 111
            assert response.json["message"] == (
                f"This unsubscribe link no longer applies: the hooks of {owner} are gone"
            )

    def test_a_link_posted_after_its_bucket_was_deleted_is_gone_and_writes_nothing(self):
        url = self.link("bob@example.com")
        self.unsubscribe(url)
        self.app.delete("/buckets/b", headers=self.headers)
        self.assert_gone(url, "/buckets/b/collections/c")

        self.create_bucket()
        assert self.optouts() == []
        self.save_hooks(private_hook())
        assert self.optouts() == []
        assert self.recipients_of_a_change(2) == ["bob@example.com", "carol@example.com"]

    def test_a_deleted_collection_takes_its_opt_outs_and_leaves_the_others(self):
        bucket_hook = private_hook(recipients=["bob@example.com"], subject="bucket")
        self.app.patch_json("/buckets/b", {"data": self.hooked(bucket_hook)}, headers=self.headers)
        self.create_collection(collection_id="d", data=self.hooked(private_hook(subject="d")))
        self.unsubscribe(self.link("bob@example.com"))
        self.inbox.clear()
        self.create_record(collection_id="d")
        self.unsubscribe(self.by_recipient(2)["bob@example.com"]["List-Unsubscribe"].strip("<>"))
        self.create_collection(collection_id="plain")
        self.inbox.clear()
        self.create_record(collection_id="plain")
        self.unsubscribe(self.one_email()["List-Unsubscribe"].strip("<>"))
        assert sorted(self.optouts()) == [
            ("bob@example.com", "/buckets/b"),
            ("bob@example.com", "/buckets/b/collections/c"),
            ("bob@example.com", "/buckets/b/collections/d"),
        ]

        self.app.delete("/buckets/b/collections/c", headers=self.headers)
        assert sorted(self.optouts()) == [
            ("bob@example.com", "/buckets/b"),
            ("bob@example.com", "/buckets/b/collections/d"),
        ]
        self.save_hooks(private_hook())
        assert self.recipients_of_a_change(2) == ["bob@example.com", "carol@example.com"]

    def test_a_link_to_hooks_removed_from_their_collection_is_gone(self):
        url = self.link("bob@example.com")
        self.create_collection(data={"title": "no hooks any more"}, status=200)
        self.assert_gone(url, "/buckets/b/collections/c")
        assert self.optouts() == []


@pytest.fixture(scope="session")
def optouts_database():
    with TemporaryDatabase() as database:
        TestOptOutLifetimeOnPostgreSQLStorage.database_url = database.url
        yield database


@pytest.mark.postgresql
@pytest.mark.usefixtures("optouts_database")
class TestOptOutLifetimeOnPostgreSQLStorage(TestOptOutLifetime):
    database_url = None  # Set by the session's database fixture, before the app starts.

    @classmethod
    def extra_settings(cls):
        return {**super().extra_settings(), **postgresql_settings(cls.database_url)}


class UnsubscribeSchemaTest(HookWebTest):
    def test_unsubscribe_url_needs_a_private_hook(self):
        message = self.refused(private_hook(private=False))
        assert 'Placeholder "{unsubscribe_url}" in "template" needs "private": true' in message
        message = self.refused(private_hook(digest=True, item_template="{unsubscribe_url}"))
        assert 'Placeholder "{unsubscribe_url}" can\'t be used in "item_template"' in message


class TokensStayInBodiesTest(PrivateHookWebTest):
    """Issue 24, attack 10: a recipient's token never shows where writers read."""

    REFUSED = (
        'Placeholder "{{unsubscribe_url}}" can\'t be used in "{field}": it carries a '
        "recipient's own unsubscribe token, which belongs in the body only (subjects show in "
        'the status views); put it in "template" or "html_template"'
    )

    def setUp(self):
        super().setUp()
        self.bob = get_user_headers("bob")
        bob_id = self.app.get("/", headers=self.bob).json["user"]["id"]
        self.app.patch_json(
            "/buckets/b/collections/c", {"permissions": {"write": [bob_id]}}, headers=self.headers
        )

    def test_a_collection_writer_cant_put_the_link_in_a_subject(self):
        hook = private_hook(subject="changed {unsubscribe_url}")
        response = self.app.put_json(
            "/buckets/b/collections/c", {"data": self.hooked(hook)}, headers=self.bob, status=400
        )
        assert response.json["errno"] == 107
        assert response.json["message"] == (
            "data.kinto-emailer in body: hooks.0: " + self.REFUSED.format(field="subject")
        )

    def test_nor_in_an_item_template_and_bodies_keep_it(self):
        digest = private_hook(digest=True, item_template="{id} {unsubscribe_url}")
        assert self.refused(digest).endswith(self.REFUSED.format(field="item_template"))
        html = private_hook(html_template='<a href="{unsubscribe_url}">stop</a>')
        self.save_hooks(html, status=200)

    def test_the_status_views_never_show_a_recipients_token(self):
        # Saved before validation refused it: the subject renders without the token still.
        hooked = self.hooked(private_hook(subject="changed {unsubscribe_url}"))
        self.store_unchecked(hooked, collection_id="c")
        self.create_record()
        mails = self.by_recipient(2)
        tokens = [m["List-Unsubscribe"].strip("<>").rsplit("/", 1)[1] for m in mails.values()]
        assert all(m["Subject"] == "changed {unsubscribe_url}" for m in mails.values())
        for headers in (self.headers, self.bob):  # The bucket's writer, the collection's.
            listed = self.app.get("/buckets/b/emails", headers=headers)
            assert len(listed.json["data"]) == 2
            assert not [token for token in tokens if token in listed.text]
            for email in listed.json["data"]:
                one = self.app.get(f"/buckets/b/emails/{email['id']}", headers=headers)
                assert not [token for token in tokens if token in one.text]


class NoSecretTest(HookWebTest):
    def test_without_a_secret_emails_carry_no_link(self):
        self.save_hooks(private_hook(recipients=["bob@example.com"]))
        self.create_record()
        message = self.one_email()
        assert message["List-Unsubscribe"] is None
        assert message.get_content().strip() == "Stop these:"
