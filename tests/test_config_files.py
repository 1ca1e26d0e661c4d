"""The configurations in config/: kinto.ini lists every setting with its default; smtp.ini
starts an app that mails a real STARTTLS server with a login (config/postgresql.ini is run by
tests/functional/test_installed.py)."""

import configparser
import re
import ssl

import pytest
import trustme
import webtest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from pyramid.paster import get_app

from kinto_emailer.config import ROWS
from tests.functional.server import ROOT
from tests.support import Inbox, free_port, hooked, record_hook


CONFIG = ROOT / "config"
PLUGIN_KEYS = [key for key in ROWS if key.startswith(("mail.", "kinto_emailer."))]
#: ``key = value`` lines of [app:main], set or commented out (``# key = value``).
SETTING_LINE = re.compile(
    r"^(#\s*)?(?P<key>(?:kinto\.)?(?:mail|kinto_emailer)\.[a-z_]+) =(?P<value>.*)$"
)


def documented_settings(path):
    """Each plugin setting that the ini names, with the value it gives, and whether it is set."""
    found = {}
    for line in path.read_text().splitlines():
        match = SETTING_LINE.match(line.strip())
        if match:
            key = match["key"].removeprefix("kinto.")
            assert key not in found, f"{key} is listed twice in {path.name}"
            found[key] = (match["value"].strip(), not match.group(1))
    return found


def test_kinto_ini_lists_every_setting_of_the_plugin_with_its_default():
    listed = documented_settings(CONFIG / "kinto.ini")
    assert sorted(listed) == sorted(PLUGIN_KEYS)
    commented = {key: value for key, (value, is_set) in listed.items() if not is_set}
    for key, value in commented.items():
        assert value == ROWS[key].metadata["default"], f"{key}: default {value!r} in kinto.ini"
    # What make run needs: the debug mailer, and a sender of its own.
    assert {key for key, (_, is_set) in listed.items() if is_set} == {
        "mail.default_sender",
        "mail.debug_mailer",
    }


@pytest.mark.parametrize("name", ["kinto.ini", "smtp.ini", "postgresql.ini"])
def test_each_configuration_names_only_settings_the_plugin_has(name):
    # An unknown kinto_emailer.* key stops the server: a typo in a shipped file would too.
    assert set(documented_settings(CONFIG / name)) <= set(PLUGIN_KEYS)
    configparser.ConfigParser(interpolation=None).read(CONFIG / name)  # Parses.


CA = trustme.CA()
USER, PASSWORD = "kinto@example.com", "from-the-environment"


class Authenticator:
    """Accepts ``USER`` with ``PASSWORD`` only; keeps each login tried."""

    def __init__(self):
        self.tried = []

    def __call__(self, server, session, envelope, mechanism, auth_data):
        login = (auth_data.login.decode(), auth_data.password.decode())
        self.tried.append(login)
        return AuthResult(success=login == (USER, PASSWORD))


@pytest.fixture
def starttls_server():
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    CA.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    inbox, authenticator, port = Inbox(), Authenticator(), free_port()
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=port,
        tls_context=context,
        require_starttls=True,
        authenticator=authenticator,
        auth_require_tls=True,
    )
    controller.start()
    controller.inbox, controller.authenticator = inbox, authenticator
    yield controller
    controller.stop()


def test_smtp_ini_sends_through_starttls_with_the_password_of_the_environment(
    starttls_server, tmp_path, monkeypatch
):
    ca_file = tmp_path / "ca.pem"
    CA.cert_pem.write_to_path(str(ca_file))
    # What an operator sets: the file names smtp.example.com:587 and no password.
    monkeypatch.setenv("MAIL_HOST", "127.0.0.1")
    monkeypatch.setenv("MAIL_PORT", str(starttls_server.port))
    monkeypatch.setenv("MAIL_PASSWORD", PASSWORD)
    monkeypatch.setenv("KINTO_EMAILER_TLS_CA_FILE", str(ca_file))
    wsgi = get_app(str(CONFIG / "smtp.ini"), "main")
    try:
        app = webtest.TestApp(wsgi)
        auth = {"Authorization": "Basic YWxpY2U6c2VjcmV0"}  # alice:secret
        app.put_json("/v1/buckets/b", {"data": {}}, headers=auth)
        hook = record_hook("{id} created", recipients=["alice@example.com"])
        app.put_json("/v1/buckets/b/collections/c", {"data": hooked(hook)}, headers=auth)
        app.put_json("/v1/buckets/b/collections/c/records/r1", {"data": {}}, headers=auth)
        assert wsgi.registry.emailer.delivery.drain(timeout=10)
        [message] = starttls_server.inbox.expect(1)
    finally:
        wsgi.registry.emailer.delivery.stop(timeout=1)
    assert message["Subject"] == "r1 created"
    assert message["From"] == "Kinto <kinto@example.com>"
    assert starttls_server.authenticator.tried == [(USER, PASSWORD)]
