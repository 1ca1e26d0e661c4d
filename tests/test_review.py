"""Review events of kinto-signer 8.1.1, from a real review request to the email.

This module is also a Kinto plugin (see ``includeme``): it subscribes
``kinto_emailer.build_notification`` to ``ReviewRequested``, ``ReviewApproved`` and
``ReviewRejected`` a second time, as Remote Settings' signer does with its own events, to
prove that each review event sends one email, not two.
"""

import os
import shutil
import tempfile

from kinto.core.testing import get_user_headers
from kinto_signer.events import ReviewApproved, ReviewRejected, ReviewRequested
from kinto_signer.generate_keypair import generate_keypair

import kinto_emailer
from tests.support import EmailerWebTest


SOURCE = "/buckets/source/collections/c"
REVIEW_HOOKS = [
    {
        "event": "kinto_signer.events.ReviewRequested",
        "subject": "Review requested on {bucket_id}/{collection_id}",
        "template": "{user_id} asks: {comment} ({changes_count} changes)",
        "recipients": ["reviewers@example.com"],
    },
    {
        "event": "kinto_signer.events.ReviewApproved",
        "subject": "Review approved on {collection_id}",
        "template": "{changes_count} changes published",
        "recipients": ["editors@example.com"],
    },
    {
        "event": "kinto_signer.events.ReviewRejected",
        "subject": "Review rejected on {collection_id}",
        "template": "Reviewer says: {comment}",
        "recipients": ["editors@example.com"],
    },
    {
        "event": "kinto_signer.events.ReviewCanceled",
        "subject": "Review canceled on {collection_id}",
        "template": "{user_id} rolled back {changes_count} changes",
        "recipients": ["reviewers@example.com"],
    },
]


def includeme(config):
    # Remote Settings' own wiring (its signer's ``includeme``), with kinto_emailer included.
    for event_class in (ReviewRequested, ReviewApproved, ReviewRejected):
        config.add_subscriber(kinto_emailer.build_notification, event_class)


class ReviewWebTest(EmailerWebTest):
    """kinto-signer's review on /buckets/source/collections/c, holding ``source_metadata``
    and three records; bob may review."""

    @classmethod
    def setUpClass(cls):
        cls.keys = tempfile.mkdtemp(prefix="kinto-emailer-keys-")
        cls.private_key = os.path.join(cls.keys, "ecdsa.private.pem")
        generate_keypair(cls.private_key, os.path.join(cls.keys, "ecdsa.public.pem"))
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        shutil.rmtree(cls.keys, ignore_errors=True)

    @classmethod
    def extra_settings(cls):
        return {
            "includes": "kinto_signer kinto_emailer tests.test_review",
            "signer.resources": (
                f"{SOURCE} -> /buckets/preview/collections/c -> /buckets/destination/collections/c"
            ),
            "signer.to_review_enabled": "true",
            "signer.ecdsa.private_key": cls.private_key,
        }

    def setUp(self):
        super().setUp()
        self.bob = {**self.headers, **get_user_headers("bob")}
        bob_id = self.app.get("/", headers=self.bob).json["user"]["id"]
        self.app.put_json(
            "/buckets/source",
            {"data": {}, "permissions": {"write": [bob_id]}},
            headers=self.headers,
        )
        self.create_collection("source", "c", self.source_metadata())
        for n in range(3):
            self.create_record("source", "c", data={"n": n})
        self.drain()
        self.inbox.clear()

    def source_metadata(self):
        return self.hooked(*REVIEW_HOOKS)

    def request_review(self, comment="Please check"):
        self.app.patch_json(
            SOURCE,
            {"data": {"status": "to-review", "last_editor_comment": comment}},
            headers=self.headers,
        )


class ReviewTest(ReviewWebTest):
    def test_a_review_request_sends_the_comment_and_the_number_of_changes(self):
        self.request_review("Three new entries")
        [message] = self.inbox.wait_for(1)
        user_id = self.app.get("/", headers=self.headers).json["user"]["id"]
        assert message["Subject"] == "Review requested on source/c"
        assert message.get_content().strip() == f"{user_id} asks: Three new entries (3 changes)"
        assert message.envelope_to == ["reviewers@example.com"]

    def test_one_review_event_reaching_build_notification_twice_sends_once(self):
        # This module subscribed build_notification a second time (see includeme).
        self.request_review()
        self.inbox.wait_for(1)
        self.drain()
        assert [m["Subject"] for m in self.inbox.messages] == ["Review requested on source/c"]

    def test_an_approval_sends_the_number_of_published_changes(self):
        self.request_review()
        self.inbox.wait_for(1)
        self.inbox.clear()
        self.app.patch_json(SOURCE, {"data": {"status": "to-sign"}}, headers=self.bob)
        [message] = self.inbox.wait_for(1)
        assert message["Subject"] == "Review approved on c"
        assert message.get_content().strip() == "3 changes published"
        assert message.envelope_to == ["editors@example.com"]

    def test_a_rejection_sends_the_reviewers_comment(self):
        self.request_review()
        self.inbox.wait_for(1)
        self.inbox.clear()
        self.app.patch_json(
            SOURCE,
            {"data": {"status": "work-in-progress", "last_reviewer_comment": "Not yet"}},
            headers=self.bob,
        )
        [message] = self.inbox.wait_for(1)
        assert message["Subject"] == "Review rejected on c"
        assert message.get_content().strip() == "Reviewer says: Not yet"

    def test_ordinary_changes_do_not_match_review_hooks(self):
        self.create_record("source", "c", data={"n": 99})
        self.app.patch_json(SOURCE, {"data": {"title": "C"}}, headers=self.headers)
        self.drain()
        assert self.inbox.messages == []

    def test_a_rollback_of_pending_changes_sends_their_number(self):
        self.request_review()
        self.emails(1)
        self.inbox.clear()
        self.app.patch_json(SOURCE, {"data": {"status": "to-rollback"}}, headers=self.headers)
        [message] = self.emails(1)
        user_id = self.app.get("/", headers=self.headers).json["user"]["id"]
        assert message["Subject"] == "Review canceled on c"
        # kinto-signer counts the rolled back changes of the source and of the preview.
        assert message.get_content().strip() == f"{user_id} rolled back 6 changes"
        assert message.envelope_to == ["reviewers@example.com"]

    def test_each_review_event_sends_one_email_with_remote_settings_wiring(self):
        """Requested, rejected, requested again, approved: four events, four emails."""
        self.request_review("First")
        self.app.patch_json(
            SOURCE,
            {"data": {"status": "work-in-progress", "last_reviewer_comment": "No"}},
            headers=self.bob,
        )
        self.request_review("Second")
        self.app.patch_json(SOURCE, {"data": {"status": "to-sign"}}, headers=self.bob)
        subjects = [m["Subject"] for m in self.emails(4)]
        assert subjects == [
            "Review requested on source/c",
            "Review rejected on c",
            "Review requested on source/c",
            "Review approved on c",
        ]
