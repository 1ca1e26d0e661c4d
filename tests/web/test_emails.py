"""GET and PATCH /buckets/{bid}/emails through the real app, on memory and PostgreSQL."""

import functools
import time

from kinto.core.testing import get_user_headers

from tests.support import (
    EmailerWebTest,
    MaildirQueueMixin,
    hooked,
    per_outbox,
    record_hook,
)


hook = functools.partial(record_hook, recipients=["alice@example.com", "/buckets/b/groups/team"])


class EmailViewsScenarios:
    """Mixed into one test class per outbox."""

    @classmethod
    def extra_settings(cls):
        # Retries far apart: a retrying email stays so until the test changes it.
        return {"kinto_emailer.retry_base_delay": "60", "kinto_emailer.retry_max_delay": "60"}

    def setUp(self):
        super().setUp()
        self.addCleanup(self.app.app.registry.emailer.delivery.outbox.flush)
        self.bob = get_user_headers("bob")
        bob_id = self.app.get("/", headers=self.bob).json["user"]["id"]
        self.create_bucket()
        self.app.put_json(
            "/buckets/b/groups/team",
            {"data": {"members": ["ldap:carol@example.com"]}},
            headers=self.headers,
        )
        self.create_collection(data=self.hooked(hook("from c")))
        self.create_collection(collection_id="d", data=self.hooked(hook("from d")))
        # Bob writes collection c only.
        self.app.patch_json(
            "/buckets/b/collections/c", {"permissions": {"write": [bob_id]}}, headers=self.headers
        )

    def sent_email(self, collection_id="c"):
        record = self.create_record(collection_id=collection_id).json["data"]
        self.drain()
        return record

    def list(self, query="", headers=None, status=200):
        return self.app.get(
            f"/buckets/b/emails{query}", headers=headers or self.headers, status=status
        )

    def test_a_sent_email_is_listed_with_every_field(self):
        before = int(time.time() * 1000)
        record = self.sent_email()
        (email,) = self.list().json["data"]
        assert set(email) == {
            "id", "channel", "destination", "status", "attempts", "error", "hook", "bucket_id",
            "collection_id", "uri",
            "action", "event", "subject", "recipients_count", "created", "last_modified",
            "sent", "refused", "recipients",
        }  # fmt: skip
        assert (email["channel"], email["destination"]) == ("email", None)
        assert email["status"] == "sent"
        assert email["attempts"] == 1
        assert email["error"] is None
        assert email["refused"] == []
        assert email["hook"] == "/buckets/b/collections/c#0"
        assert (email["bucket_id"], email["collection_id"]) == ("b", "c")
        assert email["uri"] == f"/buckets/b/collections/c/records/{record['id']}"
        assert email["action"] == "create"
        assert email["event"] == "kinto.core.events.AfterResourceChanged"
        assert email["subject"] == "from c"
        assert email["recipients_count"] == 2
        assert sorted(email["recipients"]) == ["alice@example.com", "carol@example.com"]
        assert before <= email["created"] <= email["sent"] <= email["last_modified"]
        one = self.app.get(f"/buckets/b/emails/{email['id']}", headers=self.headers).json["data"]
        assert one == email

    def test_a_refused_email_fails_without_addresses_then_is_sent_again(self):
        self.inbox.scripted_replies = ["550 5.1.1 <alice@example.com> unknown"]
        self.sent_email()
        (email,) = self.list("?status=failed").json["data"]
        assert email["attempts"] == 1
        assert "550 5.1.1" in email["error"] and "[recipient]" in email["error"]
        assert "alice@example.com" not in email["error"]
        assert self.inbox.messages == []

        path = f"/buckets/b/emails/{email['id']}"
        again = self.app.patch_json(path, {"data": {"status": "queued"}}, headers=self.headers)
        assert again.json["data"]["attempts"] == 0
        self.drain()
        assert len(self.inbox.wait_for(1)) == 1
        assert self.app.get(path, headers=self.headers).json["data"]["status"] == "sent"

    def test_a_recipient_refused_for_good_is_named_in_the_status_of_a_sent_email(self):
        self.inbox.rcpt_replies = {
            "carol@example.com": "550 5.1.1 <carol@example.com>: Recipient address rejected"
        }
        self.sent_email()
        (message,) = self.inbox.wait_for(1)
        assert message.envelope_to == ["alice@example.com"]
        (email,) = self.list().json["data"]
        assert email["status"] == "sent"
        assert email["refused"] == [
            {
                "address": "carol@example.com",
                "code": 550,
                "message": "5.1.1 <[recipient]>: Recipient address rejected",
            }
        ]
        assert email["error"] == (
            "refused for some recipients: 550 5.1.1 <[recipient]>: Recipient address rejected "
            "(1 recipient(s))"
        )
        # Collection writers see the refusal, not the address.
        (seen,) = self.list(headers=self.bob).json["data"]
        assert seen["refused"] == [
            {"code": 550, "message": "5.1.1 <[recipient]>: Recipient address rejected"}
        ]
        one = self.app.get(f"/buckets/b/emails/{email['id']}", headers=self.bob).json["data"]
        assert one == seen

    def test_a_retrying_email_cancelled_is_never_sent(self):
        self.inbox.scripted_replies = ["451 4.3.0 try later"]
        self.create_record()
        email = self.wait_for_status("retrying")
        path = f"/buckets/b/emails/{email['id']}"
        cancelled = self.app.patch_json(
            path, {"data": {"status": "cancelled"}}, headers=self.headers
        )
        assert cancelled.json["data"]["status"] == "cancelled"
        self.drain()
        assert self.inbox.messages == []
        assert self.app.get(path, headers=self.headers).json["data"]["status"] == "cancelled"

    def wait_for_status(self, status):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            found = self.list(f"?status={status}").json["data"]
            if found:
                return found[0]
            time.sleep(0.05)
        raise AssertionError(f"no email became {status}")

    def test_a_collection_writer_sees_only_its_collection_without_addresses(self):
        self.sent_email("c")
        self.sent_email("d")
        emails = self.list(headers=self.bob).json["data"]
        assert [e["collection_id"] for e in emails] == ["c"]
        assert "recipients" not in emails[0]
        (other,) = self.list("?collection_id=d").json["data"]
        self.app.get(f"/buckets/b/emails/{other['id']}", headers=self.bob, status=404)

    def test_a_bucket_writer_sees_every_email_with_addresses(self):
        self.sent_email("c")
        self.sent_email("d")
        emails = self.list().json["data"]
        assert sorted(e["collection_id"] for e in emails) == ["c", "d"]
        assert all(e["recipients"] for e in emails)

    def test_the_anonymous_get_a_401_and_others_a_403(self):
        self.list(headers={"Origin": "http://x"}, status=401)
        self.list(headers=get_user_headers("mallory"), status=403)
        self.app.get("/buckets/b/emails/1", headers=get_user_headers("mallory"), status=403)

    def test_filters_pagination_and_sorting(self):
        first = self.sent_email("c")
        second = self.sent_email("d")
        uris = [e["uri"].rsplit("/", 1)[-1] for e in self.list().json["data"]]
        assert uris == [second["id"], first["id"]]  # Newest first.
        ascending = self.list("?_sort=created").json["data"]
        assert [e["uri"].rsplit("/", 1)[-1] for e in ascending] == [first["id"], second["id"]]
        assert [e["collection_id"] for e in self.list("?collection_id=d").json["data"]] == ["d"]
        assert len(self.list("?in_collection_id=c,d").json["data"]) == 2
        assert self.list("?status=failed").json["data"] == []

        page = self.list("?_limit=1")
        assert len(page.json["data"]) == 1
        next_page = page.headers["Next-Page"]
        rest = self.app.get(next_page.split("/v1", 1)[1], headers=self.headers)
        assert len(rest.json["data"]) == 1
        assert rest.json["data"][0]["id"] != page.json["data"][0]["id"]
        assert "Next-Page" not in rest.headers

    def test_each_bad_query_is_a_400_naming_the_parameter(self):
        for query, name in (
            ("?nope=1", "nope"),
            ("?_sort=nope", "_sort"),
            ("?_limit=zero", "_limit"),
            ("?_token=garbage", "_token"),
        ):
            error = self.list(query, status=400).json
            assert error["errno"] == 107
            assert error["details"][0]["name"] == name

    def test_each_bad_change_is_a_400_naming_the_allowed_transitions(self):
        self.sent_email()
        (email,) = self.list().json["data"]
        path = f"/buckets/b/emails/{email['id']}"
        for body in (
            {"data": {"status": "cancelled"}},  # Already sent.
            {"data": {"status": "sent"}},
            {"data": {"status": "queued", "attempts": 0}},
            {"data": {"subject": "new"}},
            ["status"],
        ):
            error = self.app.patch_json(path, body, headers=self.headers, status=400).json
            assert error["errno"] == 107, body
            assert '"queued"' in error["message"] and '"cancelled"' in error["message"], body
        self.app.patch_json(
            "/buckets/b/emails/999999", {"data": {"status": "queued"}}, headers=self.headers,
            status=404,
        )  # fmt: skip


per_outbox(EmailViewsScenarios, EmailerWebTest, globals())


class RequeueScenarios:
    """Issue 24, attacks 2 and 3: queued again, an email passes the limits a new one passes,
    and goes only to those who have not taken it. Mixed into one test class per outbox."""

    @classmethod
    def extra_settings(cls):
        return {
            "kinto_emailer.max_emails_per_hour": "3",
            "kinto_emailer.retry_base_delay": "60",
            "kinto_emailer.retry_max_delay": "60",
        }

    def setUp(self):
        super().setUp()
        self.addCleanup(self.app.app.registry.emailer.delivery.outbox.flush)
        self.create_bucket()

    def status(self, email_id):
        return self.app.get(f"/buckets/b/emails/{email_id}", headers=self.headers).json["data"]

    def change(self, email_id, status, expect=200):
        return self.app.patch_json(
            f"/buckets/b/emails/{email_id}",
            {"data": {"status": status}},
            headers=self.headers,
            status=expect,
        )

    def wait_until(self, email_id, status):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            record = self.status(email_id)
            if record["status"] == status:
                return record
            time.sleep(0.05)
        raise AssertionError(f"email {email_id} did not become {status}: {record}")

    def test_dropped_emails_queued_again_stay_under_the_hourly_limit(self):
        self.create_collection(data=hooked(record_hook()))
        for _ in range(10):
            self.create_record()
        self.drain()
        emails = self.app.get("/buckets/b/emails", headers=self.headers).json["data"]
        dropped = [e["id"] for e in emails if e["status"] == "dropped"]
        assert len(dropped) == 7
        for email_id in dropped:
            error = self.change(email_id, "queued", expect=429).json
            assert error["errno"] == 117
            assert "kinto_emailer.max_emails_per_hour = 3" in error["message"]
            assert self.status(email_id)["status"] == "dropped"
        self.drain()
        assert len(self.inbox.expect(3)) == 3

    def test_cancel_then_queue_again_sends_only_to_those_who_have_not_taken_it(self):
        victim, grey, gone = "victim@example.com", "grey@example.com", "gone@example.com"
        self.create_collection(data=hooked(record_hook(recipients=[victim, grey, gone])))
        self.inbox.rcpt_replies = {grey: "451 4.3.0 try later", gone: "550 5.1.1 no such user"}
        self.create_record()
        (email,) = self.app.get("/buckets/b/emails", headers=self.headers).json["data"]
        self.wait_until(email["id"], "retrying")
        for _ in range(5):
            self.change(email["id"], "cancelled")
            assert self.change(email["id"], "queued").json["data"]["status"] == "queued"
            retrying = self.wait_until(email["id"], "retrying")
            assert [r["address"] for r in retrying["refused"]] == [gone]
        # Grey takes it at last: sent, and gone's refusal stays in the status.
        self.inbox.rcpt_replies = {gone: "550 5.1.1 no such user"}
        self.change(email["id"], "cancelled")
        self.change(email["id"], "queued")
        sent = self.wait_until(email["id"], "sent")
        assert [(r["address"], r["code"]) for r in sent["refused"]] == [(gone, 550)]
        first, second = self.inbox.expect(2)
        assert first.envelope_to == [victim]
        assert second.envelope_to == [grey]
        # Counted once in the hour however many times it was queued again.
        self.create_record()
        self.create_record()
        self.drain()
        assert len(self.inbox.expect(4)) == 4


per_outbox(RequeueScenarios, EmailerWebTest, globals())


class TestMaildirViews(MaildirQueueMixin, EmailerWebTest):
    def test_the_maildir_keeps_no_status_and_says_so(self):
        self.create_bucket()
        error = self.app.get("/buckets/b/emails", headers=self.headers, status=501).json
        assert "Maildir" in error["message"] and "kinto_emailer.outbox" in error["message"]
        self.app.get("/buckets/b/emails/1", headers=self.headers, status=501)


class TestViewsWithBucketWritePrincipals(EmailerWebTest):
    @classmethod
    def extra_settings(cls):
        return {"bucket_write_principals": "system.Authenticated"}

    def test_kintos_settings_grant_the_bucket_as_elsewhere(self):
        self.create_bucket()
        # Every authenticated user writes every bucket here, as Kinto's views agree.
        self.app.get("/buckets/b", headers=get_user_headers("mallory"))
        self.app.get("/buckets/b/emails", headers=get_user_headers("mallory"))
