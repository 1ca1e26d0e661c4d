"""Issue 10, point 1: every kind of email has ``Date`` and ``Message-ID``, and text bodies
stay readable in their source (7bit or 8bit; quoted-printable only where SMTP needs it)."""

import email
import email.policy
import email.utils
import os
import re
import shutil
import tempfile
from datetime import datetime, timezone

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from pyramid_mailer.message import Message

from kinto_emailer.smtp import mime
from kinto_emailer.smtp.mime import render
from tests.support import HookWebTest, MaildirQueueMixin, SMTPServer


RECORDS = "/buckets/b/collections/c/records"
MESSAGE_ID = re.compile(r"^<[^<>@\s]+@kinto-emailer>$")
HOOK = {
    "resource_name": "record",
    "action": "create",
    "recipients": ["alice@example.com"],
    "template": "{id}",
}


def raw_server(eight_bit=True):
    server = SMTPServer()
    server.inbox.eight_bit = eight_bit
    return server.start()


def assert_identified(message, built_after):
    """A ``Date`` of when the email was built (to the second) and a ``Message-ID``."""
    date = email.utils.parsedate_to_datetime(str(message["Date"]))
    assert date.tzinfo is not None
    assert built_after.replace(microsecond=0) <= date <= datetime.now(timezone.utc)
    assert MESSAGE_ID.match(str(message["Message-ID"])), message["Message-ID"]


def body_source(message):
    """The bytes of the body as they travelled, after the headers."""
    return message.raw.split(b"\r\n\r\n", 1)[1]


class RawWebTest(HookWebTest):
    """The real app, mailing a real server that keeps the bytes it received."""

    __test__ = False
    eight_bit = True  # The server offers 8BITMIME: for the whole class, sessions are reused.

    @classmethod
    def setUpClass(cls):
        cls.raw_server = raw_server(cls.eight_bit)
        super().setUpClass()
        cls.smtp = cls.raw_server

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        cls.raw_server.stop()

    @classmethod
    def extra_settings(cls):
        return {"mail.port": str(cls.raw_server.port), "batch_max_requests": "20"}

    def setUp(self):
        super().setUp()
        self.started = datetime.now(timezone.utc)

    def emails_of(self, *hooks, count=1, data=None):
        self.save_hooks(*hooks)
        self.create_record(data=data or {"name": "x"})
        return self.emails(count)


class EveryKindTest(RawWebTest):
    __test__ = True

    def test_a_plain_text_email(self):
        [message] = self.emails_of({**HOOK, "template": "Record {id} was created, see you"})
        assert_identified(message, self.started)

    def test_an_email_with_an_html_part(self):
        hook = {**HOOK, "template": "plain {id}", "html_template": "<p>{id}</p>"}
        [message] = self.emails_of(hook)
        assert message.get_content_type() == "multipart/alternative"
        assert_identified(message, self.started)

    def test_an_html_only_email(self):
        [message] = self.emails_of({**HOOK, "template": "", "html_template": "<b>{id}</b>"})
        assert_identified(message, self.started)

    def test_a_digest(self):
        self.save_hooks({**HOOK, "digest": True, "template": "{count}: {items}"})
        body = {"defaults": {"method": "POST", "path": RECORDS}, "requests": [{}, {}, {}]}
        self.app.post_json("/batch", body, headers=self.headers)
        [message] = self.emails(1)
        assert message.get_content().startswith("3: ")
        assert_identified(message, self.started)

    def test_private_emails_each_have_their_own_message_id(self):
        to = ["alice@example.com", "bob@example.com", "carol@example.com"]
        messages = self.emails_of({**HOOK, "private": True, "recipients": to}, count=3)
        for message in messages:
            assert_identified(message, self.started)
        assert len({m["Message-ID"] for m in messages}) == 3

    def test_an_email_with_cc_and_bcc(self):
        hook = {**HOOK, "cc": ["bob@example.com"], "bcc": ["carol@example.com"]}
        [message] = self.emails_of(hook)
        assert message.envelope_to == ["alice@example.com", "bob@example.com", "carol@example.com"]
        assert "Bcc" not in message
        assert_identified(message, self.started)

    def test_two_emails_never_share_a_message_id(self):
        self.save_hooks({**HOOK, "template": "{id}"})
        for _ in range(5):
            self.create_record()
        assert len({m["Message-ID"] for m in self.emails(5)}) == 5


class ReadableBodiesTest(RawWebTest):
    __test__ = True

    def test_ascii_text_is_sent_7bit_as_written(self):
        template = "Record {id} was created.\nIts name is {new[name]}, with  two spaces."
        [message] = self.emails_of({**HOOK, "template": template}, data={"name": "plain words"})
        assert message["Content-Transfer-Encoding"] == "7bit"
        assert b"Its name is plain words, with  two spaces.\r\n" in body_source(message)
        assert b"=20" not in message.raw and b"=\r\n" not in message.raw
        assert "BODY=8BITMIME" not in message.mail_options

    def test_non_ascii_text_is_sent_8bit_in_utf8_to_a_server_that_takes_it(self):
        [message] = self.emails_of({**HOOK, "template": "Zoé a créé {new[name]} à midi"})
        assert message["Content-Transfer-Encoding"] == "8bit"
        assert message.get_content_charset() == "utf-8"
        assert "Zoé a créé x à midi".encode() in body_source(message)
        assert "BODY=8BITMIME" in message.mail_options

    def test_html_parts_are_readable_too(self):
        hook = {**HOOK, "template": "Bonjour", "html_template": '<p class="x">Élan {id}</p>'}
        [message] = self.emails_of(hook)
        html = message.get_body(("html",))
        assert html["Content-Transfer-Encoding"] == "8bit"
        assert '<p class="x">Élan '.encode() in body_source(message)
        assert message.get_body(("plain",))["Content-Transfer-Encoding"] == "7bit"

    def test_a_line_too_long_for_smtp_is_quoted_printable_and_arrives_whole(self):
        long_line = "word " * 300  # 1500 octets: SMTP forbids lines over 998.
        [message] = self.emails_of({**HOOK, "template": long_line + "\nend"})
        assert message["Content-Transfer-Encoding"] == "quoted-printable"
        assert max(len(line) for line in message.raw.split(b"\r\n")) <= 998
        assert message.get_content().replace("\r\n", "\n") == long_line + "\nend\n"


class WithoutEightBitMimeTest(RawWebTest):
    __test__ = True
    eight_bit = False

    def test_8bit_text_goes_quoted_printable_to_a_server_without_8bitmime(self):
        hook = {**HOOK, "template": "Zoé a créé {id}", "html_template": "<p>Noël</p>"}
        [message] = self.emails_of(hook)
        assert "BODY=8BITMIME" not in message.mail_options
        assert message.raw.isascii()
        plain, html = message.get_body(("plain",)), message.get_body(("html",))
        assert plain["Content-Transfer-Encoding"] == "quoted-printable"
        assert plain.get_content().startswith("Zoé a créé ")
        assert html.get_content().strip() == "<p>Noël</p>"
        assert_identified(message, self.started)


class DurableModeTest(MaildirQueueMixin, RawWebTest):
    """Through the Maildir: the file keeps the headers and the 8bit body as built."""

    __test__ = True

    def test_emails_from_the_maildir_keep_date_message_id_and_8bit_text(self):
        hook = {**HOOK, "template": "Noël {id}", "cc": ["bob@example.com"]}
        [message] = self.emails_of(hook)
        assert_identified(message, self.started)
        assert message["Content-Transfer-Encoding"] == "8bit"
        assert "Noël ".encode() in body_source(message)


class DebugMailerTest(HookWebTest):
    """``mail.debug_mailer``: the files have the same headers."""

    @classmethod
    def setUpClass(cls):
        cls.directory = tempfile.mkdtemp()
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        shutil.rmtree(cls.directory)

    @classmethod
    def extra_settings(cls):
        return {"mail.debug_mailer": "true", "mail.top_level_directory": cls.directory}

    def test_debug_files_have_date_and_message_id(self):
        started = datetime.now(timezone.utc)
        to = ["alice@example.com", "bob@example.com"]
        self.save_hooks({**HOOK, "private": True, "recipients": to, "template": "{id}"})
        self.create_record()
        files = sorted(os.listdir(self.directory))
        assert len(files) == 2
        for name in files:
            with open(f"{self.directory}/{name}", "rb") as f:
                assert_identified(email.message_from_binary_file(f), started)

    def test_debug_files_hold_the_bytes_smtp_sends(self):
        """The same write through an app that sends over SMTP: the same bytes, but for the
        headers each email draws anew, so that ``grep`` finds in the file what was written."""
        hook = {
            **HOOK,
            "subject": "Un café pour {id}",
            "template": "By {user_id}: un café pour {id}\n",
            "cc": ["bob@example.com"],
            "reply_to": ["Zoë <zoe@example.com>"],
        }
        before = set(os.listdir(self.directory))
        sending = self.make_app({"mail.debug_mailer": "false"})
        try:
            for app in (self.app, sending):
                app.put_json("/buckets/b", {"data": {}}, headers=self.headers)
                app.put_json(
                    "/buckets/b/collections/c",
                    {"data": self.hooked(hook)},
                    headers=self.headers,
                )
                app.put_json(f"{RECORDS}/r1", {"data": {}}, headers=self.headers)
            assert sending.app.registry.emailer.delivery.drain(timeout=10)
        finally:
            sending.app.registry.emailer.delivery.stop(timeout=1)
        [sent] = self.inbox.expect(1)
        [name] = set(os.listdir(self.directory)) - before
        with open(os.path.join(self.directory, name), "rb") as f:
            written = f.read()

        def drawn_anew(data):
            return re.sub(rb"(?m)^(Date|Message-I[dD]): .*$", rb"\1: -", data)

        assert drawn_anew(written) == drawn_anew(sent.raw)
        assert sent["Content-Transfer-Encoding"] == "8bit"
        assert "By basicauth:".encode() in written and "un café pour r1".encode() in written


def test_rendering_keeps_the_date_and_message_id_given_when_the_email_was_built():
    built = {"Date": "Mon, 01 Jan 2024 10:00:00 +0100", "Message-ID": "<1.2@kinto-emailer>"}
    message = Message(
        subject="s",
        sender="k@example.com",
        recipients=["a@example.com"],
        body="b",
        extra_headers=dict(built),
    )
    rendered = email.message_from_bytes(render(message, "k@example.com").data)
    assert (rendered["Date"], rendered["Message-ID"]) == (built["Date"], built["Message-ID"])


def test_rendering_adds_what_a_message_lacks():
    message = Message(subject="s", sender="k@example.com", recipients=["a@b.c"], body="b")
    rendered = email.message_from_bytes(render(message, "k@example.com").data)
    assert email.utils.parsedate_to_datetime(rendered["Date"]).tzinfo is not None
    assert MESSAGE_ID.match(rendered["Message-ID"])


# Emails that hooks make are written directly, without the email package: byte for byte
# what the email package writes (but for the boundary, drawn at random by both).
BOUNDARY = re.compile(rb"={15}\d+==(\.\d+)?")
PLAIN = ["a@example.com", "first.last+tag@sub.example.org", "Kinto Bot <kinto@example.com>"]
ODD = ['"Doe, Jane" <jane@example.com>', "Zoë <zoe@example.com>", "odd address", "a@b", ""]
ADDRESSES = st.sampled_from(PLAIN * 8 + ODD)
# Mostly what hooks write, sometimes what only the email package can write.
TEXT = (
    st.text(st.sampled_from("ab Z.<>=-\n" + "x" * 10), min_size=1, max_size=60)
    | st.text(st.sampled_from("ab \t\n\r\0é"), max_size=20)
    | st.builds(lambda n: "y" * n, st.integers(990, 1010))
)


def _message(subject, body, html, sender, to, cc, reply_to):
    headers = {"Date": "Mon, 01 Jan 2024 10:00:00 +0100", "Message-ID": "<1.2@kinto-emailer>"}
    if reply_to:
        headers["Reply-To"] = ", ".join(reply_to)
    return Message(subject=subject, sender=sender, recipients=to, cc=cc, body=body, html=html,
                   extra_headers=headers)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(
    subject=st.text(st.sampled_from("ab Z:-."), min_size=1, max_size=75)
    | st.text("a é\t", max_size=5),
    body=TEXT,
    html=st.none() | TEXT,
    sender=ADDRESSES,
    to=st.lists(ADDRESSES, min_size=1, max_size=4),
    cc=st.lists(ADDRESSES, max_size=2),
    reply_to=st.lists(ADDRESSES, max_size=2),
)
def test_emails_written_directly_are_those_of_the_email_package(**fields):
    direct = mime._direct(_message(**fields))
    event("direct" if direct is not None else "email package")
    if direct is not None:
        expected = mime._through_email_package(_message(**fields))
        assert BOUNDARY.sub(b"B", direct) == BOUNDARY.sub(b"B", expected)


@pytest.mark.parametrize("html", [None, "<p>Écrit</p>"])
def test_a_hook_email_is_written_directly(html):
    fields = dict(subject="Record created", body="alice created r1\n", html=html,
                  sender="kinto@example.com", to=["a@example.com"], cc=["b@example.com"],
                  reply_to=["c@example.com"])  # fmt: skip
    direct = mime._direct(_message(**fields))
    assert direct is not None
    expected = mime._through_email_package(_message(**fields))
    assert BOUNDARY.sub(b"B", direct) == BOUNDARY.sub(b"B", expected)
    assert render(_message(**fields), "k@example.com").data.startswith(direct[:40])
