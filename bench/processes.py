"""The processes that ``make bench`` measures: ``kinto start`` with and without the plugin,
``kinto-emailer worker``, an aiosmtpd server of its own, and a PostgreSQL database."""

import asyncio
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from base64 import b64encode

from aiosmtpd.controller import Controller


# The tests' helpers, from the checkout (``make bench`` runs bench/run.py as a script).
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tests.support import TemporaryDatabase  # noqa: E402


AUTH = "Basic " + b64encode(b"bench:secret").decode()
BIN = os.path.dirname(sys.executable)
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    """User and system CPU time of a process, all threads, from ``/proc``."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


class Sink:
    """The SMTP server, in a process of its own so that it never competes with the clock.

    It prints ``tag id recipients accepted_at`` for each email whose subject is ``tag id``;
    ``accepted_at`` is ``time.monotonic()``, the same clock in every process of the host.
    """

    def __init__(self, delay):
        self.delay = delay

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        # As production mail servers (Postfix, Exim, hosted relays) do; aiosmtpd reads
        # commands in order however they arrive, but doesn't say so by itself.
        session.host_name = hostname
        return responses[:-1] + ["250-PIPELINING", responses[-1]]

    async def handle_DATA(self, server, session, envelope):
        if self.delay:
            await asyncio.sleep(self.delay)
        subject = next(
            line for line in envelope.content.splitlines() if line.startswith(b"Subject:")
        )
        _, tag, id_ = subject.decode().split()[:3]
        print(tag, id_, len(envelope.rcpt_tos), time.monotonic(), flush=True)
        return "250 OK"


def serve_smtp(port, delay):
    controller = Controller(Sink(float(delay)), hostname="127.0.0.1", port=int(port))
    controller.start()
    print("ready - 0 0", flush=True)
    sys.stdin.read()  # Until the bench closes our stdin.
    controller.stop()


class Inbox:
    """Counts the emails that the sink process reports, by subject tag.

    A thread reads the sink's lines as they come: a full pipe would stall the mail server.
    """

    #: The server's process: ``script --smtp PORT ARGUMENT``, which prints ``tag id n time``.
    SCRIPT, SERVE = __file__, "--smtp"

    def __init__(self, delay=0.0):
        self.port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, self.SCRIPT, self.SERVE, str(self.port), str(delay)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        self.condition = threading.Condition()
        self.counts = {}
        self.recipients = {}
        self.accepted = {}  # (tag, id) -> time.monotonic() at the 250 reply.
        threading.Thread(target=self._read, daemon=True).start()
        self.wait_for("ready", 1, timeout=30)

    def _read(self):
        for line in self.process.stdout:
            tag, id_, recipients, accepted = line.decode().split()
            with self.condition:
                self.counts[tag] = self.counts.get(tag, 0) + 1
                self.recipients.setdefault(tag, []).append(int(recipients))
                self.accepted.setdefault((tag, id_), float(accepted))
                self.condition.notify_all()

    def wait_for(self, tag, count, timeout=120):
        """Seconds until ``count`` emails tagged ``tag`` arrived, or None after ``timeout``."""
        started = time.monotonic()
        with self.condition:
            if not self.condition.wait_for(lambda: self.counts.get(tag, 0) >= count, timeout):
                return None
        return time.monotonic() - started

    def wait_for_id(self, tag, id_, timeout=30):
        """When the email ``tag id_`` was accepted (``time.monotonic()``), or None."""
        with self.condition:
            self.condition.wait_for(lambda: (tag, id_) in self.accepted, timeout)
            return self.accepted.get((tag, id_))

    def stop(self):
        self.process.stdin.close()  # The sink stops when its stdin ends.
        self.process.wait(10)


def Database(label):
    """A PostgreSQL database of the bench's own (the tests' ``TemporaryDatabase``), created
    now; ``drop()`` at the end."""
    return TemporaryDatabase(prefix=f"kinto_emailer_bench_{label}").create()


INI = """
[app:main]
use = egg:kinto
kinto.userid_hmac_secret = bench
multiauth.policies = basicauth
kinto.bucket_create_principals = system.Authenticated
kinto.batch_max_requests = 200
{backend}
{plugin}

[server:main]
use = egg:waitress#main
host = 127.0.0.1
port = {port}
threads = 4

[loggers]
keys = root
[handlers]
keys = console
[formatters]
keys = plain
[logger_root]
level = WARNING
handlers = console
[handler_console]
class = StreamHandler
args = (sys.stderr,)
formatter = plain
[formatter_plain]
format = %(levelname)s [%(name)s] %(message)s
"""

MEMORY = """
kinto.storage_backend = kinto.core.storage.memory
kinto.cache_backend = kinto.core.cache.memory
kinto.permission_backend = kinto.core.permission.memory
"""

POSTGRESQL = """
kinto.storage_backend = kinto.core.storage.postgresql
kinto.storage_url = {url}
kinto.permission_backend = kinto.core.permission.postgresql
kinto.permission_url = {url}
kinto.cache_backend = kinto.core.cache.memory
"""

PLUGIN = """
kinto.includes = kinto_emailer
mail.host = 127.0.0.1
mail.port = {smtp_port}
mail.default_sender = kinto@example.com
kinto_emailer.max_expanded_recipients = 1000
"""

# Bounds far above (l)'s deepest backlog: else its writes would be dropped, or count the
# queue's rows on every write once past half of them.
OUTBOX = """
kinto_emailer.outbox = postgresql
kinto_emailer.outbox_worker = false
kinto_emailer.queue_size = 1000000
kinto_emailer.queue_bytes = 1000000000
"""


#: Signed-webhook endpoints of (n1) and (n2), on one receiver (its path is the tag).
WEBHOOKS = """
kinto_emailer.webhooks.{name}.url = http://127.0.0.1:{port}/{name}
kinto_emailer.webhooks.{name}.secret = {secret}
"""


def write_ini(directory, name, smtp_port=None, database=None, webhooks=None):
    """``webhooks``: (receiver port, secret, endpoint names), for the plugin's."""
    backend = POSTGRESQL.format(url=database.url) if database else MEMORY
    plugin = ""
    if smtp_port:
        plugin = PLUGIN.format(smtp_port=smtp_port) + (OUTBOX if database else "")
    if smtp_port and webhooks:
        port, secret, names = webhooks
        plugin += "".join(WEBHOOKS.format(name=n, port=port, secret=secret) for n in names)
    path = os.path.join(directory, f"{name}.ini")
    with open(path, "w") as f:
        f.write(INI.format(port=free_port(), backend=backend, plugin=plugin))
    return path


def migrate(ini, log):
    subprocess.run(
        [os.path.join(BIN, "kinto"), "migrate", "--ini", ini],
        stdout=log,
        stderr=log,
        check=True,
        timeout=120,
    )


class Client:
    """One keep-alive HTTP connection to a Kinto server."""

    def __init__(self, server):
        self.server = server
        self.connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)

    def request(self, method, path, data=None, raw=None):
        """Seconds until the response was read, and the response's body."""
        body = json.dumps(raw if raw is not None else {"data": data or {}})
        headers = {"Authorization": AUTH, "Content-Type": "application/json"}
        for attempt in (1, 2):
            started = time.perf_counter()
            try:
                self.connection.request(method, path, body if method != "GET" else None, headers)
                response = self.connection.getresponse()
                payload = response.read()
                break
            except (http.client.HTTPException, ConnectionError):
                # Waitress closes keep-alive connections left idle: once more on a new one.
                self.connection.close()
                if attempt == 2:
                    raise
        elapsed = time.perf_counter() - started
        if response.status >= 400:
            name = self.server.name
            raise RuntimeError(f"{name} {method} {path}: {response.status} {payload[:300]}")
        return elapsed, payload

    def create(self, collection):
        path = f"/v1/buckets/bench/collections/{collection}/records"
        return self.request("POST", path)[0]

    def close(self):
        self.connection.close()


class Kinto:
    """``kinto start`` on an ini of ``write_ini``, with a client of its own."""

    def __init__(self, directory, name, ini):
        self.name = name
        self.ini = ini
        with open(ini) as f:
            self.port = int(f.read().split("port = ")[-1].split()[0])
        self.log = open(os.path.join(directory, f"{name}.log"), "a")
        self.process = subprocess.Popen(
            [os.path.join(BIN, "kinto"), "start", "--ini", ini], stdout=self.log, stderr=self.log
        )
        self.pid = self.process.pid
        deadline = time.monotonic() + 30
        while True:  # Bounded: until the server answers, at most 30 s.
            try:
                self.client = Client(self)
                self.client.request("GET", "/v1/")
                break
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError(f"kinto {name} did not start, see {self.log.name}")
                time.sleep(0.1)

    def request(self, method, path, data=None, raw=None):
        return self.client.request(method, path, data, raw)[0]

    def create(self, collection):
        return self.client.create(collection)

    def batch(self, collection, count):
        path = f"/buckets/bench/collections/{collection}/records"
        requests = [{"method": "POST", "path": path, "body": {"data": {}}} for _ in range(count)]
        return self.request("POST", "/v1/batch", raw={"requests": requests})

    def stop(self):
        stop(self.process)


class EmailerWorker:
    """``kinto-emailer worker --ini FILE``: delivers the PostgreSQL outbox."""

    def __init__(self, directory, ini):
        self.log = open(os.path.join(directory, "worker.log"), "a")
        self.process = subprocess.Popen(
            [os.path.join(BIN, "kinto-emailer"), "worker", "--ini", ini],
            stdout=self.log,
            stderr=self.log,
        )
        self.pid = self.process.pid

    def stop(self):
        stop(self.process, signal.SIGTERM)


def stop(process, signum=signal.SIGINT):
    process.send_signal(signum)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--smtp"]:
        serve_smtp(*sys.argv[2:4])
