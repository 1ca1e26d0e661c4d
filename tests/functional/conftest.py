"""One real kinto process on PostgreSQL for the functional suite, mailing a loopback server."""

import uuid

import pytest
from kinto_http import Client
from kinto_signer.generate_keypair import generate_keypair

from tests.functional.server import KintoServer
from tests.support import SMTPServer, TemporaryDatabase


AUTH = ("alice", "secret")
LOG_LINES = 150
_running = []  # The server whose log a failing test prints.


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed and _running:
        server = _running[-1]
        tail = "\n".join(server.log().splitlines()[-LOG_LINES:])
        report.sections.append((f"kinto log, last {LOG_LINES} lines of {server.log_path}", tail))


@pytest.fixture(scope="session")
def smtp():
    server = SMTPServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def kinto_server(smtp, tmp_path_factory):
    directory = tmp_path_factory.mktemp("kinto")
    private_key, public_key = directory / "signer.key", directory / "signer.pub"
    generate_keypair(private_key, public_key)
    with TemporaryDatabase("kinto_emailer_functional") as database:
        server = KintoServer(directory, database.url, smtp.port, private_key, public_key)
        _running.append(server)
        try:
            server.migrate()
            server.start()
            yield server
        finally:
            server.stop()
            _running.remove(server)


@pytest.fixture
def inbox(smtp):
    smtp.inbox.clear()
    return smtp.inbox


def hooked(*hooks):
    return {"kinto-emailer": {"hooks": list(hooks)}}


class Scenario:
    """A bucket of its own on the real server, and the emails its writes send."""

    def __init__(self, server, inbox):
        self.client = Client(server_url=server.url, auth=AUTH)
        self.inbox = inbox
        self.bucket = f"b-{uuid.uuid4().hex[:10]}"
        self.client.create_bucket(id=self.bucket)
        # Its emails prove that delivery has caught up with every write made before.
        sentinel = {"resource_name": "record", "subject": "flushed", "template": ""}
        self.client.create_collection(
            id="flush",
            bucket=self.bucket,
            data=hooked({**sentinel, "recipients": ["flush@example.com"]}),
        )

    def flushed(self, count, timeout=15):
        """Exactly ``count`` emails, checked after a later email has arrived."""
        arrived = self.inbox.wait_for(count, timeout)
        assert len(arrived) >= count, f"{len(arrived)} of {count} emails arrived in {timeout}s"
        self.client.create_record(bucket=self.bucket, collection="flush", data={})
        messages = self.inbox.wait_for(count + 1, timeout)
        flushes = [m for m in messages if m["Subject"] == "flushed"]
        others = [m for m in messages if m["Subject"] != "flushed"]
        assert len(flushes) == 1, f"the flush email didn't arrive after {len(others)} others"
        assert len(others) == count, [m["Subject"] for m in others]
        return others


@pytest.fixture
def scenario(kinto_server, inbox):
    return Scenario(kinto_server, inbox)
