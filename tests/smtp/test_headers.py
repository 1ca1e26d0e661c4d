"""headers.py: no line break in headers at save, and no header injection at send."""

import email
import email.policy

from kinto_emailer.smtp import headers
from tests.support import HookWebTest, hook


INJECTION = "Hello\r\nBcc: evil@example.com\r\nX-Injected: yes"
#: Every header a hook's email may carry; anything else was injected.
EXPECTED_HEADERS = {
    "from",
    "to",
    "subject",
    "message-id",
    "date",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "content-disposition",
}


class LineBreaksRefusedTest(HookWebTest):
    def test_a_line_break_in_the_subject_is_refused(self):
        for subject in ("Hello\nthere", "Hello\rthere", "Hello\r\nBcc: evil@example.com"):
            assert 'Line break not allowed in "subject"' in self.refused(hook(subject=subject))

    def test_a_line_break_in_the_sender_is_refused(self):
        message = self.refused(hook(sender="team@example.com\r\nBcc: evil@example.com"))
        assert 'Line break not allowed in "sender"' in message

    def test_a_line_break_in_a_recipient_is_refused(self):
        for entry in ("alice@example.com\nBcc: evil@example.com", "/buckets/b/groups/g\n"):
            message = self.refused(hook(recipients=[entry]))
            assert "Line break not allowed" in message, entry


class NoInjectionTest(HookWebTest):
    def assert_clean(self, message, recipients=("alice@example.com",)):
        assert {name.lower() for name in message.keys()} <= EXPECTED_HEADERS, message.keys()
        assert message["Bcc"] is None and message["X-Injected"] is None
        assert message.envelope_to == list(recipients)
        subject = message["Subject"]
        assert "\n" not in subject and "\r" not in subject
        return subject

    def test_a_record_field_with_line_breaks_is_folded_in_the_subject(self):
        self.save_hooks(hook(subject="New: {new[title]}", resource_name="record"))
        self.create_record(data={"title": INJECTION})
        subject = self.assert_clean(self.one_email())
        assert subject == "New: Hello Bcc: evil@example.com X-Injected: yes"

    def test_unicode_line_breaks_are_folded_too(self):
        self.save_hooks(hook(subject="{new[title]}", resource_name="record"))
        self.create_record(data={"title": "a\u2028b\u0085c\x0bd\x0ce\u2029f"})
        assert self.assert_clean(self.one_email()) == "a b c d e f"

    def test_a_user_agent_with_line_breaks_is_folded_in_the_subject(self):
        self.save_hooks(hook(subject="UA {user_agent}", resource_name="record"))
        self.app.post_json(
            "/buckets/b/collections/c/records",
            {"data": {}},
            headers=self.headers,
            extra_environ={"HTTP_USER_AGENT": INJECTION},
        )
        assert self.assert_clean(self.one_email()) == (
            "UA Hello Bcc: evil@example.com X-Injected: yes"
        )

    def test_record_data_in_the_body_stays_in_the_body(self):
        self.save_hooks(hook(template="{new[text]}", resource_name="record"))
        text = "\r\n\r\nX-Injected: yes\r\n.\r\nMAIL FROM:<evil@example.com>\r\nafter"
        self.create_record(data={"text": text})
        message = self.one_email()
        self.assert_clean(message)
        assert "after" in message.get_content()
        assert "MAIL FROM:<evil@example.com>" in message.get_content()

    def test_a_group_member_with_a_line_break_is_not_a_recipient(self):
        members = ["account:bob@example.com", "account:eve@example.com\r\nBcc: evil@example.com"]
        self.app.put_json(
            "/buckets/b/groups/g", {"data": {"members": members}}, headers=self.headers
        )
        self.save_hooks(hook(recipients=["/buckets/b/groups/g"], resource_name="record"))
        self.create_record()
        self.assert_clean(self.one_email(), recipients=["bob@example.com"])

    def test_stored_headers_with_line_breaks_inject_nothing(self):
        # Saved before validation existed: the sender falls back, the subject is folded.
        self.create_collection()
        stored = hook(
            subject=INJECTION,
            sender="team@example.com\r\nBcc: evil@example.com",
            recipients=["alice@example.com\r\nBcc: evil@example.com", "alice@example.com"],
        )
        self.store_unchecked(self.hooked(stored), collection_id="c")
        self.create_record()
        message = self.one_email()
        assert self.assert_clean(message) == "Hello Bcc: evil@example.com X-Injected: yes"
        assert message["From"] == "kinto@example.com"

    def test_a_non_ascii_subject_arrives_decoded_on_one_line(self):
        self.save_hooks(hook(subject="{new[title]}", resource_name="record"))
        title = "Été à Zürich — 東京 " * 60
        self.create_record(data={"title": title})
        assert self.assert_clean(self.one_email()) == title[:998]


def test_a_subject_of_long_words_reads_back_unchanged():
    # Found by the property tests: a first word too long for the first line was folded
    # before it, and the subject read back began with a blank.
    word = "{bucket_id}{bucket_id}{bucket_id}{bucket_id}{settings[userid_hmac_secret]}"
    subject = " ".join([word] * 13)[:998]
    raw = headers.fold_text("Subject", subject)
    parsed = email.message_from_bytes(raw + b"\r\n", policy=email.policy.default)
    assert str(parsed["Subject"]) == subject
    assert raw.startswith(b"Subject: {bucket_id}")
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
