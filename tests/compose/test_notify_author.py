"""Issue 14, point 1: ``"notify_author": false`` spares the author of the change, with Kinto
accounts whose ids are addresses."""

import base64
import functools
from unittest import mock

import bcrypt

from tests.support import EmailerWebTest, record_hook


hook = functools.partial(
    record_hook,
    "changed by {user_id}",
    template="",
    recipients=["/buckets/b/groups/reviewers"],
    notify_author=False,
)

ALICE, BOB = "alice@example.com", "bob@example.com"


def auth(user):
    token = base64.b64encode(f"{user}:secret-{user}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


class NotifyAuthorTest(EmailerWebTest):
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

    @classmethod
    def extra_settings(cls):
        return {
            "includes": "kinto.plugins.accounts kinto_emailer",
            "multiauth.policies": "account",
            "multiauth.policy.account.use": (
                "kinto.plugins.accounts.authentication.AccountsAuthenticationPolicy"
            ),
            "account_create_principals": "system.Everyone",
            "bucket_create_principals": "system.Authenticated",
        }

    def setUp(self):
        super().setUp()
        for user in (ALICE, BOB):
            body = {"data": {"password": f"secret-{user}"}}
            self.app.put_json(f"/accounts/{user}", body, status=(200, 201))
        permissions = {"write": [f"account:{ALICE}", f"account:{BOB}"]}
        self.app.put_json("/buckets/b", {"permissions": permissions}, headers=auth(ALICE))
        members = {"members": [f"account:{ALICE}", f"account:{BOB}"]}
        self.app.put_json("/buckets/b/groups/reviewers", {"data": members}, headers=auth(ALICE))

    def hooks(self, *hooks):
        self.app.put_json(
            "/buckets/b/collections/c", {"data": self.hooked(*hooks)}, headers=auth(ALICE)
        )

    def change_by(self, user):
        self.inbox.clear()
        self.app.post_json("/buckets/b/collections/c/records", {"data": {}}, headers=auth(user))
        self.drain()
        return self.inbox.messages

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

    def test_notify_author_must_be_a_boolean(self):
        response = self.app.put_json(
            "/buckets/b/collections/c",
            {"data": self.hooked(hook(notify_author="no"))},
            headers=auth(ALICE),
            status=400,
        )
        assert '"notify_author" must be true or false' in response.json["message"]
