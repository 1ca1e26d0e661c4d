"""``kinto-send-email`` against the test SMTP server: as a real process (its console script,
exit code and output), and called in this process for the other cases, as the script calls it."""

import email.utils
import os
import re
import subprocess
import sys
from datetime import datetime, timezone

import pytest

from kinto_emailer.cli.send_email import main
from tests.support import Inbox, SMTPServer, free_port, shared_smtp_server


COMMAND = os.path.join(os.path.dirname(sys.executable), "kinto-send-email")


def write_ini(tmp_path, **mail):
    lines = [
        "[app:main]",
        "use = egg:kinto",
        "kinto.storage_backend = kinto.core.storage.memory",
        "kinto.includes = kinto_emailer",
        *(f"mail.{key} = {value}" for key, value in mail.items()),
    ]
    path = tmp_path / "kinto.ini"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def run(*args, env=None):
    """The command as a real process; ``env`` adds to the environment."""
    return subprocess.run(
        [COMMAND, *args],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=os.getcwd(),
        env={**os.environ, **(env or {})},
    )


@pytest.fixture
def command(capsys):
    """The command called in this process, as its console script calls it: ``sys.exit(main())``
    with ``sys.argv``; what a real process would give back."""

    def call(*args):
        try:
            code = main(list(args))
        except SystemExit as e:  # argparse's usage errors.
            code = e.code
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess([COMMAND, *args], code or 0, out, err)

    return call


@pytest.fixture
def inbox():
    inbox = shared_smtp_server().inbox
    inbox.clear()
    yield inbox
    inbox.clear()


def assert_one_line_failure(result, *fragments):
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("kinto-send-email: ")
    assert "Traceback" not in result.stderr + result.stdout
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.mark.functional
def test_sends_a_test_email_and_exits_0(tmp_path, inbox):
    port = shared_smtp_server().port
    ini = write_ini(tmp_path, host="127.0.0.1", port=port, default_sender="kinto@example.com")
    result = run(ini, "Alice <alice@example.com>")
    assert result.returncode == 0, result.stderr
    assert f"127.0.0.1:{port}" in result.stdout
    [message] = inbox.wait_for(1)
    assert message.envelope_to == ["alice@example.com"]
    assert message.envelope_from == "kinto@example.com"
    assert message["Subject"] == "[kinto-emailer] Test email"
    assert "mail settings of this Kinto server work" in message.get_content()


def test_the_test_email_has_date_message_id_and_a_readable_body(tmp_path, inbox, command):
    port = shared_smtp_server().port
    ini = write_ini(tmp_path, host="127.0.0.1", port=port, default_sender="kinto@example.com")
    before = datetime.now(timezone.utc).replace(microsecond=0)
    assert command(ini, "alice@example.com").returncode == 0
    [message] = inbox.wait_for(1)
    assert before <= email.utils.parsedate_to_datetime(message["Date"])
    assert re.match(r"^<[^<>@\s]+@kinto-emailer>$", message["Message-ID"])
    assert message["Content-Transfer-Encoding"] == "7bit"


def test_debug_mailer_writes_the_test_email_to_a_file(tmp_path, inbox, command):
    mail_dir = tmp_path / "mail"
    ini = write_ini(tmp_path, debug_mailer="true", top_level_directory=str(mail_dir))
    result = command(ini, "alice@example.com")
    assert result.returncode == 0, result.stderr
    [eml] = os.listdir(mail_dir)
    written = email.message_from_string((mail_dir / eml).read_text())
    assert "Test email" in written["Subject"]
    assert written["Date"] and written["Message-ID"]
    assert inbox.messages == []


@pytest.mark.parametrize(
    "args", [(), ("only-one-argument.ini",), ("a.ini", "alice@example.com", "extra")]
)
def test_wrong_arguments_print_the_usage_and_exit_2(args, command):
    result = command(*args)
    assert result.returncode == 2
    assert result.stderr.startswith("usage: kinto-send-email")
    assert "Traceback" not in result.stderr


def test_an_invalid_recipient_prints_the_usage_and_exits_2(tmp_path, command):
    result = command(write_ini(tmp_path), "not-an-address")
    assert result.returncode == 2
    assert result.stderr.startswith("usage: kinto-send-email")
    assert "invalid recipient address 'not-an-address'" in result.stderr


def test_a_missing_ini_is_one_line_and_exit_1(tmp_path, command):
    missing = str(tmp_path / "nowhere.ini")
    result = command(missing, "alice@example.com")
    assert_one_line_failure(result, "cannot read", missing)


def test_an_ini_that_is_a_directory_is_one_line_and_exit_1(tmp_path, command):
    result = command(str(tmp_path), "alice@example.com")
    assert_one_line_failure(result, "cannot read", str(tmp_path))


def test_an_ini_without_an_app_section_is_one_line_and_exit_1(tmp_path, command):
    path = tmp_path / "kinto.ini"
    path.write_text("[server:main]\nport = 8888\n")
    result = command(str(path), "alice@example.com")
    assert_one_line_failure(result, "cannot read", str(path))


def test_an_ini_that_is_not_an_ini_is_one_line_and_exit_1(tmp_path, command):
    path = tmp_path / "kinto.ini"
    path.write_text("this is not = an ini file\n[unclosed\n")
    result = command(str(path), "alice@example.com")
    assert_one_line_failure(result, "cannot read", str(path))


def test_invalid_mail_settings_are_one_line_and_exit_1(tmp_path, command):
    result = command(write_ini(tmp_path, port="smtp"), "alice@example.com")
    assert_one_line_failure(result, "invalid mail settings", "'mail.port'")


@pytest.mark.functional
def test_a_closed_port_is_one_line_and_exit_1(tmp_path):
    port = free_port()
    result = run(write_ini(tmp_path, host="127.0.0.1", port=port), "alice@example.com")
    assert_one_line_failure(result, "could not send to alice@example.com", f"127.0.0.1:{port}")


def test_a_server_that_refuses_the_email_is_one_line_and_exit_1(tmp_path, inbox, command):
    inbox.scripted_replies.append("554 5.7.1 Relaying denied")
    port = shared_smtp_server().port
    result = command(write_ini(tmp_path, host="127.0.0.1", port=port), "alice@example.com")
    assert_one_line_failure(
        result, "could not send", "the mail server refused the email: 554 5.7.1 Relaying denied"
    )
    assert inbox.messages == []


class RefusingInbox(Inbox):
    """Refuses the recipients whose name is ``nobody``."""

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("nobody@"):
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"


@pytest.fixture
def refusing_server():
    server = SMTPServer(inbox=RefusingInbox()).start()
    yield server
    server.stop()


@pytest.mark.functional
def test_a_refused_recipient_is_one_clear_line_and_exit_1(tmp_path, refusing_server):
    ini = write_ini(tmp_path, host="127.0.0.1", port=refusing_server.port)
    result = run(ini, "nobody@example.com")
    assert_one_line_failure(
        result,
        "the mail server refused the recipient nobody@example.com: 550 5.1.1 no such user",
    )
    assert "{" not in result.stderr and "b'" not in result.stderr  # Not smtplib's dict.
    assert refusing_server.inbox.messages == []


@pytest.mark.functional
@pytest.mark.parametrize("variable", ["MAIL_PORT", "KINTO_MAIL_PORT"])
def test_the_environment_overrides_the_ini_as_for_kinto_start(tmp_path, inbox, variable):
    closed = free_port()
    ini = write_ini(tmp_path, host="127.0.0.1", port=closed, default_sender="kinto@example.com")
    port = shared_smtp_server().port
    result = run(ini, "alice@example.com", env={variable: str(port)})
    assert result.returncode == 0, result.stderr
    assert f"127.0.0.1:{port}" in result.stdout
    [message] = inbox.wait_for(1)
    assert message.envelope_to == ["alice@example.com"]


@pytest.mark.functional
def test_the_environment_overrides_any_mail_setting_of_the_ini(tmp_path, inbox):
    port = shared_smtp_server().port
    ini = write_ini(tmp_path, host="127.0.0.1", port=port, default_sender="ini@example.com")
    env = {"MAIL_DEFAULT_SENDER": "env@example.com"}
    assert run(ini, "alice@example.com", env=env).returncode == 0
    [message] = inbox.wait_for(1)
    assert message.envelope_from == "env@example.com"
