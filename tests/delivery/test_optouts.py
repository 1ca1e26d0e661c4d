"""Opt-outs applied at delivery (issue 23): an unsubscribe made after a write and before the
worker sends its email still leaves that address out, through the real app, on the memory
and PostgreSQL outboxes (and Maildir, which keeps no status)."""

from kinto_emailer.compose import optouts
from tests.support import ALICE, HookWebTest, MaildirQueueMixin, per_outbox, record_hook


BOB, CAROL = "bob@example.com", "carol@example.com"
OWNER = "/buckets/b/collections/c"


class OptOutsAtDeliveryScenarios:
    @classmethod
    def extra_settings(cls):
        return {**super().extra_settings(), "userid_hmac_secret": "optouts-at-delivery"}

    def setUp(self):
        super().setUp()
        if self.outbox_name != "maildir":  # Whose files are the class's own.
            self.addCleanup(self.app.app.registry.emailer.delivery.outbox.flush)
        self.save_hooks(
            record_hook(subject="{id}", recipients=[BOB, f"Carol <{CAROL}>"], cc=[ALICE])
        )

    def written_while_the_worker_is_busy(self, record_id):
        """Write ``record_id`` while the worker is held sending another email, so that its
        email waits in the outbox; returns once it was written."""
        self.inbox.gate.clear()
        self.addCleanup(self.inbox.gate.set)
        self.create_record(data={"id": "blocker"})
        assert self.inbox.wait_started(1)  # The worker is in the blocker's DATA.
        self.create_record(data={"id": record_id})

    def unsubscribe(self, address, owner=OWNER):
        """As a mailbox provider does it with the link of a private hook's email."""
        key = self.app.app.registry.emailer.settings.unsubscribe_key
        self.app.post(f"/emailer/unsubscribe/{optouts.token(key, address, owner)}")

    def delivered(self, count):
        self.inbox.gate.set()
        return {m["Subject"]: m for m in self.emails(count)}

    def test_an_unsubscribe_after_the_write_leaves_that_address_out_of_the_waiting_email(self):
        self.written_while_the_worker_is_busy("r1")
        self.unsubscribe(BOB.upper())  # Whatever the case of the address.
        emails = self.delivered(2)
        # The blocker was claimed before the unsubscribe: it went to bob.
        assert sorted(emails["blocker"].envelope_to) == sorted([ALICE, BOB, CAROL])
        waiting = emails["r1"]
        assert sorted(waiting.envelope_to) == [ALICE, CAROL]
        assert [a.addr_spec for a in waiting["To"].addresses] == [CAROL]  # Headers too.
        assert BOB not in str(waiting["Cc"])

    def test_only_a_cc_unsubscribed_still_sends_to_the_others(self):
        self.written_while_the_worker_is_busy("r1")
        self.unsubscribe(ALICE)
        waiting = self.delivered(2)["r1"]
        assert sorted(waiting.envelope_to) == [BOB, CAROL]
        assert waiting["Cc"] is None

    def test_an_email_whose_recipients_all_unsubscribed_is_cancelled_and_says_why(self):
        self.written_while_the_worker_is_busy("r1")
        self.unsubscribe(BOB)
        self.unsubscribe(CAROL)
        assert list(self.delivered(1)) == ["blocker"]
        outbox = self.app.app.registry.emailer.delivery.outbox
        if not outbox.keeps_status:
            return
        listed = self.app.get("/buckets/b/emails?status=cancelled", headers=self.headers)
        (cancelled,) = listed.json["data"]
        assert cancelled["error"] == f"every recipient unsubscribed from the hooks of {OWNER}"

    def test_the_opt_outs_of_another_owner_change_nothing(self):
        self.written_while_the_worker_is_busy("r1")
        self.app.patch_json(
            "/buckets/b",
            {"data": self.hooked(record_hook(collection_id="other"))},
            headers=self.headers,
        )
        self.unsubscribe(BOB, "/buckets/b")  # From the bucket's hooks.
        waiting = self.delivered(2)["r1"]
        assert sorted(waiting.envelope_to) == [ALICE, BOB, CAROL]


per_outbox(OptOutsAtDeliveryScenarios, HookWebTest, globals())


class TestOptOutsAtDeliveryOnMaildirOutbox(
    MaildirQueueMixin, OptOutsAtDeliveryScenarios, HookWebTest
):
    """Emails read back from Maildir files: rendered already, their envelope narrows, and
    one is cancelled when nobody is left in it (its headers can't tell ``To:`` from ``Cc:``)."""

    outbox_name = "maildir"

    def test_an_email_whose_recipients_all_unsubscribed_is_cancelled_and_says_why(self):
        self.written_while_the_worker_is_busy("r1")
        for address in (ALICE, BOB, CAROL):
            self.unsubscribe(address)
        assert list(self.delivered(1)) == ["blocker"]

    def test_an_unsubscribe_after_the_write_leaves_that_address_out_of_the_waiting_email(self):
        self.written_while_the_worker_is_busy("r1")
        self.unsubscribe(BOB)
        waiting = self.delivered(2)["r1"]
        assert sorted(waiting.envelope_to) == [ALICE, CAROL]

    def test_only_a_cc_unsubscribed_still_sends_to_the_others(self):
        self.written_while_the_worker_is_busy("r1")
        self.unsubscribe(ALICE)
        assert sorted(self.delivered(2)["r1"].envelope_to) == [BOB, CAROL]
