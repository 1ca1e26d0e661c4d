"""Durable mode: the Maildir at commit, delivered by the worker, once, across crashes.

The queue shared by processes on its own: test_maildir_queue.py.
"""

import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from base64 import b64encode
from json import dumps

import pytest
from repoze.sendmail.queue import QueueProcessor

from tests.support import EmailerWebTest, MaildirQueueMixin, SMTPServer, free_port


HOOK = {
    "resource_name": "record",
    "subject": "{id}",
    "template": "Record {id}",
    "recipients": ["alice@example.com"],
}


def files_in(*parts):
    path = os.path.join(*parts)
    return sorted(os.listdir(path)) if os.path.isdir(path) else []


def claimed_files(queue_path):
    root = os.path.join(queue_path, "claimed")
    return [
        name
        for entry in files_in(root)
        if os.path.isdir(os.path.join(root, entry))
        for name in files_in(root, entry)
    ]


class QueueWebTest(MaildirQueueMixin, EmailerWebTest):
    def setUp(self):
        super().setUp()
        self.create_bucket()
        self.create_collection(data=self.hooked(HOOK))


class QueueProcessorTest(QueueWebTest):
    def test_an_email_goes_through_the_maildir_to_the_server(self):
        rid = self.create_record().json["data"]["id"]
        self.drain()
        [arrived] = self.inbox.wait_for(1)
        assert arrived["Subject"] == rid
        assert files_in(self.queue_path, "new") == [] and claimed_files(self.queue_path) == []


class ExternalProcessorTest(QueueWebTest):
    processor = False

    def test_without_queue_processor_emails_wait_in_new_for_repoze_qp(self):
        self.create_record()
        self.drain()
        [name] = files_in(self.queue_path, "new")
        assert self.inbox.messages == []
        processor = QueueProcessor.__new__(QueueProcessor)  # Only its parser.
        with open(os.path.join(self.queue_path, "new", name)) as f:
            sender, recipients, _ = processor._parseMessage(f)
        assert (sender, recipients) == ("kinto@example.com", ("alice@example.com",))


# Real `kinto start` processes.

KINTO = os.path.join(os.path.dirname(sys.executable), "kinto")
AUTH = {"Authorization": "Basic " + b64encode(b"alice:secret").decode()}


def wait_until(predicate, timeout=20, what="condition"):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class KintoProcess:
    """``kinto start`` on the memory backend with the plugin in durable mode."""

    def __init__(self, directory, name, queue_path, smtp_port, **settings):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.ini = os.path.join(directory, f"{name}.ini")
        self.log_path = os.path.join(directory, f"{name}.log")
        extra = "\n".join(f"{key} = {value}" for key, value in settings.items())
        with open(self.ini, "w") as f:
            f.write(INI.format(port=self.port, queue=queue_path, smtp=smtp_port, extra=extra))
        self.process = None

    def start(self):
        log = open(self.log_path, "a")
        self.process = subprocess.Popen(
            [KINTO, "start", "--ini", self.ini], stdout=log, stderr=log
        )
        wait_until(self.answers, what=f"kinto on port {self.port}")
        return self

    def answers(self):
        assert self.process.poll() is None, self.log()
        try:
            return self.request("GET", "/") is not None
        except OSError:
            return False

    def request(self, method, path, data=None):
        body = None if data is None else dumps({"data": data}).encode()
        headers = {**AUTH, "Content-Type": "application/json"}
        request = urllib.request.Request(self.url + path, body, headers, method=method)
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status

    def kill(self):
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self):
        """Like Ctrl-C: the worker delivers what it holds before the process exits."""
        self.process.send_signal(signal.SIGINT)
        self.process.wait(30)

    def log(self):
        with open(self.log_path) as f:
            return f.read()


INI = textwrap.dedent(
    """
    [app:main]
    use = egg:kinto
    kinto.storage_backend = kinto.core.storage.memory
    kinto.cache_backend = kinto.core.cache.memory
    kinto.permission_backend = kinto.core.permission.memory
    kinto.includes = kinto_emailer
    kinto.userid_hmac_secret = test
    multiauth.policies = basicauth
    kinto.bucket_create_principals = system.Everyone
    kinto.bucket_write_principals = system.Everyone
    kinto.bucket_read_principals = system.Everyone
    mail.host = 127.0.0.1
    mail.port = {smtp}
    mail.default_sender = kinto@example.com
    mail.queue_path = {queue}
    kinto_emailer.queue_processor = true
    kinto_emailer.queue_poll_interval = 0.05
    kinto_emailer.retry_base_delay = 0.1
    kinto_emailer.retry_max_delay = 0.3
    kinto_emailer.retry_max_attempts = 1000
    {extra}

    [server:main]
    use = egg:waitress#main
    host = 127.0.0.1
    port = {port}

    [loggers]
    keys = root

    [handlers]
    keys = console

    [formatters]
    keys = plain

    [logger_root]
    level = INFO
    handlers = console

    [handler_console]
    class = StreamHandler
    args = (sys.stderr,)
    formatter = plain

    [formatter_plain]
    format = %(asctime)s %(process)d %(levelname)s [%(name)s] %(message)s
    """
)


@pytest.fixture
def workdir():
    with tempfile.TemporaryDirectory() as directory:
        yield directory


def hooked_collection(server):
    server.request("PUT", "/buckets/b")
    server.request("PUT", "/buckets/b/collections/c", {"kinto-emailer": {"hooks": [HOOK]}})


def test_an_email_claimed_by_a_killed_process_is_delivered_once_after_restart(workdir):
    queue_path, smtp_port = os.path.join(workdir, "queue"), free_port()
    first = KintoProcess(workdir, "first", queue_path, smtp_port).start()
    try:
        hooked_collection(first)
        assert first.request("POST", "/buckets/b/collections/c/records", {}) == 201
        # The mail server is down: the email waits, claimed, for its next try.
        wait_until(lambda: "Email retried" in first.log(), what="a failed attempt")
    finally:
        first.kill()
    assert len(claimed_files(queue_path)) == 1

    smtp = SMTPServer(smtp_port).start()
    second = KintoProcess(workdir, "second", queue_path, smtp_port).start()
    try:
        assert len(smtp.inbox.wait_for(1)) == 1
    finally:
        second.stop()
        smtp.stop()
    assert len(smtp.inbox.messages) == 1, second.log()
    assert "Recovered 1 email(s) claimed by a process that died" in second.log()
    assert files_in(queue_path, "new") == [] and claimed_files(queue_path) == []


def test_two_processes_sharing_a_maildir_never_send_one_message_twice(workdir):
    queue_path, smtp = os.path.join(workdir, "queue"), SMTPServer().start()
    servers = [
        KintoProcess(workdir, name, queue_path, smtp.port).start() for name in ("one", "two")
    ]
    try:
        for server in servers:
            hooked_collection(server)  # Memory backends: each process has its own data.
        for index in range(40):
            server = servers[index % 2]
            assert server.request("POST", "/buckets/b/collections/c/records", {}) == 201
        assert len(smtp.inbox.wait_for(40, timeout=30)) == 40
    finally:
        for server in servers:
            server.stop()
        smtp.stop()
    ids = [message["Message-ID"] for message in smtp.inbox.messages]
    assert len(ids) == len(set(ids)) == 40
    assert files_in(queue_path, "new") == [] and claimed_files(queue_path) == []
    # Both took part: each delivered emails written by the other.
    assert all("Email sent" in server.log() for server in servers)
