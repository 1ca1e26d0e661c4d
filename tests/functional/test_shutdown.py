"""SIGTERM stops ``kinto start`` as cleanly as Ctrl-C: the worker delivers what it holds."""

import signal

import pytest
from kinto_http import Client

from tests.functional.conftest import AUTH
from tests.functional.server import KintoServer
from tests.support import Inbox, SMTPServer, hooked, record_hook


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


def test_what_sigterm_could_not_deliver_in_time_is_logged(tmp_path, slow_smtp):
    # The first email is accepted 0.3s after the gate opens, past this 0.1s limit.
    settings = {"kinto_emailer.shutdown_timeout": 0.1}
    server = KintoServer(tmp_path, None, slow_smtp.port, **settings)
    server.start()
    try:
        ids = hold_five_emails(server, slow_smtp.inbox)
        terminate(server)
        slow_smtp.inbox.gate.set()
        assert server.process.wait(60) == 0, server.log()
    finally:
        server.stop()
    [sent] = [m["Subject"] for m in slow_smtp.inbox.messages]
    assert sent == ids[0]
    log = server.log()
    dropped = [line for line in log.splitlines() if "Email dropped" in line]
    assert len(dropped) == 4, log
    assert all('reason="not delivered at shutdown"' in line for line in dropped)
    assert "Delivery stopped: 4 email(s) could not be delivered in time" in log
