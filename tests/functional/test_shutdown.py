"""SIGTERM stops ``kinto start`` as cleanly as Ctrl-C: the worker delivers what it holds, and
whatever the mail server does, ``kinto start`` and ``kinto-emailer worker`` are gone within
``shutdown_timeout`` (plus a second), what they held told dropped or left in the outbox."""

import signal
import socket
import subprocess
import threading
import time

import pytest
from kinto_http import Client

from tests.functional.conftest import AUTH
from tests.functional.server import KintoServer
from tests.support import Inbox, LoopbackListener, SMTPServer, hooked, record_hook


pytestmark = pytest.mark.functional

HOOK = record_hook("{record_id}", template="Record {record_id}")


@pytest.fixture
def slow_smtp():
    """Holds each email until its inbox's ``gate`` opens, then takes 0.3s to accept it."""
    server = SMTPServer(inbox=Inbox(delay=0.3)).start()
    server.inbox.gate.clear()
    yield server
    server.inbox.gate.set()
    server.stop()


def hold_five_emails(server, inbox):
    """Five emails handed to the worker, the first stuck in DATA until the gate opens."""
    client = Client(server_url=server.url, auth=AUTH)
    client.create_bucket(id="b")
    client.create_collection(id="c", bucket="b", data=hooked(HOOK))
    records = [client.create_record(bucket="b", collection="c", data={}) for _ in range(5)]
    ids = [record["data"]["id"] for record in records]
    assert inbox.wait_started(1, timeout=30), "the worker never started to send"
    return ids


def terminate(server):
    server.process.send_signal(signal.SIGTERM)
    # Logged by the worker once SIGTERM reached it, while it still holds every email.
    server.wait_for_log("Stopping delivery: 5 email(s) to deliver within")


def test_sigterm_delivers_the_emails_held_for_a_slow_server(tmp_path, slow_smtp):
    server = KintoServer(tmp_path, None, slow_smtp.port, **{"kinto_emailer.shutdown_timeout": 60})
    server.start()
    try:
        ids = hold_five_emails(server, slow_smtp.inbox)
        terminate(server)
        assert slow_smtp.inbox.messages == []
        slow_smtp.inbox.gate.set()
        # Like Ctrl-C: pserve takes it as a normal stop.
        assert server.process.wait(60) == 0, server.log()
    finally:
        server.stop()
    assert sorted(m["Subject"] for m in slow_smtp.inbox.messages) == sorted(ids)
    log = server.log()
    assert "SIGTERM received: stopping as on Ctrl-C" in log
    assert "Delivery stopped: nothing left to deliver" in log
    assert "Email dropped" not in log


# Issue 24, attack 6: a mail server that holds the exchange can't hold the stop.

#: ``shutdown_timeout`` for these tests, and how much later the process must be gone.
GRACE, SLACK = 3, 1


class MisbehavingServer(LoopbackListener):
    """A mail server on loopback that never lets an exchange end: ``trickle`` sends a
    ``220-`` line every second and never the last one; ``silent`` accepts the connection
    and says nothing; ``stall`` answers everything until the end of the email's data, then
    nothing; ``unanswered`` never completes a connection (its queue is full: the kernel
    drops the client's SYNs). ``holding`` counts the exchanges it holds (at the data, for
    ``stall``)."""

    def __init__(self, mode, port=None):
        super().__init__(port, backlog=0)
        self.mode = mode
        self.condition = threading.Condition()
        self.holding = 0
        self.filler = None

    def start(self):
        if self.mode == "unanswered":  # Never accepted: fills the one place in the queue.
            self.filler = socket.create_connection(("127.0.0.1", self.port))
            return self
        return super().start()

    def stop(self):
        super().stop()
        if self.filler is not None:
            self.filler.close()

    def wait_holding(self, timeout=30):
        if self.mode == "unanswered":
            return _wait(self._syn_sent, timeout)
        with self.condition:
            return self.condition.wait_for(lambda: self.holding > 0, timeout=timeout)

    def _syn_sent(self):
        """Whether a connection to this server waits for the handshake (Linux's table)."""
        with open("/proc/net/tcp") as table:
            rows = [line.split() for line in table.readlines()[1:]]
        # Columns: slot, local, remote (hex address:port), state (02: SYN_SENT).
        return any(int(row[2].split(":")[1], 16) == self.port and row[3] == "02" for row in rows)

    def _held(self):
        with self.condition:
            self.holding += 1
            self.condition.notify_all()

    def handle(self, connection):
        with connection:
            try:
                getattr(self, f"_{self.mode}")(connection)
            except OSError:
                return  # The client left.

    def _trickle(self, connection):
        self._held()
        while not self.stopped.wait(1):
            connection.sendall(b"220-kinto-emailer test server, still greeting\r\n")

    def _silent(self, connection):
        self._held()
        while connection.recv(4096):  # Until the client leaves.
            pass

    def _stall(self, connection):
        connection.sendall(b"220 ready\r\n")
        lines = connection.makefile("rb")
        for line in lines:
            command = line[:4].upper()
            if command in (b"EHLO", b"HELO", b"MAIL", b"RCPT", b"RSET", b"NOOP"):
                connection.sendall(b"250 ok\r\n")
            elif command == b"DATA":
                connection.sendall(b"354 go ahead\r\n")
                for data_line in lines:
                    if data_line == b".\r\n":
                        break
                self._held()  # The email's data is in: its reply never comes.
                while connection.recv(4096):
                    pass
                return
            else:
                connection.sendall(b"502 not here\r\n")


def _wait(condition, timeout):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


MODES = ["trickle", "silent", "stall", "unanswered"]


@pytest.fixture(params=MODES)
def bad_smtp(request):
    server = MisbehavingServer(request.param).start()
    yield server
    server.stop()


def stopped_in_time(process):
    """SIGTERM ``process``; the seconds it took to exit, failing past the grace period."""
    started = time.monotonic()
    process.process.send_signal(signal.SIGTERM)
    try:
        returncode = process.process.wait(GRACE + SLACK + 10)
    except subprocess.TimeoutExpired:
        pytest.fail(f"still running {GRACE + SLACK + 10}s after SIGTERM:\n{process.log()}")
    took = time.monotonic() - started
    assert took <= GRACE + SLACK, f"exited {took:.1f}s after SIGTERM:\n{process.log()}"
    return returncode


def drop_lines(log):
    return [line for line in log.splitlines() if "Email dropped" in line]


def test_sigterm_ends_within_the_grace_period_whatever_the_mail_server_does(tmp_path, bad_smtp):
    settings = {"kinto_emailer.shutdown_timeout": GRACE}
    server = KintoServer(tmp_path, None, bad_smtp.port, **settings)
    server.start()
    try:
        client = Client(server_url=server.url, auth=AUTH)
        client.create_bucket(id="b")
        client.create_collection(id="c", bucket="b", data=hooked(HOOK))
        for _ in range(5):
            client.create_record(bucket="b", collection="c", data={})
        assert bad_smtp.wait_holding(), "the worker never reached the mail server"
        assert stopped_in_time(server) == 0
    finally:
        server.stop()
    log = server.log()
    # The exchange under way is abandoned: every email is told lost, one line each.
    dropped = drop_lines(log)
    assert len(dropped) == 5, log
    assert all(line.endswith('reason="not delivered at shutdown"') for line in dropped)
    assert "Delivery stopped: 5 email(s) could not be delivered in time" in log


@pytest.fixture(params=MODES)
def bad_smtp_of(request, outbox):
    """A misbehaving server on the PostgreSQL deployment's mail server port."""
    server = MisbehavingServer(request.param, port=outbox.smtp_port).start()
    yield server
    server.stop()


#: A lease far longer than the test: rows are claimable again because they were given back.
LONG_LEASE = {"kinto.kinto_emailer.outbox_lease": "300"}


def left_for_the_next_worker(outbox, count):
    rows = outbox.sql("SELECT status, worker, attempts FROM kinto_emailer_outbox")
    assert len(rows) == count
    # Waiting again, held by no one, no attempt spent on the abandoned exchange.
    assert {(status, worker) for status, worker, _ in rows} <= {("queued", None)}, rows
    assert {attempts for *_, attempts in rows} == {0}, rows


@pytest.mark.postgresql
def test_sigterm_on_the_worker_command_ends_in_time_and_leaves_the_rows(outbox, bad_smtp_of):
    settings = {
        "kinto.kinto_emailer.outbox_worker": "false",
        "kinto.kinto_emailer.shutdown_timeout": GRACE,
        **LONG_LEASE,
    }
    web = outbox.web(**settings).start()
    client = Client(server_url=web.url, auth=AUTH)
    client.create_bucket(id="b")
    client.create_collection(id="c", bucket="b", data=hooked(HOOK))
    for _ in range(5):
        client.create_record(bucket="b", collection="c", data={})
    worker = outbox.worker(web).start()
    assert bad_smtp_of.wait_holding(), "the worker never reached the mail server"

    assert stopped_in_time(worker) == 0
    left_for_the_next_worker(outbox, 5)
    log = worker.log()
    assert drop_lines(log) == []
    assert "Delivery stopped: 5 email(s) left in the outbox" in log


@pytest.mark.postgresql
def test_sigterm_on_kinto_start_with_the_postgresql_outbox_ends_in_time(outbox, bad_smtp_of):
    settings = {"kinto.kinto_emailer.shutdown_timeout": GRACE, **LONG_LEASE}
    web = outbox.web(**settings).start()
    client = Client(server_url=web.url, auth=AUTH)
    client.create_bucket(id="b")
    client.create_collection(id="c", bucket="b", data=hooked(HOOK))
    for _ in range(5):
        client.create_record(bucket="b", collection="c", data={})
    assert bad_smtp_of.wait_holding(), "the worker never reached the mail server"

    assert stopped_in_time(web) == 0
    left_for_the_next_worker(outbox, 5)
    assert "Delivery stopped: 5 email(s) left in the outbox" in web.log()
