"""service.py and worker.py through the real app: off the request path, retried, bounded."""

import logging
import threading
import time

import pytest
from pyramid.exceptions import ConfigurationError

from kinto_emailer.config import read_settings
from kinto_emailer.delivery import worker as worker_module
from kinto_emailer.outbox.testing import email
from tests.support import ALICE, FAST_RETRIES, EmailerWebTest, SMTPServer, free_port, record_hook


RECIPIENT = ALICE


class LogWatcher(logging.Handler):
    """Lets a test wait for a log line instead of sleeping."""

    def __init__(self, needle):
        super().__init__()
        self.needle = needle
        self.seen = threading.Event()

    def emit(self, record):
        if self.needle in record.getMessage():
            self.seen.set()

    def __enter__(self):
        logging.getLogger("kinto_emailer").addHandler(self)
        return self

    def __exit__(self, *exc_info):
        logging.getLogger("kinto_emailer").removeHandler(self)


class OwnServerTest(EmailerWebTest):
    """The app mails a server of its own, so a test can slow it down, stop or script it."""

    port = None

    @classmethod
    def setUpClass(cls):
        cls.port = free_port()
        super().setUpClass()

    @classmethod
    def get_app_settings(cls, extras=None):
        settings = super().get_app_settings(extras)
        settings["mail.port"] = str(cls.port)
        settings.update(FAST_RETRIES)
        settings.update(cls.more_settings())
        return settings

    @classmethod
    def more_settings(cls):
        return {}

    def setUp(self):
        super().setUp()
        self.server = SMTPServer(self.port)
        self.inbox = self.server.inbox
        self.create_bucket()
        self.create_collection(data=self.hooked(record_hook()))

    def start_server(self):
        self.server.start()
        self.addCleanup(self.server.stop)

    def batch_create(self, count):
        requests = [
            {"method": "POST", "path": "/buckets/b/collections/c/records", "body": {"data": {}}}
            for _ in range(count)
        ]
        response = self.app.post_json("/batch", {"requests": requests}, headers=self.headers)
        assert all(r["status"] == 201 for r in response.json["responses"])


class SlowServerTest(OwnServerTest):
    def test_a_server_that_holds_the_email_does_not_hold_the_write(self):
        self.start_server()
        self.inbox.gate.clear()  # The server answers no DATA until the writes are done.
        for _ in range(5):
            self.create_record()
        assert self.inbox.wait_started(1)
        assert self.inbox.messages == []
        self.inbox.gate.set()
        self.drain()
        assert len(self.inbox.messages) == 5

    def test_a_burst_reuses_one_smtp_connection(self):
        self.start_server()
        self.batch_create(20)
        self.drain()
        assert len(self.inbox.messages) == 20
        assert self.inbox.sessions == 1


class SteadyStreamTest(OwnServerTest):
    def claims(self):
        """The size of each claim that took emails, from now on."""
        outbox = self.app.app.registry.emailer.delivery.worker.outbox
        sizes, claim = [], outbox.claim

        def counted(limit):
            claimed = claim(limit)
            if claimed:
                sizes.append(len(claimed))
            return claimed

        outbox.claim = counted
        self.addCleanup(delattr, outbox, "claim")
        return sizes

    def test_a_steady_stream_is_sent_in_a_few_rounds_not_one_per_email(self):
        self.start_server()
        delivery = self.app.app.registry.emailer.delivery
        self.drain()
        sizes = self.claims()
        for n in range(200):  # One email every 5 ms or so: a round ends, the next comes.
            delivery.put([email(subject=f"s{n}", to=RECIPIENT)])
            time.sleep(0.005)
        self.drain()
        assert len(self.inbox.messages) == 200
        # One round per email without the steady linger; with it, ~a round per 0.1 s.
        assert len(sizes) <= 40, sizes

    def test_after_a_quiet_spell_the_worker_lingers_only_briefly(self):
        worker = self.app.app.registry.emailer.delivery.worker
        worker._round_ended = time.monotonic()
        assert worker._linger() == worker_module.LINGER_STEADY
        worker._round_ended = time.monotonic() - 1
        assert worker._linger() == worker_module.LINGER


class ServerDownThenUpTest(OwnServerTest):
    def test_an_email_written_while_the_server_is_down_arrives_once_it_is_up(self):
        with LogWatcher("Email retried") as watcher:
            self.create_record()
            assert watcher.seen.wait(10)
        self.start_server()
        self.drain()
        assert len(self.inbox.messages) == 1
        assert self.inbox.messages[0].envelope_to == [RECIPIENT]


class TemporaryRefusalTest(OwnServerTest):
    def test_two_451_replies_then_success_deliver_once(self):
        self.start_server()
        self.inbox.scripted_replies = ["451 4.3.0 try later", "451 4.3.0 try later"]
        with self.assertLogs("kinto_emailer", level="WARNING") as logs:
            rid = self.create_record().json["data"]["id"]
            self.drain()
        assert [m["Subject"] for m in self.inbox.messages] == [f"create record {rid}"]
        retries = [line for line in logs.output if "451" in line and "Email retried" in line]
        assert len(retries) == 2, logs.output

    def test_a_server_that_never_accepts_is_given_up_after_the_last_attempt(self):
        self.start_server()
        self.inbox.scripted_replies = ["451 4.3.0 try later"] * 8
        with self.assertLogs("kinto_emailer", level="ERROR") as logs:
            self.create_record()
            self.drain()
        assert self.inbox.messages == []
        last = logs.output[-1]
        assert "Email failed" in last and "gave up after 8 attempt(s)" in last
        assert "recipients=1" in last and "hook=/buckets/b/collections/c#0" in last
        assert RECIPIENT not in last


class PermanentRefusalTest(OwnServerTest):
    def test_a_5xx_reply_is_logged_with_its_recipient_count_and_reason_and_not_retried(self):
        self.start_server()
        # Were it retried, the second try would be accepted and arrive.
        self.inbox.scripted_replies = ["550 5.1.1 mailbox unavailable"]
        with self.assertLogs("kinto_emailer", level="ERROR") as logs:
            self.create_record()
            self.drain()
        assert self.inbox.messages == []
        assert 'reason="permanent: 550 5.1.1 mailbox unavailable"' in logs.output[-1]
        assert "recipients=1" in logs.output[-1] and RECIPIENT not in logs.output[-1]


class FullQueueTest(OwnServerTest):
    @classmethod
    def more_settings(cls):
        return {"kinto_emailer.queue_size": "1"}

    def test_a_full_queue_drops_emails_with_a_log_and_never_fails_the_write(self):
        self.start_server()
        self.inbox.delay = 0.2
        with self.assertLogs("kinto_emailer", level="ERROR") as logs:
            self.batch_create(3)  # Raises unless all three writes answer 201.
        dropped = [line for line in logs.output if "Email dropped" in line]
        assert len(dropped) == 2
        assert all("queue full (kinto_emailer.queue_size = 1)" in line for line in dropped)
        # The recipient count, never the address nor the subject.
        assert all("recipients=1" in line and RECIPIENT not in line for line in dropped)
        assert not any("create record" in line for line in dropped)
        self.drain()
        assert len(self.inbox.messages) == 1


class DrainTest(OwnServerTest):
    def test_drain_answers_false_when_emails_are_still_waiting(self):
        self.create_record()
        assert self.app.app.registry.emailer.delivery.drain(timeout=0.05) is False
        self.start_server()
        self.drain()
        assert len(self.inbox.messages) == 1


class ShutdownTest(OwnServerTest):
    @classmethod
    def more_settings(cls):
        # Longer than the test: only stop() can make these emails leave now.
        return {"kinto_emailer.retry_base_delay": "60", "kinto_emailer.retry_max_delay": "60"}

    def test_stopping_delivers_what_is_held_and_logs_what_it_could_not(self):
        delivery = self.app.app.registry.emailer.delivery
        with LogWatcher("Email retried") as watcher:
            self.create_record()
            assert watcher.seen.wait(10)
        self.batch_create(2)
        self.start_server()
        with self.assertLogs("kinto_emailer", level="INFO"):
            assert delivery.stop(timeout=5)
        assert len(self.inbox.messages) == 3


class ShutdownWithServerDownTest(OwnServerTest):
    def test_what_cannot_be_delivered_at_shutdown_is_logged_with_its_recipient_count(self):
        delivery = self.app.app.registry.emailer.delivery
        with self.assertLogs("kinto_emailer", level="ERROR") as logs:
            self.create_record()
            assert delivery.stop(timeout=0.5)
        not_delivered = [line for line in logs.output if "not delivered at shutdown" in line]
        assert len(not_delivered) == 1 and "Email dropped" in not_delivered[0]
        assert "recipients=1" in not_delivered[0] and RECIPIENT not in not_delivered[0]


class BigGroupTest(OwnServerTest):
    def test_every_member_of_a_200_member_group_receives_the_email(self):
        self.start_server()
        members = [f"ldap:member{i:03}@example.com" for i in range(200)]
        self.app.put_json(
            "/buckets/b/groups/everyone", {"data": {"members": members}}, headers=self.headers
        )
        to_everyone = record_hook(recipients=["/buckets/b/groups/everyone"])
        self.create_collection("b", "big", self.hooked(to_everyone))
        self.create_record(collection_id="big")
        self.drain()
        [message] = self.inbox.messages
        expected = [m.split(":", 1)[1] for m in members]
        assert sorted(message.envelope_to) == expected
        assert sorted(a.addr_spec for a in message["To"].addresses) == expected
        # Folded: aiosmtpd answers "500 Line too long" past 998 characters anyway.
        assert max(len(line) for line in self.inbox.messages[0].raw.splitlines()) <= 78


@pytest.mark.parametrize(
    "settings, message",
    [
        (
            {"kinto_emailer.queue_processor": "true"},
            "Setting 'kinto_emailer.queue_processor' needs 'mail.queue_path': "
            "set the Maildir to deliver from, or remove 'kinto_emailer.queue_processor'.",
        ),
        (
            {"kinto_emailer.tls_ca_file": "/nowhere/ca.pem"},
            "Setting 'kinto_emailer.tls_ca_file' must name a readable PEM file, "
            "got '/nowhere/ca.pem'.",
        ),
        (
            {"kinto_emailer.tls_verify": "perhaps"},
            "Setting 'kinto_emailer.tls_verify' must be true or false, got 'perhaps'.",
        ),
        (
            {"kinto_emailer.queue_size": "0"},
            "Setting 'kinto_emailer.queue_size' must be a whole number from 1 to 1000000, "
            "got '0'.",
        ),
        (
            {"kinto_emailer.retry_max_delay": "soon"},
            "Setting 'kinto_emailer.retry_max_delay' must be a number of seconds greater than 0 "
            "and at most 86400, got 'soon'.",
        ),
    ],
)
def test_a_bad_delivery_setting_stops_start_up_naming_its_key(settings, message):
    with pytest.raises(ConfigurationError) as error:
        read_settings(settings)
    assert str(error.value) == message


def test_delivery_settings_have_the_documented_defaults():
    settings = read_settings({})
    assert (settings.queue_size, settings.retry_max_attempts, settings.retry_max_delay) == (
        10000,
        8,
        300,
    )
    assert (settings.shutdown_timeout, settings.smtp_timeout, settings.tls_verify) == (
        10,
        10,
        True,
    )
    assert settings.retry_base_delay == 1 and settings.queue_processor is False
