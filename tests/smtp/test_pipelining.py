"""pipelining.py: one email in two round trips to a server offering PIPELINING, with what
smtplib's ``sendmail`` returns and raises for every reply, against a real aiosmtpd."""

import smtplib

import pytest
from pyramid_mailer.message import Message

from kinto_emailer.smtp.mime import render
from kinto_emailer.smtp.pipelining import envelope_commands, message_data
from tests.smtp.test_connection import transport
from tests.support import Inbox, SMTPServer


ALICE, BOB = "alice@example.com", "bob@example.com"


class Scripted(Inbox):
    """Answers ``MAIL`` and ``RCPT`` as scripted, by address; otherwise 250."""

    def __init__(self):
        super().__init__()
        self.mail_replies = {}
        self.rcpt_replies = {}

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if address in self.mail_replies:
            return self.mail_replies[address]
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.rcpt_replies:
            return self.rcpt_replies[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"


@pytest.fixture(params=[True, False], ids=["pipelining", "one command at a time"])
def server(request):
    inbox = Scripted()
    inbox.pipelining = request.param
    server = SMTPServer(inbox=inbox).start()
    yield server
    server.stop()


def outgoing(subject="Hi", sender="k@example.com", recipients=(ALICE,), body="Hello"):
    message = Message(subject=subject, sender=sender, recipients=list(recipients), body=body)
    return render(message, "k@example.com")


def outcome(connection, email):
    """What became of one email: the refused recipients, or the exception and its codes."""
    try:
        return {rcpt: code for rcpt, (code, _) in connection.send(email).items()}
    except smtplib.SMTPRecipientsRefused as e:
        return ("SMTPRecipientsRefused", {r: code for r, (code, _) in e.recipients.items()})
    except smtplib.SMTPResponseException as e:
        return (type(e).__name__, e.smtp_code)


def counted_writes(connection):
    writes = []
    send = connection.smtp.send

    def counting(data):
        writes.append(data)
        return send(data)

    connection.smtp.send = counting
    return writes


def test_the_server_offers_pipelining_as_the_fixture_says(server):
    connection = transport(server.port).connect()
    assert connection.pipelining is server.inbox.pipelining
    connection.close()


def test_an_email_goes_in_two_writes_when_the_server_pipelines(server):
    connection = transport(server.port).connect()
    writes = counted_writes(connection)
    connection.send(outgoing(recipients=(ALICE, BOB)))
    connection.close()
    [arrived] = server.inbox.wait_for(1)
    assert arrived.envelope_to == [ALICE, BOB]
    # MAIL, two RCPT and DATA, then the message; smtplib writes each of them on its own.
    expected = 2 if server.inbox.pipelining else 5
    assert len(writes[:-1]) == expected  # The last write is QUIT.


def test_the_message_arrives_byte_for_byte_with_its_leading_dots_and_8bit_text(server):
    email = outgoing(body=".hidden line\n..two dots\nCafé ☕\n.")
    connection = transport(server.port).connect()
    assert outcome(connection, email) == {}
    connection.close()
    [arrived] = server.inbox.wait_for(1)
    ended = email.data if email.data.endswith(b"\r\n") else email.data + b"\r\n"
    assert arrived.raw.replace(b"\r\n", b"\n") == ended.replace(b"\r\n", b"\n")
    assert arrived.mail_options == [f"SIZE={len(email.data)}", "BODY=8BITMIME"]


@pytest.mark.parametrize(
    "script, expected",
    [
        ({"rcpt": {BOB: "550 5.1.1 no such user"}}, {BOB: 550}),
        ({"rcpt": {BOB: "450 greylisted"}}, {BOB: 450}),
        ({"mail": {"k@example.com": "550 sender refused"}}, ("SMTPSenderRefused", 550)),
        (
            {"rcpt": {ALICE: "550 no", BOB: "451 later"}},
            ("SMTPRecipientsRefused", {ALICE: 550, BOB: 451}),
        ),
        ({"data": ["554 refused by policy"]}, ("SMTPDataError", 554)),
        ({"data": ["451 try later"]}, ("SMTPDataError", 451)),
    ],
)
def test_a_refusal_ends_as_smtplib_says_and_the_session_goes_on(server, script, expected):
    inbox = server.inbox
    inbox.mail_replies = script.get("mail", {})
    inbox.rcpt_replies = script.get("rcpt", {})
    inbox.scripted_replies = list(script.get("data", []))
    connection = transport(server.port).connect()
    assert outcome(connection, outgoing(recipients=(ALICE, BOB))) == expected
    inbox.mail_replies, inbox.rcpt_replies = {}, {}
    assert outcome(connection, outgoing(subject="next")) == {}
    connection.close()
    delivered = ["Hi", "next"] if isinstance(expected, dict) else ["next"]
    assert [m["Subject"] for m in inbox.expect(len(delivered))] == delivered


@pytest.mark.parametrize(
    "script, expected",
    [
        ({"mail": {"k@example.com": "421 closing"}}, ("SMTPSenderRefused", 421)),
        ({"rcpt": {ALICE: "421 closing"}}, ("SMTPRecipientsRefused", {ALICE: 421})),
    ],
)
def test_a_server_closing_with_421_closes_the_session(server, script, expected):
    server.inbox.mail_replies = script.get("mail", {})
    server.inbox.rcpt_replies = script.get("rcpt", {})
    connection = transport(server.port).connect()
    assert outcome(connection, outgoing(recipients=(ALICE, BOB))) == expected
    assert connection.smtp.sock is None
    with pytest.raises(smtplib.SMTPServerDisconnected):
        connection.send(outgoing(subject="next"))


def test_commands_quote_addresses_as_smtplib_does():
    commands = envelope_commands("Kinto <k@example.com>", [ALICE, " b@x.org "], ["BODY=8BITMIME"])
    assert commands == (
        b"MAIL FROM:<k@example.com> BODY=8BITMIME\r\n"
        b"RCPT TO:<alice@example.com>\r\nRCPT TO:<b@x.org>\r\nDATA\r\n"
    )


def test_a_non_ascii_address_raises_before_anything_is_written():
    with pytest.raises(UnicodeEncodeError):
        envelope_commands("k@example.com", ["é@example.com"], [])


@pytest.mark.parametrize(
    "data, sent",
    [
        (b"a\r\n.b\r\n", b"a\r\n..b\r\n.\r\n"),
        (b".\r\n", b"..\r\n.\r\n"),
        (b"no end", b"no end\r\n.\r\n"),
    ],
)
def test_message_data_doubles_leading_dots_and_ends_with_a_dot(data, sent):
    assert message_data(data) == sent
