"""Metadata written for kinto-emailer 4.x keeps its meaning (README: Coming from 4.x)."""

from tests.support import EmailerWebTest


# The shapes of the 4.x README: filters, a ^ pattern, a sender, a group URI with a placeholder.
HOOK_4X = {
    "resource_name": "record",
    "action": "create",
    "collection_id": "^(?!normandy-recipes$)",
    "subject": "An action was performed",
    "sender": "Kinto team <developers@kinto.example>",
    "template": "A {resource_name} was {action}d in {bucket_id}/{collection_id}.",
    "recipients": [
        "Security reviewers <security@example.com>",
        "/buckets/staging/groups/{collection_id}-reviewers",
    ],
}


class FourXMetadataTest(EmailerWebTest):
    @classmethod
    def extra_settings(cls):
        # A sender at another domain than mail.default_sender's must be allowed now.
        return {"kinto_emailer.sender_domains": "kinto.example"}

    def test_a_bucket_hook_of_the_4x_readme_sends_as_it_did(self):
        self.create_bucket("staging")
        self.app.put_json(
            "/buckets/staging/groups/addons-reviewers",
            {"data": {"members": ["ldap:peace@world.example", "account:bob"]}},
            headers=self.headers,
        )
        self.app.patch_json(
            "/buckets/staging", {"data": self.hooked(HOOK_4X)}, headers=self.headers
        )
        for collection_id in ("addons", "normandy-recipes"):
            self.create_collection("staging", collection_id)
            self.create_record("staging", collection_id)
        self.drain()

        [message] = self.inbox.wait_for(1)
        assert message["Subject"] == "An action was performed"
        assert message["From"] == "Kinto team <developers@kinto.example>"
        assert message.get_content().strip() == "A record was created in staging/addons."
        # The group's members whose principal, prefix removed, is an address.
        assert sorted(message.envelope_to) == ["peace@world.example", "security@example.com"]
