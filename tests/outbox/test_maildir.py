"""Durable mode: the Maildir at commit, delivered by the worker, once, across crashes.

The queue shared by processes on its own: test_maildir_queue.py.
"""

import os

import pytest
from kinto_http import Client
from repoze.sendmail.queue import QueueProcessor

from tests.functional.server import KintoServer
from tests.support import (
    EmailerWebTest,
    MaildirQueueMixin,
    SMTPServer,
    free_port,
    hooked,
    record_hook,
)


HOOK = record_hook("{id}")


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


def durable_server(directory, queue_path, smtp_port):
    """``kinto start`` on the memory backend with the plugin in durable mode."""
    directory.mkdir()
    settings = {
        "mail.queue_path": queue_path,
        "kinto_emailer.queue_processor": "true",
        "kinto_emailer.queue_poll_interval": "0.05",
        "kinto_emailer.retry_base_delay": "0.1",
        "kinto_emailer.retry_max_delay": "0.3",
        "kinto_emailer.retry_max_attempts": "100",
    }
    server = KintoServer(directory, None, smtp_port, **settings).start()
    client = Client(server_url=server.url, auth=("alice", "secret"), bucket="b", collection="c")
    # Memory backends: each process has its own data.
    client.create_bucket(id="b")
    client.create_collection(id="c", data=hooked(HOOK))
    return server, client


@pytest.mark.functional
def test_an_email_claimed_by_a_killed_process_is_delivered_once_after_restart(tmp_path):
    queue_path, smtp_port = str(tmp_path / "queue"), free_port()
    first, client = durable_server(tmp_path / "first", queue_path, smtp_port)
    try:
        client.create_record(data={})
        # The mail server is down: the email waits, claimed, for its next try.
        first.wait_for_log("Email retried")
    finally:
        first.kill()
    assert len(claimed_files(queue_path)) == 1

    smtp = SMTPServer(smtp_port).start()
    second, _ = durable_server(tmp_path / "second", queue_path, smtp_port)
    try:
        assert len(smtp.inbox.wait_for(1)) == 1
    finally:
        second.stop()
        smtp.stop()
    assert len(smtp.inbox.messages) == 1, second.log()
    assert "Recovered 1 email(s) claimed by a process that died" in second.log()
    assert files_in(queue_path, "new") == [] and claimed_files(queue_path) == []


@pytest.mark.functional
def test_two_processes_sharing_a_maildir_never_send_one_message_twice(tmp_path):
    queue_path, smtp = str(tmp_path / "queue"), SMTPServer().start()
    servers = [durable_server(tmp_path / name, queue_path, smtp.port) for name in ("one", "two")]
    try:
        for index in range(40):
            _, client = servers[index % 2]
            client.create_record(data={})
        assert len(smtp.inbox.wait_for(40, timeout=30)) == 40
    finally:
        for server, _ in servers:
            server.stop()
        smtp.stop()
    ids = [message["Message-ID"] for message in smtp.inbox.messages]
    assert len(ids) == len(set(ids)) == 40
    assert files_in(queue_path, "new") == [] and claimed_files(queue_path) == []
    # Both took part: each delivered emails written by the other.
    assert all("Email sent" in server.log() for server, _ in servers)
