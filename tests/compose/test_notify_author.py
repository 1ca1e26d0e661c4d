"""``"notify_author": false`` spares the author of the change: issue 14, point 1, with the
identity rules of issue 24, attack 9. Only a user id whose prefix the operator declares as
carrying verified addresses (``kinto_emailer.verified_author_prefixes``) names an author;
mailboxes compare with their domain's case ignored and their local part's kept."""

import base64
import functools
from unittest import mock

import bcrypt
import pytest
from kinto.plugins.accounts.scripts import create_user
from pyramid import testing
from pyramid.exceptions import ConfigurationError

import kinto_emailer
from kinto_emailer.config import read_settings
from tests.support import EmailerWebTest, record_hook


hook = functools.partial(
    record_hook,
    "changed by {user_id}",
    template="",
    recipients=["/buckets/b/groups/reviewers"],
    notify_author=False,
)

ALICE, BOB, ADMIN = "alice@example.com", "bob@example.com", "admin"
ACCOUNTS = {
    "includes": "kinto.plugins.accounts kinto_emailer",
    "multiauth.policies": "account",
    "multiauth.policy.account.use": (
        "kinto.plugins.accounts.authentication.AccountsAuthenticationPolicy"
    ),
    "bucket_create_principals": "system.Authenticated",
}


def auth(user):
    token = base64.b64encode(f"{user}:secret-{user}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


class AccountsTest(EmailerWebTest):
    """Kinto accounts (basic auth); bucket ``b`` written by ``writers``, whose group
    ``reviewers`` has ``reviewers`` as members."""

    __test__ = False
    writers = (ALICE, BOB)
    reviewers = (f"account:{ALICE}", f"account:{BOB}")

    @classmethod
    def setUpClass(cls):
        # The fewest bcrypt rounds: the accounts' passwords are not what these tests prove.
        fewest_rounds = functools.partial(bcrypt.gensalt, 4)
        cls.fast_hashing = mock.patch.object(bcrypt, "gensalt", fewest_rounds)
        cls.fast_hashing.start()
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        cls.fast_hashing.stop()

    def create_account(self, user):
        body = {"data": {"password": f"secret-{user}"}}
        self.app.put_json(f"/accounts/{user}", body, status=(200, 201))

    def setUp(self):
        super().setUp()
        for user in self.writers:
            self.create_account(user)
        writer = self.writers[0]
        permissions = {"write": [f"account:{user}" for user in self.writers]}
        self.app.put_json("/buckets/b", {"permissions": permissions}, headers=auth(writer))
        members = {"members": list(self.reviewers)}
        self.app.put_json("/buckets/b/groups/reviewers", {"data": members}, headers=auth(writer))

    def hooks(self, *hooks):
        self.app.put_json(
            "/buckets/b/collections/c",
            {"data": self.hooked(*hooks)},
            headers=auth(self.writers[0]),
        )

    def change_by(self, user):
        self.inbox.clear()
        self.app.post_json("/buckets/b/collections/c/records", {"data": {}}, headers=auth(user))
        self.drain()
        return self.inbox.messages

    def window_by(self, user):
        """The emails of a one-second window of two changes by ``user``."""
        self.inbox.clear()
        for _ in range(2):
            self.app.post_json(
                "/buckets/b/collections/c/records", {"data": {}}, headers=auth(user)
            )
        return self.inbox.wait_for(1, timeout=10)


class VerifiedAuthorTest(AccountsTest):
    """Accounts made by an administrator, who checked each address: the operator declares
    ``account:`` user ids as carrying verified addresses."""

    __test__ = True

    @classmethod
    def extra_settings(cls):
        return {
            **ACCOUNTS,
            "account_create_principals": f"account:{ADMIN}",
            "account_write_principals": f"account:{ADMIN}",
            "kinto_emailer.verified_author_prefixes": "account:",
        }

    def create_account(self, user):
        body = {"data": {"password": f"secret-{user}"}}
        self.app.put_json(f"/accounts/{user}", body, headers=auth(ADMIN), status=(200, 201))

    def setUp(self):
        # As ``kinto create-user`` does: the first administrator, written to storage.
        create_user({"registry": self.app.app.registry}, ADMIN, f"secret-{ADMIN}")
        super().setUp()

    def test_nobody_else_may_create_an_account(self):
        body = {"data": {"password": "secret"}}
        self.app.put_json("/accounts/carol@example.com", body, status=401)

    def test_the_author_is_left_out_and_the_others_get_it(self):
        self.hooks(hook())
        (message,) = self.change_by(ALICE)
        assert message["Subject"] == f"changed by account:{ALICE}"
        assert message.envelope_to == [BOB]
        (message,) = self.change_by(BOB)
        assert message.envelope_to == [ALICE]

    def test_cc_and_bcc_leave_the_author_out_too(self):
        self.hooks(hook(recipients=["carol@example.com"], cc=[ALICE, BOB], bcc=[ALICE]))
        (message,) = self.change_by(ALICE)
        assert message["Cc"] == BOB
        assert sorted(message.envelope_to) == [BOB, "carol@example.com"]

    def test_nobody_left_no_email(self):
        self.hooks(hook(recipients=[ALICE]), hook(recipients=[ALICE], private=True))
        assert self.change_by(ALICE) == []
        assert [m.envelope_to for m in self.change_by(BOB)] == [[ALICE], [ALICE]]

    def test_by_default_and_with_true_the_author_is_notified(self):
        default = {k: v for k, v in hook().items() if k != "notify_author"}
        self.hooks(default, hook(notify_author=True))
        assert [sorted(m.envelope_to) for m in self.change_by(ALICE)] == [[ALICE, BOB]] * 2

    def test_a_digest_spares_its_author(self):
        self.hooks(hook(digest=True, template="{count}"))
        (message,) = self.change_by(ALICE)
        assert message.envelope_to == [BOB]

    def test_a_time_window_spares_its_author(self):
        self.hooks(hook(digest=True, digest_window=1, template="{count}"))
        (message,) = self.window_by(ALICE)
        assert message.get_content().startswith("2\r\n")  # One email for both changes.
        assert message.envelope_to == [BOB]

    def test_the_domain_compares_without_case_the_local_part_as_it_is(self):
        # Alice's mailbox; then another one: a local part's case may matter (RFC 5321, 2.4).
        self.hooks(
            hook(recipients=["alice@EXAMPLE.Com", BOB]), hook(recipients=["ALICE@example.com"])
        )
        first, second = self.change_by(ALICE)
        assert first.envelope_to == [BOB]
        assert second.envelope_to == ["ALICE@example.com"]

    def test_notify_author_must_be_a_boolean(self):
        response = self.app.put_json(
            "/buckets/b/collections/c",
            {"data": self.hooked(hook(notify_author="no"))},
            headers=auth(ALICE),
            status=400,
        )
        assert '"notify_author" must be true or false' in response.json["message"]


MALLORY = "mallory"


class SelfRegisteredAuthorTest(AccountsTest):
    """Anyone may create an account, under any name: an account id proves no address, and
    ``account:`` is not declared (the default: no prefix is)."""

    __test__ = True
    # Mallory registered the reviewer's address as her account's name; the real bob is a
    # reviewer by his address, as is alice.
    writers = (BOB, "ALICE@EXAMPLE.COM", ALICE)
    reviewers = (f"ldap:{BOB}", f"ldap:{ALICE}")

    @classmethod
    def extra_settings(cls):
        return {**ACCOUNTS, "account_create_principals": "system.Everyone"}

    def test_an_account_named_after_a_reviewer_does_not_hide_the_change_from_them(self):
        self.hooks(hook())
        (message,) = self.change_by(BOB)  # Mallory, as ``account:bob@example.com``.
        assert message["Subject"] == f"changed by account:{BOB}"
        assert sorted(message.envelope_to) == [ALICE, BOB]

    def test_an_account_in_capitals_spares_nobody(self):
        self.hooks(hook(recipients=[ALICE, BOB]))
        (message,) = self.change_by("ALICE@EXAMPLE.COM")  # Not alice's account.
        assert message.envelope_to == [ALICE, BOB]

    def test_a_digest_spares_no_unproven_author(self):
        self.hooks(hook(digest=True, template="{count}"))
        (message,) = self.change_by(BOB)
        assert sorted(message.envelope_to) == [ALICE, BOB]

    def test_a_time_window_spares_no_unproven_author(self):
        self.hooks(hook(digest=True, digest_window=1, template="{count}"))
        (message,) = self.window_by(BOB)
        assert sorted(message.envelope_to) == [ALICE, BOB]

    def test_the_settings_table_names_no_prefix_by_default(self):
        assert self.app.app.registry.emailer.settings.verified_author_prefixes == ()


# The setting.


def test_verified_author_prefixes_are_read_as_a_list():
    settings = read_settings({"kinto_emailer.verified_author_prefixes": "ldap:\noidc-corp:"})
    assert settings.verified_author_prefixes == ("ldap:", "oidc-corp:")


@pytest.mark.parametrize("value", ["ldap", "ldap:alice", "system.Everyone", ":", "a b:"])
def test_a_prefix_that_is_not_a_policy_name_and_a_colon_stops_start_up(value):
    with pytest.raises(ConfigurationError) as error:
        read_settings({"kinto_emailer.verified_author_prefixes": value})
    first = value.split()[0]
    assert str(error.value) == (
        "Setting 'kinto_emailer.verified_author_prefixes' must list user id prefixes, each an "
        f"authentication policy's name and a colon such as 'ldap:', got {first!r}."
    )


@pytest.mark.parametrize("anyone", ["system.Everyone", "system.Authenticated"])
def test_self_registered_accounts_can_not_be_declared_verified(anyone):
    settings = {
        "kinto_emailer.verified_author_prefixes": "ldap: account:",
        "account_create_principals": f"account:admin {anyone}",
    }
    config = testing.setUp(settings=settings)
    try:
        with pytest.raises(ConfigurationError) as error:
            kinto_emailer.includeme(config)
    finally:
        testing.tearDown()
    assert str(error.value) == (
        "Setting 'kinto_emailer.verified_author_prefixes' lists 'account:', but "
        f"'account_create_principals' lets {anyone} create accounts named after any "
        "address: remove 'account:', or let only administrators create accounts."
    )
