"""One real kinto process on PostgreSQL for the functional suite, mailing a loopback server."""

import time
import uuid

import psycopg2
import pytest
from kinto_http import Client
from kinto_signer.generate_keypair import generate_keypair

from tests.functional.server import KintoServer
from tests.http_receiver import channel_settings
from tests.support import SMTPServer, TemporaryDatabase, free_port, hooked, record_hook


AUTH = ("alice", "secret")
LOG_LINES = 150
_running = []  # The server whose log a failing test prints.


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if not report.failed:
        return
    for process in _running:
        tail = "\n".join(process.log().splitlines()[-LOG_LINES:])
        report.sections.append((f"last {LOG_LINES} lines of {process.log_path}", tail))


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


class Processes:
    """The processes of a test: their logs are printed when it fails; ``stop_all`` at its end."""

    def __init__(self):
        self.started = []

    def __call__(self, process):
        self.started.append(process)
        _running.append(process)
        return process

    def stop_all(self):
        while self.started:
            process = self.started.pop()
            process.stop()
            _running.remove(process)


@pytest.fixture
def processes():
    registry = Processes()
    yield registry
    registry.stop_all()


@pytest.fixture
def inbox(smtp):
    smtp.inbox.clear()
    return smtp.inbox


class Scenario:
    """A bucket of its own on the real server, and the emails its writes send."""

    def __init__(self, server, inbox):
        self.client = Client(server_url=server.url, auth=AUTH)
        self.inbox = inbox
        self.bucket = f"b-{uuid.uuid4().hex[:10]}"
        self.client.create_bucket(id=self.bucket)
        # Its emails prove that delivery has caught up with every write made before.
        sentinel = record_hook("flushed", template="", recipients=["flush@example.com"])
        self.client.create_collection(id="flush", bucket=self.bucket, data=hooked(sentinel))

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


OUTBOX_SETTINGS = {
    "kinto.kinto_emailer.outbox": "postgresql",
    # Short, so that tests see a dead process's claims taken over and failures retried.
    "kinto.kinto_emailer.outbox_lease": "2",
    "kinto.kinto_emailer.retry_base_delay": "0.2",
    "kinto.kinto_emailer.queue_poll_interval": "0.2",
}
#: One email per record, whose subject is the record's id.
RECORD_HOOK = record_hook("{id}", template="Record {id}")


class Deployment:
    """Web processes and workers sharing one PostgreSQL outbox and one mail server port."""

    def __init__(self, directory, database, register, smtp_port):
        self.directory = directory
        self.database = database
        self.register = register
        self.smtp_port = smtp_port
        self.migrated = False

    def web(self, name="web", receiver=None, **settings):
        """A ``kinto start`` (not started yet) whose ini adds ``settings`` to the outbox's;
        with ``receiver``, its Slack channels and webhook endpoints post there
        (``channel_settings``)."""
        directory = self.directory / name
        directory.mkdir()
        if receiver is not None:
            channels = {f"kinto.{k}": v for k, v in channel_settings(receiver).items()}
            settings = {**channels, **settings}
        server = KintoServer(
            directory, self.database.url, self.smtp_port, **{**OUTBOX_SETTINGS, **settings}
        )
        if not self.migrated:
            server.migrate()
            self.migrated = True
        return self.register(server)

    def worker(self, web, name="worker"):
        """A ``kinto-emailer worker`` (not started yet) with the ini of ``web``."""
        return self.register(web.worker(name))

    def sql(self, query, params=None):
        connection = psycopg2.connect(self.database.url)
        try:
            with connection, connection.cursor() as cursor:
                cursor.execute(query, params)
                return cursor.fetchall() if cursor.description else []
        finally:
            connection.close()

    def statuses(self):
        return dict(self.sql("SELECT status, count(*) FROM kinto_emailer_outbox GROUP BY status"))

    def wait_delivered(self, timeout=60):
        """Wait until no row is waiting or being sent; returns the count of each status."""
        deadline = time.monotonic() + timeout
        while True:
            statuses = self.statuses()
            if not any(statuses.get(s) for s in ("queued", "sending", "retrying")):
                return statuses
            assert time.monotonic() < deadline, f"still to deliver after {timeout}s: {statuses}"
            time.sleep(0.1)

    def claimed_by(self, process):
        """The rows that ``process`` holds: id -> the end of its lease."""
        rows = self.sql(
            "SELECT id, lease_until FROM kinto_emailer_outbox "
            "WHERE status = 'sending' AND worker LIKE %s",
            (f"%:{process.process.pid}:%",),
        )
        return dict(rows)

    def records(self, bucket, collection):
        """The ids of the records committed in ``bucket/collection``."""
        rows = self.sql(
            "SELECT id FROM objects "
            "WHERE resource_name = 'record' AND parent_id = %s AND NOT deleted",
            (f"/buckets/{bucket}/collections/{collection}",),
        )
        return {id_ for (id_,) in rows}


@pytest.fixture
def outbox(tmp_path, processes):
    """A deployment on a database of its own; its mail server port is free until a test
    starts a server there (``SMTPServer(port=outbox.smtp_port)``)."""
    with TemporaryDatabase("kinto_emailer_outbox") as database:
        yield Deployment(tmp_path, database, processes, free_port())
        processes.stop_all()  # Before the database goes.
