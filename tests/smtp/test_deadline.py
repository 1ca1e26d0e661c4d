"""deadline.py (issue 10, point 6): one SMTP exchange has a deadline as a whole. A server
that trickles, each line in time but never done, is a temporary failure, retried as such."""

import asyncio
import socket
import threading

from tests.delivery.test_service import LogWatcher
from tests.support import FAST_RETRIES, EmailerWebTest, Inbox, LoopbackListener, SMTPServer


HOOK = {
    "resource_name": "record",
    "subject": "record {id}",
    "template": "Record {id}",
    "recipients": ["alice@example.com"],
}
#: Each line comes well within a step; the exchange never ends.
TRICKLE_INTERVAL = 0.1
SHORT_TIMEOUTS = {
    "kinto_emailer.smtp_timeout": "0.5",
    "kinto_emailer.smtp_exchange_timeout": "1",
    **FAST_RETRIES,
}


class TricklingServer(LoopbackListener):
    """A mail server that never finishes its greeting: one ``220-`` line every
    ``TRICKLE_INTERVAL`` seconds. Once ``relay_port`` is set, new connections are relayed to
    that (real) server instead."""

    def __init__(self):
        super().__init__()
        self.relay_port = None
        self.trickled = 0

    def handle(self, connection):
        if self.relay_port is None:
            self._trickle(connection)
        else:
            self._relay(connection)

    def _trickle(self, connection):
        self.trickled += 1
        with connection:
            while not self.stopped.wait(TRICKLE_INTERVAL):
                try:
                    connection.sendall(b"220-kinto-emailer test server, still greeting\r\n")
                except OSError:
                    return  # The client gave up.

    def _relay(self, connection):
        upstream = socket.create_connection(("127.0.0.1", self.relay_port))
        back = threading.Thread(target=_pump, args=(upstream, connection), daemon=True)
        back.start()
        _pump(connection, upstream)
        back.join()
        connection.close()
        upstream.close()


def _pump(source, target):
    try:
        while data := source.recv(65536):
            target.sendall(data)
    except OSError:
        pass
    for sock in (source, target):
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class TrickledDataInbox(Inbox):
    """Answers the end of the email numbered ``trickle_at`` (from 1) with ``250-`` lines,
    one every ``TRICKLE_INTERVAL`` seconds, until the client leaves; accepts the others."""

    trickle_at = 2

    def __init__(self):
        super().__init__()
        self.data_commands = 0

    async def handle_DATA(self, server, session, envelope):
        self.data_commands += 1
        if self.data_commands != self.trickle_at:
            return await super().handle_DATA(server, session, envelope)
        for _ in range(200):  # A bound for the test, not for the client.
            if server.transport is None or server.transport.is_closing():
                break
            await server.push("250-still thinking")
            await asyncio.sleep(TRICKLE_INTERVAL)
        return "451 4.3.0 never mind"


class TricklingWebTest(EmailerWebTest):
    __test__ = False
    attempts = 2

    @classmethod
    def setUpClass(cls):
        cls.trickler = TricklingServer().start()
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        cls.app.app.registry.emailer.delivery.stop(timeout=1)
        super().tearDownClass()
        cls.trickler.stop()

    @classmethod
    def extra_settings(cls):
        return {
            **SHORT_TIMEOUTS,
            "mail.port": str(cls.trickler.port),
            "kinto_emailer.retry_max_attempts": str(cls.attempts),
        }

    def setUp(self):
        super().setUp()
        self.create_bucket()
        self.create_collection(data=self.hooked(HOOK))

    def good_server(self):
        """A real server behind the trickler: from now on, connections reach it."""
        server = SMTPServer().start()
        self.addCleanup(server.stop)
        self.trickler.relay_port = server.port
        self.inbox = server.inbox
        return server


class GivenUpTest(TricklingWebTest):
    __test__ = True

    def test_a_trickling_greeting_is_retried_then_failed_and_later_emails_still_go(self):
        with self.assertLogs("kinto_emailer", level="WARNING") as logs:
            self.create_record()
            self.drain(timeout=30)
        retried = [line for line in logs.output if "Email retried" in line]
        failed = [line for line in logs.output if "Email failed" in line]
        assert len(retried) == 1 and "attempt=1/2" in retried[0], logs.output
        assert "took more than 1s to connect" in retried[0]
        assert "kinto_emailer.smtp_exchange_timeout" in retried[0]
        assert len(failed) == 1 and "gave up after 2 attempt(s)" in failed[0], logs.output
        assert self.trickler.trickled == 2

        # The worker is not held: the next email goes as soon as a server answers.
        self.good_server()
        rid = self.create_record().json["data"]["id"]
        self.drain(timeout=30)
        assert [m["Subject"] for m in self.inbox.wait_for(1)] == [f"record {rid}"]


class RecoveredTest(TricklingWebTest):
    __test__ = True
    attempts = 6

    def test_emails_held_by_a_trickling_server_arrive_once_a_good_one_answers(self):
        with self.assertLogs("kinto_emailer", level="WARNING") as logs:
            with LogWatcher("Email retried") as watcher:
                ids = [self.create_record().json["data"]["id"] for _ in range(3)]
                assert watcher.seen.wait(30)
            self.good_server()
            self.drain(timeout=30)
        assert sorted(m["Subject"] for m in self.inbox.wait_for(3)) == sorted(
            f"record {rid}" for rid in ids
        )
        assert not any("Email failed" in line for line in logs.output), logs.output


class TrickledReplyTest(EmailerWebTest):
    """A server that greets at once but never finishes its reply to one email of a burst."""

    @classmethod
    def setUpClass(cls):
        cls.server = SMTPServer()
        cls.server.inbox = TrickledDataInbox()
        cls.server.controller.handler = cls.server.inbox
        cls.server.start()
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        cls.app.app.registry.emailer.delivery.stop(timeout=1)
        super().tearDownClass()
        cls.server.stop()

    @classmethod
    def extra_settings(cls):
        return {**SHORT_TIMEOUTS, "mail.port": str(cls.server.port)}

    def setUp(self):
        super().setUp()
        self.inbox = self.server.inbox
        self.create_bucket()
        self.create_collection(data=self.hooked(HOOK))

    def test_the_trickled_email_is_retried_and_the_rest_of_the_burst_goes(self):
        path = "/buckets/b/collections/c/records"
        requests = [{"method": "POST", "path": path, "body": {"data": {}}} for _ in range(3)]
        with self.assertLogs("kinto_emailer", level="WARNING") as logs:
            response = self.app.post_json("/batch", {"requests": requests}, headers=self.headers)
            self.drain(timeout=30)
        ids = [r["body"]["data"]["id"] for r in response.json["responses"]]
        arrived = [m["Subject"] for m in self.inbox.wait_for(3)]
        assert sorted(arrived) == sorted(f"record {rid}" for rid in ids)
        assert arrived[-1] == f"record {ids[1]}"  # The second, once more, after the others.
        [retried] = [line for line in logs.output if "Email retried" in line]
        assert "took more than 1s to take an email" in retried
        assert self.inbox.data_commands == 4
