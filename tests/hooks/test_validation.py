"""validation.py: a hook's author can't exceed their rights.

Real principals through the real app: basicauth users, Kinto's permissions and groups.
Alice owns the bucket ``corp``; Bob may write one of its collections and nothing else.
"""

import pytest
from kinto.core.testing import get_user_headers
from pyramid.exceptions import ConfigurationError

from kinto_emailer.config import read_settings
from tests.support import EmailerWebTest, hooked
from tests.support import record_hook as hook


BOB = get_user_headers("bob")


class AuthorsTest(EmailerWebTest):
    def setUp(self):
        super().setUp()
        self.drain()
        self.inbox.clear()
        self.bob_id = self.app.get("/", headers=BOB).json["user"]["id"]
        self.create_bucket("corp")
        self.group("board", ["ldap:ceo@example.com", "ldap:cfo@example.com"])
        self.collection("c", permissions={"write": [self.bob_id]})

    def group(self, group_id, members, permissions=None):
        body = {"data": {"members": members}, "permissions": permissions or {}}
        self.app.put_json(f"/buckets/corp/groups/{group_id}", body, headers=self.headers)

    def collection(
        self, collection_id, data=None, permissions=None, headers=None, status=(200, 201)
    ):
        body = {"data": data or {}, "permissions": permissions or {}}
        return self.app.put_json(
            f"/buckets/corp/collections/{collection_id}",
            body,
            headers=headers or self.headers,
            status=status,
        )

    def bob_saves(self, *saved, status=200, collection_id="c"):
        return self.app.patch_json(
            f"/buckets/corp/collections/{collection_id}",
            {"data": hooked(*saved)},
            headers=BOB,
            status=status,
        )

    def no_email(self):
        self.drain()
        assert self.inbox.messages == [], [m["Subject"] for m in self.inbox.messages]

    def one_email(self):
        self.drain()
        messages = self.inbox.wait_for(1)
        assert len(messages) == 1, [m["Subject"] for m in messages]
        return messages[0]

    def stored_hooks(self, collection_id="c"):
        data = self.app.get(f"/buckets/corp/collections/{collection_id}", headers=self.headers)
        return data.json["data"].get("kinto-emailer")


class GroupsTest(AuthorsTest):
    """Point 2: a hook names only groups its author can read, and no writer-chosen group."""

    def test_bob_can_not_email_a_group_he_can_not_read(self):
        self.app.get("/buckets/corp/groups/board", headers=BOB, status=403)
        response = self.bob_saves(
            hook(recipients=["/buckets/corp/groups/board"], cc=["bob@example.com"]), status=403
        )
        assert response.json["errno"] == 121
        assert response.json["message"] == (
            'Hook 0 names the group /buckets/corp/groups/board in "recipients": '
            "you can't read that group, so your hooks can't email its members"
        )
        assert self.stored_hooks() is None
        self.create_record("corp", "c")
        self.no_email()

    def test_bob_can_email_a_group_he_can_read(self):
        self.group("team", ["ldap:dave@example.com"], permissions={"read": [self.bob_id]})
        self.bob_saves(hook(recipients=["/buckets/corp/groups/team"]))
        self.create_record("corp", "c")
        assert self.one_email().envelope_to == ["dave@example.com"]

    def test_every_address_field_is_checked(self):
        for field in ("cc", "bcc", "reply_to"):
            response = self.bob_saves(hook(**{field: ["/buckets/corp/groups/board"]}), status=403)
            assert f'in "{field}": you can\'t read that group' in response.json["message"]

    def test_a_group_that_does_not_exist_needs_read_on_the_bucket(self):
        response = self.bob_saves(hook(recipients=["/buckets/corp/groups/later"]), status=403)
        assert "/buckets/corp/groups/later" in response.json["message"]
        # Alice reads the whole bucket: she may name a group she creates afterwards.
        self.collection("c", data=hooked(hook(recipients=["/buckets/corp/groups/later"])))

    def test_a_collection_placeholder_is_resolved_for_a_collection(self):
        self.group("c-team", ["ldap:dave@example.com"], permissions={"read": [self.bob_id]})
        self.bob_saves(hook(recipients=["/buckets/{bucket_id}/groups/{collection_id}-team"]))
        self.create_record("corp", "c")
        assert self.one_email().envelope_to == ["dave@example.com"]

    def test_hooks_saved_by_someone_else_are_not_checked_against_bob(self):
        alice_hook = hook(recipients=["/buckets/corp/groups/board"], subject="alice's")
        self.collection("c", data=hooked(alice_hook), permissions={"write": [self.bob_id]})
        self.bob_saves(alice_hook, hook(subject="bob's"))
        # Changing Alice's hook makes it Bob's: checked.
        self.bob_saves(
            {**alice_hook, "cc": ["bob@example.com"]}, hook(subject="bob's"), status=403
        )

    def test_record_data_never_chooses_a_group(self):
        for uri in (
            "/buckets/corp/groups/{new[team]}",
            "/buckets/corp/groups/{old[team]}",
            "/buckets/corp/groups/{id}",
            "/buckets/corp/groups/{record_id}",
            "/buckets/corp/groups/{user_id}",
        ):
            response = self.collection("x", data=hooked(hook(recipients=[uri])), status=400)
            placeholder = uri.rsplit("/", 1)[1]
            assert response.json["message"] == (
                "data.kinto-emailer in body: hooks.0.recipients: "
                f'Placeholder "{placeholder}" not allowed in group {uri} in "recipients": '
                "a group URI may use {bucket_id} and {collection_id} only"
            )

    def test_stored_group_uris_with_record_data_email_nobody(self):
        self.group("board-team", ["ldap:ceo@example.com"])
        self.collection("c", data=hooked(hook(subject="fine")))
        # Saved before the check existed.
        self.app.app.registry.storage.update(
            resource_name="collection",
            parent_id="/buckets/corp",
            object_id="c",
            obj={"id": "c", **hooked(hook(recipients=["/buckets/corp/groups/{new[team]}"]))},
        )
        self.create_record("corp", "c", data={"team": "board-team"})
        self.no_email()


class SendersTest(AuthorsTest):
    """Point 3: a hook sends from the server's domain, or from kinto_emailer.sender_domains."""

    @classmethod
    def extra_settings(cls):
        return {"kinto_emailer.sender_domains": "partner.org"}

    def test_a_foreign_sender_is_refused(self):
        response = self.bob_saves(hook(sender="CEO <ceo@corp.example>"), status=400)
        assert response.json["message"] == (
            "data.kinto-emailer in body: hooks.0: "
            "Sender CEO <ceo@corp.example> not allowed: use an address at example.com, "
            "partner.org (mail.default_sender and kinto_emailer.sender_domains); "
            "other domains fail SPF and DMARC"
        )

    def test_a_look_alike_domain_is_refused(self):
        for sender in ("x@notexample.com", "x@example.com.evil.org", "x@partner.org.example"):
            self.bob_saves(hook(sender=sender), status=400)

    def test_senders_at_the_server_domain_and_the_listed_ones_are_accepted(self):
        self.bob_saves(
            hook(sender="Team <team@example.com>", subject="server"),
            hook(sender="news@lists.example.com", subject="below"),
            hook(sender="Partner <info@mail.PARTNER.org>", subject="listed"),
        )
        self.create_record("corp", "c")
        self.drain()
        senders = sorted(m["From"] for m in self.inbox.wait_for(3))
        assert senders == [
            "Partner <info@mail.PARTNER.org>",
            "Team <team@example.com>",
            "news@lists.example.com",
        ]


class RecipientsTest(AuthorsTest):
    """Point 4: recipients only at kinto_emailer.recipient_domains; reply_to is free."""

    @classmethod
    def extra_settings(cls):
        return {"kinto_emailer.recipient_domains": "example.com example.org"}

    def test_listed_addresses_outside_the_domains_are_refused(self):
        response = self.bob_saves(
            hook(recipients=["alice@example.com", "eve@evil.example", "Mallory <m@x.net>"]),
            status=400,
        )
        assert response.json["message"] == (
            "data.kinto-emailer in body: hooks.0.recipients: "
            "Recipients outside kinto_emailer.recipient_domains: eve@evil.example, "
            "Mallory <m@x.net> (allowed: example.com, example.org)"
        )
        for field in ("cc", "bcc"):
            response = self.bob_saves(hook(**{field: ["eve@evil.example"]}), status=400)
            assert (
                f'Recipients outside kinto_emailer.recipient_domains in "{field}": '
                "eve@evil.example"
            ) in response.json["message"]

    def test_addresses_at_or_below_the_domains_and_any_reply_to_are_accepted(self):
        self.bob_saves(
            hook(
                recipients=["a@example.com", "b@eu.example.org"],
                reply_to=["support@elsewhere.net"],
            )
        )

    def test_group_members_outside_the_domains_are_left_out_and_counted(self):
        self.group(
            "team",
            ["ldap:ceo@example.com", "ldap:spy@evil.example", "m@x.net", "ldap:cfo@example.org"],
            permissions={"read": [self.bob_id]},
        )
        self.bob_saves(hook(recipients=["/buckets/corp/groups/team"]))
        with self.assertLogs("kinto_emailer.compose", "WARNING") as logs:
            self.create_record("corp", "c")
        assert self.one_email().envelope_to == ["ceo@example.com", "cfo@example.org"]
        assert logs.output == [
            "WARNING:kinto_emailer.compose:Hook /buckets/corp/collections/c#0: "
            "2 recipients outside kinto_emailer.recipient_domains left out"
        ]


class HookWritePrincipalsTest(AuthorsTest):
    """Point 1: only kinto_emailer.hook_write_principals change hooks; the rest stays open."""

    @classmethod
    def extra_settings(cls):
        return {"kinto_emailer.hook_write_principals": "/buckets/admins/groups/hook-writers"}

    def setUp(self):
        super().setUp()
        alice_id = self.app.get("/", headers=self.headers).json["user"]["id"]
        self.create_bucket("admins")
        self.app.put_json(
            "/buckets/admins/groups/hook-writers",
            {"data": {"members": [alice_id]}},
            headers=self.headers,
        )
        self.app.patch_json(
            "/buckets/corp",
            {"permissions": {"collection:create": [self.bob_id]}},
            headers=self.headers,
        )

    FORBIDDEN = (
        'Changing "kinto-emailer" needs one of the principals of '
        "kinto_emailer.hook_write_principals"
    )

    def test_bob_gets_a_403_on_hooks_and_a_201_on_a_plain_collection(self):
        response = self.collection("new", data=hooked(hook()), headers=BOB, status=403)
        assert response.json["message"] == self.FORBIDDEN
        self.app.get("/buckets/corp/collections/new", headers=self.headers, status=404)
        self.collection("plain", data={"title": "mine"}, headers=BOB, status=201)

    def test_bob_can_neither_change_nor_remove_hooks(self):
        self.collection("c", data=hooked(hook(subject="alice's")))
        previous = self.stored_hooks()
        self.bob_saves(hook(subject="bob's"), status=403)
        response = self.app.put_json(
            "/buckets/corp/collections/c", {"data": {"title": "no hooks"}}, headers=BOB, status=403
        )
        assert response.json["message"] == self.FORBIDDEN
        assert self.stored_hooks() == previous
        self.create_record("corp", "c")
        assert self.one_email()["Subject"] == "alice's"

    def test_bob_still_writes_the_rest_of_a_hooked_collection(self):
        self.collection("c", data=hooked(hook()), permissions={"write": [self.bob_id]})
        self.app.patch_json(
            "/buckets/corp/collections/c", {"data": {"title": "renamed"}}, headers=BOB
        )
        self.create_record("corp", "c", data={})

    def test_a_member_of_the_principals_writes_hooks(self):
        self.collection("new", data=hooked(hook()))


@pytest.mark.parametrize(
    "key, value",
    [
        ("kinto_emailer.sender_domains", "example.com @evil.example"),
        ("kinto_emailer.recipient_domains", "alice@example.com"),
        ("kinto_emailer.recipient_domains", "-bad-.example"),
    ],
)
def test_domain_settings_must_list_domain_names(key, value):
    with pytest.raises(ConfigurationError) as error:
        read_settings({key: value})
    bad = value.split()[-1]
    assert str(error.value) == f"Setting {key!r} must list domain names, got {bad!r}."


def test_domain_settings_are_lists_compared_in_lowercase_ascii():
    settings = read_settings(
        {
            "kinto_emailer.sender_domains": "Example.COM\n  bücher.example",
            "kinto_emailer.hook_write_principals": "account:admin /buckets/a/groups/g",
        }
    )
    assert settings.sender_domains == ("example.com", "xn--bcher-kva.example")
    assert settings.recipient_domains == ()
    assert settings.hook_write_principals == ("account:admin", "/buckets/a/groups/g")
