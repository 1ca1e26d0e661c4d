"""connection.py and mime.py: the SMTP conversation, failure kinds, folded headers."""

import contextlib
import email
import email.policy
import smtplib
import socket
import struct
import threading

import pytest
from pyramid.exceptions import ConfigurationError
from pyramid_mailer.message import Message

from kinto_emailer.config import read_settings
from kinto_emailer.smtp.connection import (
    PermanentFailure,
    SMTPTransport,
    TemporaryFailure,
    classify,
)
from kinto_emailer.smtp.mime import render
from tests.smtp.test_deadline import TricklingServer
from tests.support import Inbox, SMTPServer, free_port


def transport(port, **extra):
    return SMTPTransport(read_settings({"mail.host": "127.0.0.1", "mail.port": port, **extra}))


def message(**fields):
    defaults = {"subject": "Hi", "sender": "k@example.com", "recipients": ["a@example.com"]}
    return Message(**{**defaults, "body": "Hello", **fields})


@pytest.fixture
def smtp():
    server = SMTPServer().start()
    yield server
    server.stop()


@pytest.mark.parametrize(
    "error, kind",
    [
        (ConnectionRefusedError(111, "Connection refused"), TemporaryFailure),
        (ConnectionResetError(104, "Connection reset by peer"), TemporaryFailure),
        (socket.timeout("timed out"), TemporaryFailure),
        (smtplib.SMTPServerDisconnected("Connection unexpectedly closed"), TemporaryFailure),
        (smtplib.SMTPDataError(451, b"try later"), TemporaryFailure),
        (smtplib.SMTPSenderRefused(421, b"closing", "k@example.com"), TemporaryFailure),
        (smtplib.SMTPDataError(554, b"refused by policy"), PermanentFailure),
        (smtplib.SMTPAuthenticationError(535, b"bad credentials"), PermanentFailure),
        (smtplib.SMTPRecipientsRefused({"a@x": (550, b"no such user")}), PermanentFailure),
        (smtplib.SMTPRecipientsRefused({"a@x": (450, b"greylisted")}), TemporaryFailure),
        (smtplib.SMTPNotSupportedError("STARTTLS extension not supported"), PermanentFailure),
    ],
)
def test_failures_are_temporary_or_permanent(error, kind):
    assert isinstance(classify(error), kind)


def test_send_one_delivers_through_a_real_server(smtp):
    transport(smtp.port).send_one(render(message(), "kinto@example.com"))
    [arrived] = smtp.inbox.wait_for(1)
    assert arrived["Subject"] == "Hi" and arrived.envelope_to == ["a@example.com"]


def test_a_closed_port_is_a_temporary_failure():
    with pytest.raises(OSError) as error:
        transport(free_port()).connect()
    assert isinstance(classify(error.value), TemporaryFailure)


def test_smtp_timeout_bounds_a_server_that_never_greets():
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # Connections complete in the kernel; no greeting ever comes.
        with pytest.raises(OSError) as error:
            transport(silent.getsockname()[1], **{"kinto_emailer.smtp_timeout": "0.3"}).connect()
    # The socket's timeout ended the wait, not the server.
    assert str(error.value) == "Connection unexpectedly closed: timed out"
    assert isinstance(classify(error.value), TemporaryFailure)


def test_one_connection_carries_several_emails(smtp):
    connection = transport(smtp.port).connect()
    for index in range(3):
        connection.send(render(message(subject=f"n{index}"), "k@example.com"))
    connection.close()
    assert [m["Subject"] for m in smtp.inbox.wait_for(3)] == ["n0", "n1", "n2"]


def parsed(outgoing):
    return email.message_from_bytes(outgoing.data, policy=email.policy.default)


def test_a_200_address_to_header_is_folded_and_keeps_every_address():
    recipients = [f"user{i}@example.com" for i in range(200)]
    outgoing = render(message(recipients=recipients), "k@example.com")
    assert max(len(line) for line in outgoing.data.splitlines()) <= 78
    assert [a.addr_spec for a in parsed(outgoing)["To"].addresses] == recipients
    assert outgoing.recipients == recipients


def test_display_names_are_encoded_one_address_at_a_time():
    recipients = ["Zoé <zoe@example.com>", '"Doe, John" <john@example.com>', "bob@example.com"]
    outgoing = render(message(recipients=recipients, sender="Équipe <k@example.com>"), "x@y.z")
    headers = parsed(outgoing)
    assert [(a.display_name, a.addr_spec) for a in headers["To"].addresses] == [
        ("Zoé", "zoe@example.com"),
        ("Doe, John", "john@example.com"),
        ("", "bob@example.com"),
    ]
    assert headers["From"].addresses[0].display_name == "Équipe"
    assert outgoing.sender == "k@example.com"
    assert outgoing.recipients == ["zoe@example.com", "john@example.com", "bob@example.com"]


@pytest.mark.parametrize("subject", ["é" * 500, "x" * 2000, "word " * 400])
def test_long_subjects_are_folded_and_read_back_whole(subject):
    outgoing = render(message(subject=subject), "k@example.com")
    assert max(len(line) for line in outgoing.data.splitlines()) <= 78
    assert parsed(outgoing)["Subject"].strip() == subject.strip()


def test_an_empty_body_is_sent_empty():
    outgoing = render(message(body=""), "k@example.com")
    assert parsed(outgoing).get_content() == ""


def test_a_trickling_greeting_ends_at_the_exchange_deadline_as_a_temporary_failure():
    trickler = TricklingServer().start()
    settings = {"kinto_emailer.smtp_timeout": "0.5", "kinto_emailer.smtp_exchange_timeout": "1"}
    try:
        with pytest.raises(OSError) as error:
            transport(trickler.port, **settings).connect()
    finally:
        trickler.stop()
    failure = classify(error.value)
    assert isinstance(failure, TemporaryFailure)
    assert str(failure) == (
        "Connection unexpectedly closed: the mail server took more than 1s to connect "
        "(kinto_emailer.smtp_exchange_timeout)"
    )


def test_each_email_of_a_burst_has_a_deadline_of_its_own():
    server = SMTPServer(inbox=Inbox(delay=0.3)).start()
    settings = {"kinto_emailer.smtp_timeout": "0.5", "kinto_emailer.smtp_exchange_timeout": "1"}
    try:
        connection = transport(server.port, **settings).connect()
        for index in range(5):  # 5 x 0.3 s in one session: more than one exchange's time.
            connection.send(render(message(subject=f"n{index}"), "k@example.com"))
        connection.close()
    finally:
        server.stop()
    assert [m["Subject"] for m in server.inbox.messages] == [f"n{i}" for i in range(5)]


def test_the_exchange_timeout_is_six_steps_unless_set():
    assert read_settings({}).smtp_exchange_timeout == 60
    assert read_settings({"kinto_emailer.smtp_timeout": "2"}).smtp_exchange_timeout == 12
    settings = read_settings({"kinto_emailer.smtp_exchange_timeout": "15"})
    assert settings.smtp_exchange_timeout == 15


def test_a_bad_exchange_timeout_stops_start_up_naming_the_key():
    with pytest.raises(ConfigurationError) as error:
        read_settings({"kinto_emailer.smtp_exchange_timeout": "0"})
    assert str(error.value) == (
        "Setting 'kinto_emailer.smtp_exchange_timeout' must be a number of seconds greater "
        "than 0 and at most 86400, got '0'."
    )


def test_a_plain_connection_keeps_its_time_out_in_the_kernel(smtp):
    # Python's own time-out polls the socket before each read and write: one more system
    # call each time, and one more hand-off of the GIL in a web process.
    connection = transport(smtp.port, **{"kinto_emailer.smtp_timeout": "2.5"}).connect()
    sock = connection.smtp.sock
    assert sock.gettimeout() is None
    for option in (socket.SO_RCVTIMEO, socket.SO_SNDTIMEO):
        seconds, micros = struct.unpack("ll", sock.getsockopt(socket.SOL_SOCKET, option, 16))
        assert (seconds, micros) == (2, 500_000)
    connection.send(render(message(), "k@example.com"))
    connection.close()
    assert len(smtp.inbox.wait_for(1)) == 1


@contextlib.contextmanager
def answering_then_silent(*replies):
    """A server on loopback that greets, answers each of the client's first writes with the
    next of ``replies``, then reads on and never answers again; yields its port."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()

        def serve():
            client, _ = listener.accept()
            with client:
                client.sendall(b"220 hello\r\n")
                for reply in replies:
                    client.recv(1024)
                    client.sendall(reply)
                client.recv(1024)  # Never answered.
                threading.Event().wait(3)

        threading.Thread(target=serve, daemon=True).start()
        yield listener.getsockname()[1]


def test_a_server_silent_after_ehlo_is_a_temporary_failure_within_a_step():
    with answering_then_silent(b"250 ok\r\n") as port:  # EHLO; then MAIL, RCPT, DATA.
        connection = transport(port, **{"kinto_emailer.smtp_timeout": "0.3"}).connect()
        with pytest.raises(OSError) as error:
            connection.send(render(message(), "k@example.com"))
    # A step's time-out (the kernel's), not the exchange's deadline (1.8 s).
    assert str(error.value) == "Connection unexpectedly closed: timed out"
    assert isinstance(classify(error.value), TemporaryFailure)


def test_a_starttls_handshake_that_never_comes_times_out_within_a_step():
    # EHLO, STARTTLS; then the client's TLS hello.
    with answering_then_silent(b"250-hello\r\n250 STARTTLS\r\n", b"220 go ahead\r\n") as port:
        settings = {"kinto_emailer.smtp_timeout": "0.3", "mail.tls": "true"}
        with pytest.raises(OSError) as error:
            transport(port, **settings).connect()
    # The step's time-out, as Python's socket says it, not the exchange's deadline.
    assert isinstance(error.value, TimeoutError)
    assert "timed out" in str(error.value)
    assert isinstance(classify(error.value), TemporaryFailure)


# Abandoning an exchange at shutdown (issue 24, attack 6).


def abandon_soon(clock, after=0.2):
    """``clock.abandon()`` from another thread, as the stopping thread does at the deadline."""
    timer = threading.Timer(after, clock.abandon)
    timer.start()
    return timer


def test_abandoning_ends_a_wait_for_a_greeting_that_never_comes():
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        sender = transport(silent.getsockname()[1], **{"kinto_emailer.smtp_timeout": "60"})
        clock = sender.clock()
        abandon_soon(clock)
        with pytest.raises(OSError) as error:
            sender.connect(clock=clock)
    # The stop, not a step's time-out (a minute), ended the read under way.
    assert "was abandoned: the process stops" in str(error.value)
    assert isinstance(classify(error.value), TemporaryFailure)


def test_abandoning_ends_an_email_whose_reply_never_comes():
    with answering_then_silent(b"250 ok\r\n") as port:  # EHLO; then MAIL, RCPT, DATA.
        sender = transport(port, **{"kinto_emailer.smtp_timeout": "60"})
        clock = sender.clock()
        connection = sender.connect(clock=clock)
        abandon_soon(clock)
        with pytest.raises(OSError) as error:
            connection.send(render(message(), "k@example.com"))
        assert connection.expired
        connection.close()  # No QUIT on an abandoned session: closed at once.
    assert "was abandoned: the process stops" in str(error.value)


def test_a_clock_abandoned_before_connecting_never_reaches_the_server(smtp):
    clock = transport(smtp.port).clock()
    clock.abandon()
    with pytest.raises(OSError, match="was abandoned"):
        transport(smtp.port).connect(clock=clock)
    assert smtp.inbox.sessions == 0
