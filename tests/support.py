"""Shared test helpers: a real SMTP server on loopback and the real Kinto app."""

import asyncio
import email
import email.policy
import os
import shutil
import socket
import tempfile
import threading
import unittest
import uuid

import kinto
import psycopg2
import pytest
from aiosmtpd.controller import Controller
from kinto.core.testing import BaseWebTest, get_user_headers


ALICE = "alice@example.com"
#: Kinto's defaults as behind a proxy that terminates TLS: else Kinto warns at each start-up.
KINTO_SETTINGS = {**kinto.DEFAULT_SETTINGS, "http_scheme": "https", "http_host": "localhost"}


def hook(**fields):
    """A hook to alice with an empty body and nothing else: ``fields`` add the rest. Without
    ``resource_name`` it fires on every resource."""
    return {"recipients": [ALICE], "template": "", **fields}


def record_hook(subject="{action} {resource_name} {id}", **fields):
    """A hook on records, to alice; ``fields`` add filters or replace the defaults."""
    return hook(**{"resource_name": "record", "subject": subject, "template": "{id}", **fields})


def hooked(*hooks):
    """Bucket or collection metadata with ``hooks``."""
    return {"kinto-emailer": {"hooks": list(hooks)}}


#: Failed sends are retried at once, a few times: tests see retries without waiting.
FAST_RETRIES = {
    "kinto_emailer.retry_base_delay": "0.02",
    "kinto_emailer.retry_max_delay": "0.05",
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Inbox:
    """What an SMTP server received; tests wait on it instead of sleeping.

    Each email keeps its bytes (``raw``), its ``MAIL FROM`` options and envelope. ``delay``
    seconds pass before each DATA is answered, other sessions going on meanwhile; while
    ``gate`` is clear, DATA waits for it. ``started`` counts the DATA commands received,
    ``sessions`` the EHLOs; with ``eight_bit = False`` the server doesn't offer 8BITMIME,
    with ``pipelining = False`` not PIPELINING (RFC 2920), which production servers offer.
    """

    def __init__(self, delay=0.0):
        self.messages = []
        self.condition = threading.Condition()
        self.gate = threading.Event()
        self.eight_bit = True
        self.pipelining = True
        self.clear()
        self.delay = delay

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        with self.condition:
            self.sessions += 1
        session.host_name = hostname
        responses = [r for r in responses if self.eight_bit or "8BITMIME" not in r]
        if self.pipelining:  # Before the last line, "250 HELP".
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = self.rcpt_replies.get(address)
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.condition:
            self.started += 1
            self.condition.notify_all()
        # Awaited, never time.sleep: the server's other sessions go on meanwhile.
        while not self.gate.is_set():
            await asyncio.sleep(0.01)
        if self.delay:
            await asyncio.sleep(self.delay)
        with self.condition:
            if self.scripted_replies:
                return self.scripted_replies.pop(0)
            message = email.message_from_bytes(envelope.content, policy=email.policy.default)
            message.raw = envelope.content
            message.mail_options = list(envelope.mail_options)
            message.envelope_from = envelope.mail_from
            message.envelope_to = list(envelope.rcpt_tos)
            # The client's address and port: one value per SMTP connection.
            message.peer = session.peer
            self.messages.append(message)
            self.condition.notify_all()
        return "250 Message accepted for delivery"

    def clear(self):
        with self.condition:
            self.messages.clear()
            # Replies to give to the next DATA commands, e.g. ["451 try later"]; then "250 OK".
            self.scripted_replies = []
            # Replies to ``RCPT TO`` by address, e.g. {"bob@example.com": "550 no such user"}.
            self.rcpt_replies = {}
            self.delay = 0.0
            self.started = 0
            self.sessions = 0
            self.gate.set()

    def wait_for(self, count, timeout=10):
        """Wait until ``count`` messages arrived; returns them all."""
        with self.condition:
            self.condition.wait_for(lambda: len(self.messages) >= count, timeout=timeout)
            return list(self.messages)

    def expect(self, count, timeout=10):
        """Exactly ``count`` messages: waits for them, fails when fewer or more arrived."""
        messages = self.wait_for(count, timeout)
        assert len(messages) == count, [m["Subject"] for m in messages]
        return messages

    def wait_started(self, count, timeout=10):
        """Wait until ``count`` DATA commands were received, answered or not."""
        with self.condition:
            return self.condition.wait_for(lambda: self.started >= count, timeout=timeout)


class LoopbackListener:
    """A raw TCP server on loopback for mail servers that misbehave: each connection is
    handed to ``handle`` in a thread of its own until ``stop``."""

    def __init__(self, port=None, backlog=None):
        address = ("127.0.0.1", port or 0)
        if backlog is None:
            self.listener = socket.create_server(address)
        else:
            self.listener = socket.create_server(address, backlog=backlog)
        self.listener.settimeout(0.05)  # close() doesn't wake a blocked accept() on Linux.
        self.port = self.listener.getsockname()[1]
        self.stopped = threading.Event()

    def start(self):
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def stop(self):
        self.stopped.set()
        self.listener.close()

    def handle(self, connection):
        raise NotImplementedError

    def _accept(self):
        while not self.stopped.is_set():
            try:
                connection, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self.handle, args=(connection,), daemon=True).start()


class SMTPServer:
    """aiosmtpd on loopback; ``port`` to start one where another was, ``inbox`` its handler."""

    def __init__(self, port=None, inbox=None):
        self.inbox = inbox or Inbox()
        self.port = port or free_port()
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)

    def start(self):
        self.controller.start()
        return self

    def stop(self):
        self.controller.stop()


_shared_server = None


def shared_smtp_server():
    """One SMTP server for the whole test session, started on first use."""
    global _shared_server
    if _shared_server is None:
        _shared_server = SMTPServer().start()
    return _shared_server


class EmailerWebTest(BaseWebTest, unittest.TestCase):
    """The real Kinto app with the plugin, mailing a real SMTP server on loopback."""

    entry_point = kinto.main
    api_prefix = "v1"

    @classmethod
    def setUpClass(cls):
        cls.smtp = shared_smtp_server()
        super().setUpClass()

    @classmethod
    def get_app_settings(cls, extras=None):
        settings = {**super().get_app_settings(), **KINTO_SETTINGS}
        settings["includes"] = "kinto_emailer"
        settings["multiauth.policies"] = "basicauth"
        settings["mail.host"] = "127.0.0.1"
        settings["mail.port"] = str(shared_smtp_server().port)
        settings["mail.default_sender"] = "kinto@example.com"
        settings.update(cls.extra_settings())
        settings.update(extras or {})
        return settings

    @classmethod
    def extra_settings(cls):
        return {}

    def setUp(self):
        super().setUp()
        self.headers = {**self.headers, **get_user_headers("alice")}
        self.inbox = self.smtp.inbox
        self.inbox.clear()

    def tearDown(self):
        super().tearDown()
        self.inbox.clear()

    def drain(self, timeout=10):
        """Wait until the plugin has delivered everything handed to it."""
        assert self.app.app.registry.emailer.delivery.drain(timeout=timeout)

    def create_bucket(self, bucket_id="b", data=None):
        self.app.put_json(f"/buckets/{bucket_id}", {"data": data or {}}, headers=self.headers)

    def create_collection(self, bucket_id="b", collection_id="c", data=None, status=201):
        return self.app.put_json(
            f"/buckets/{bucket_id}/collections/{collection_id}",
            {"data": data or {}},
            headers=self.headers,
            status=status,
        )

    def hooked(self, *hooks):
        return hooked(*hooks)

    def emails(self, count, timeout=10):
        """Exactly ``count`` emails, once the plugin has delivered everything."""
        self.drain(timeout)
        return self.inbox.expect(count, timeout)

    def one_email(self):
        return self.emails(1)[0]

    def no_email(self):
        self.emails(0)

    def create_record(self, bucket_id="b", collection_id="c", data=None, status=201):
        return self.app.post_json(
            f"/buckets/{bucket_id}/collections/{collection_id}/records",
            {"data": data or {}},
            headers=self.headers,
            status=status,
        )


class HookWebTest(EmailerWebTest):
    """The real app with bucket ``b``; helpers to save hooks and read the 400s."""

    def setUp(self):
        super().setUp()
        self.create_bucket()

    def save_hooks(self, *hooks, status=201):
        return self.create_collection(data=self.hooked(*hooks), status=status)

    def refused(self, *hooks):
        """The message of the 400 that saving ``hooks`` answers."""
        response = self.save_hooks(*hooks, status=400)
        assert response.json["errno"] == 107, response.json
        return response.json["message"]

    def store_unchecked(self, metadata, bucket_id="b", collection_id=None):
        """Write metadata straight to storage, as data saved before validation existed."""
        if collection_id is None:
            resource_name, parent_id, object_id = "bucket", "", bucket_id
        else:
            resource_name, parent_id = "collection", f"/buckets/{bucket_id}"
            object_id = collection_id
        self.app.app.registry.storage.update(
            resource_name=resource_name,
            parent_id=parent_id,
            object_id=object_id,
            obj={"id": object_id, **metadata},
        )


#: Server for the ``postgresql`` and ``functional`` tests; each test run makes its own databases.
POSTGRESQL_URL = os.environ.get(
    "KINTO_EMAILER_TEST_POSTGRESQL", "postgresql://postgres@127.0.0.1:5432"
)


def _admin_connection():
    connection = psycopg2.connect(f"{POSTGRESQL_URL}/postgres", connect_timeout=3)
    connection.autocommit = True  # CREATE and DROP DATABASE refuse to run in a transaction.
    return connection


def postgresql_unreachable():
    """Why the PostgreSQL server can't be used, in one line; ``None`` when it answers."""
    try:
        _admin_connection().close()
    except psycopg2.Error as e:
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
        return f"PostgreSQL at {POSTGRESQL_URL} is not reachable ({reason})"
    return None


class TemporaryDatabase:
    """A database with a unique name, dropped on exit even when connections remain open."""

    def __init__(self, prefix="kinto_emailer_test"):
        self.name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        self.url = f"{POSTGRESQL_URL}/{self.name}"

    def _run(self, sql):
        connection = _admin_connection()
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql)
        finally:
            connection.close()

    def create(self):
        self._run(f'CREATE DATABASE "{self.name}"')
        # Kinto warns at start-up about a database whose time zone isn't UTC.
        self._run(f"ALTER DATABASE \"{self.name}\" SET timezone TO 'UTC'")
        return self

    def drop(self):
        # FORCE: pools of apps and servers under test may still hold connections.
        self._run(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')

    def __enter__(self):
        return self.create()

    def __exit__(self, *exc_info):
        self.drop()


def postgresql_settings(url):
    """Kinto settings that store data and permissions in the PostgreSQL database ``url``."""
    return {
        "storage_backend": "kinto.core.storage.postgresql",
        "storage_url": url,
        "permission_backend": "kinto.core.permission.postgresql",
        "permission_url": url,
        "cache_backend": "kinto.core.cache.memory",
    }


class MaildirQueueMixin:
    """Durable mode: emails go to a Maildir of the test's own at commit; with ``processor``,
    the plugin's worker delivers them from there too. Put it before ``EmailerWebTest``."""

    processor = True

    @classmethod
    def setUpClass(cls):
        cls.queue_path = tempfile.mkdtemp()
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        cls.app.app.registry.emailer.delivery.stop(timeout=1)
        super().tearDownClass()
        shutil.rmtree(cls.queue_path, ignore_errors=True)

    @classmethod
    def extra_settings(cls):
        return {
            **super().extra_settings(),
            "mail.queue_path": cls.queue_path,
            "kinto_emailer.queue_processor": str(cls.processor).lower(),
            "kinto_emailer.queue_poll_interval": "0.05",
        }


def migrate(settings):
    """Run ``kinto migrate`` on a Kinto app made of ``settings``, as the command does."""
    from kinto.core import scripts
    from pyramid.config import Configurator

    config = Configurator(settings={**KINTO_SETTINGS, **settings})
    kinto.main({"command": "migrate"}, config=config)
    scripts.migrate({"registry": config.registry})


class PostgreSQLOutboxMixin:
    """The app on a database of its own, made and migrated for the class, emails in its
    outbox table. Marked ``postgresql``: skipped where the server is unreachable."""

    pytestmark = [pytest.mark.postgresql]
    database_url = None  # Set before the app starts.

    @classmethod
    def outbox_settings(cls):
        return {
            **postgresql_settings(cls.database_url),
            "kinto_emailer.outbox": "postgresql",
            "kinto_emailer.queue_poll_interval": "0.2",
        }

    @classmethod
    def extra_settings(cls):
        return {**super().extra_settings(), **cls.outbox_settings()}

    @classmethod
    def setUpClass(cls):
        cls.database = TemporaryDatabase().create()
        cls.database_url = cls.database.url
        try:
            migrate({**cls.outbox_settings(), "includes": "kinto_emailer"})
            super().setUpClass()
        except BaseException:
            cls.database.drop()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.app.app.registry.emailer.delivery.stop(timeout=1)  # Before its database goes.
        super().tearDownClass()
        cls.database.drop()


#: What each outbox adds to a web test class (``per_outbox``).
OUTBOX_MIXINS = {
    "memory": (),
    "maildir": (MaildirQueueMixin,),
    "postgresql": (PostgreSQLOutboxMixin,),
}


def per_outbox(scenarios, base, namespace, outboxes=("memory", "postgresql")):
    """The backend matrix, in one place: a test class of ``scenarios`` on ``base`` for each
    of ``outboxes``, put in ``namespace`` (a test module's ``globals()``) for pytest to find."""
    for name in outboxes:
        title = {"memory": "Memory", "maildir": "Maildir", "postgresql": "PostgreSQL"}[name]
        test_class = type(
            f"Test{scenarios.__name__}On{title}Outbox",
            (*OUTBOX_MIXINS[name], scenarios, base),
            {"__module__": namespace["__name__"], "outbox_name": name},
        )
        namespace[test_class.__name__] = test_class
