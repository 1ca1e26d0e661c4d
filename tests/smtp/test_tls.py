"""TLS: STARTTLS and SMTPS verify the server's certificate and host name.

The certificates are made here with trustme. A test trusts its CA through the
``kinto_emailer.tls_ca_file`` setting, which adds a CA to the system's trust store.
"""

import os
import shutil
import ssl
import tempfile

import pytest
import trustme
from aiosmtpd.controller import Controller
from pyramid_mailer.message import Message

from kinto_emailer.compose import drafts
from kinto_emailer.config import read_settings
from kinto_emailer.delivery.service import Delivery
from kinto_emailer.smtp.connection import PermanentFailure, SMTPTransport, classify
from kinto_emailer.smtp.mime import render
from tests.support import EmailerWebTest, SMTPServer, free_port


CA = trustme.CA()


class TLSServer(SMTPServer):
    """An SMTP server with a certificate of ``CA`` for ``names``: STARTTLS, or SMTPS."""

    def __init__(self, names=("127.0.0.1", "localhost"), implicit=False):
        super().__init__()
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        CA.issue_cert(*names).configure_cert(context)
        tls = (
            {"ssl_context": context}
            if implicit
            else {
                "tls_context": context,
                "require_starttls": True,
            }
        )
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port, **tls)


@pytest.fixture(scope="module")
def ca_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    CA.cert_pem.write_to_path(str(path))
    return str(path)


def settings(server, implicit=False, **extra):
    return read_settings(
        {
            "mail.host": "127.0.0.1",
            "mail.port": str(server.port),
            "mail.ssl" if implicit else "mail.tls": "true",
            **extra,
        }
    )


def send(emailer_settings):
    message = Message(subject="Hi", sender="k@example.com", recipients=["a@example.com"])
    message.body = "Hello"
    SMTPTransport(emailer_settings).send_one(render(message, "k@example.com"))


@pytest.fixture(params=[False, True], ids=["starttls", "smtps"])
def server(request):
    server = TLSServer(implicit=request.param).start()
    server.implicit = request.param
    yield server
    server.stop()


def test_a_certificate_of_a_trusted_ca_is_accepted(server, ca_file):
    send(settings(server, server.implicit, **{"kinto_emailer.tls_ca_file": ca_file}))
    assert len(server.inbox.wait_for(1)) == 1


def test_a_certificate_of_an_unknown_ca_is_refused_for_good(server):
    with pytest.raises(ssl.SSLCertVerificationError) as error:
        send(settings(server, server.implicit))
    assert isinstance(classify(error.value), PermanentFailure)
    assert server.inbox.messages == []


def test_a_certificate_for_another_host_name_is_refused(ca_file):
    server = TLSServer(names=("mail.example.org",)).start()
    try:
        with pytest.raises(ssl.SSLCertVerificationError, match="mismatch|doesn't match"):
            send(settings(server, **{"kinto_emailer.tls_ca_file": ca_file}))
    finally:
        server.stop()


def test_tls_verify_false_sends_anyway_and_warns_at_start_up(server, caplog):
    emailer_settings = settings(server, server.implicit, **{"kinto_emailer.tls_verify": "false"})
    with caplog.at_level("WARNING", logger="kinto_emailer"):
        Delivery(emailer_settings, drafts)
    assert "kinto_emailer.tls_verify is false" in caplog.text
    send(emailer_settings)
    assert len(server.inbox.wait_for(1)) == 1


class STARTTLSWebTest(EmailerWebTest):
    """Through the real app: the worker speaks STARTTLS to the server."""

    trusted = True

    @classmethod
    def setUpClass(cls):
        cls.tls_server = TLSServer().start()
        cls.directory = tempfile.mkdtemp()
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        cls.tls_server.stop()
        shutil.rmtree(cls.directory)

    @classmethod
    def extra_settings(cls):
        extra = {"mail.port": str(cls.tls_server.port), "mail.tls": "true"}
        if cls.trusted:
            extra["kinto_emailer.tls_ca_file"] = os.path.join(cls.directory, "ca.pem")
            CA.cert_pem.write_to_path(extra["kinto_emailer.tls_ca_file"])
        return extra

    def setUp(self):
        super().setUp()
        self.inbox = self.tls_server.inbox
        self.inbox.clear()
        self.create_bucket()
        hook = {"resource_name": "record", "template": "{id}", "recipients": ["a@example.com"]}
        self.create_collection(data=self.hooked(hook))


class TrustedSTARTTLSTest(STARTTLSWebTest):
    def test_a_write_emails_through_a_trusted_starttls_server(self):
        self.create_record()
        self.drain()
        assert len(self.inbox.messages) == 1

    def test_the_heartbeat_is_true_through_a_trusted_starttls_server(self):
        assert self.app.get("/__heartbeat__").json["emailer"] is True


class UntrustedSTARTTLSTest(STARTTLSWebTest):
    trusted = False

    def test_an_untrusted_server_gets_nothing_and_the_refusal_is_logged(self):
        with self.assertLogs("kinto_emailer", level="ERROR") as logs:
            self.create_record(status=201)
            self.drain()
        assert self.inbox.messages == []
        assert "TLS certificate refused" in logs.output[-1]
        assert "recipients=1" in logs.output[-1] and "a@example.com" not in logs.output[-1]

    def test_the_heartbeat_is_false_when_the_certificate_is_not_trusted(self):
        assert self.app.get("/__heartbeat__", status=503).json["emailer"] is False


def test_no_server_at_all_is_not_mistaken_for_a_certificate_problem():
    with pytest.raises(OSError) as error:
        send(read_settings({"mail.port": str(free_port()), "mail.tls": "true"}))
    assert not isinstance(classify(error.value), PermanentFailure)
