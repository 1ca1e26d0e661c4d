"""Latency of writes with and without kinto-emailer: real `kinto start` processes (memory
backend) and a local aiosmtpd server, measured interleaved in one run. `make bench`."""

import asyncio
import http.client
import json
import os
import platform
import random
import select
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from base64 import b64encode

from aiosmtpd.controller import Controller


ROUNDS = 500  # Writes per server for (a) and (b).
SLOW_ROUNDS = 100  # (c): 100 emails at 200 ms each keep the slow server busy for 20 s.
BATCHES = 5  # (d): batches of 200 creations per server.
GROUP_WRITES = 20  # (e)
SLOW_DELAY = 0.2
AUTH = "Basic " + b64encode(b"bench:secret").decode()
KINTO = os.path.join(os.path.dirname(sys.executable), "kinto")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Sink:
    """The SMTP server, in a process of its own so that it never competes with the clock.

    It prints ``tag recipients`` for each email, e.g. ``b 1`` for scenario (b).
    """

    def __init__(self, handler):
        self.handler = handler

    async def handle_DATA(self, server, session, envelope):
        if self.handler.delay:
            await asyncio.sleep(self.handler.delay)
        subject = next(
            line for line in envelope.content.splitlines() if line.startswith(b"Subject:")
        )
        print(subject.split()[1].decode(), len(envelope.rcpt_tos), flush=True)
        return "250 OK"


def serve_smtp(port, delay):
    handler = Sink(None)
    handler.handler = handler
    handler.delay = float(delay)
    controller = Controller(handler, hostname="127.0.0.1", port=int(port))
    controller.start()
    print("ready", 0, flush=True)
    sys.stdin.read()  # Until the bench closes our stdin.
    controller.stop()


class Inbox:
    """Counts the emails that the sink process reports, by subject tag."""

    def __init__(self, delay=0.0):
        self.port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--smtp", str(self.port), str(delay)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        self.buffer = b""
        self.counts = {}
        self.recipients = {}
        self.wait_for("ready", 1, timeout=30)

    def _read_one(self, timeout):
        while b"\n" not in self.buffer:
            ready, _, _ = select.select([self.process.stdout], [], [], timeout)
            chunk = os.read(self.process.stdout.fileno(), 65536) if ready else b""
            if not chunk:
                return False
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        tag, recipients = line.decode().split()
        self.counts[tag] = self.counts.get(tag, 0) + 1
        self.recipients.setdefault(tag, []).append(int(recipients))
        return True

    def wait_for(self, tag, count, timeout=120):
        """Seconds until ``count`` emails tagged ``tag`` arrived, or None after ``timeout``."""
        started = time.monotonic()
        while self.counts.get(tag, 0) < count:
            remaining = timeout - (time.monotonic() - started)
            if remaining <= 0 or not self._read_one(remaining):
                return None
        return time.monotonic() - started

    def stop(self):
        self.process.stdin.close()  # The sink stops when its stdin ends.
        self.process.wait(10)


INI = """
[app:main]
use = egg:kinto
kinto.storage_backend = kinto.core.storage.memory
kinto.cache_backend = kinto.core.cache.memory
kinto.permission_backend = kinto.core.permission.memory
kinto.userid_hmac_secret = bench
multiauth.policies = basicauth
kinto.bucket_create_principals = system.Authenticated
kinto.batch_max_requests = 200
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

PLUGIN = """
kinto.includes = kinto_emailer
mail.host = 127.0.0.1
mail.port = {smtp_port}
mail.default_sender = kinto@example.com
kinto_emailer.max_expanded_recipients = 1000
"""


class Kinto:
    def __init__(self, directory, name, smtp_port=None):
        self.name = name
        self.port = free_port()
        plugin = PLUGIN.format(smtp_port=smtp_port) if smtp_port else ""
        self.ini = os.path.join(directory, f"{name}.ini")
        with open(self.ini, "w") as f:
            f.write(INI.format(port=self.port, plugin=plugin))
        self.log = open(os.path.join(directory, f"{name}.log"), "w")
        self.process = subprocess.Popen(
            [KINTO, "start", "--ini", self.ini], stdout=self.log, stderr=self.log
        )
        self.connection = None
        deadline = time.monotonic() + 30
        while True:  # Bounded: until the server answers, at most 30 s.
            try:
                self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
                self.request("GET", "/v1/")
                break
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError(f"kinto {name} did not start, see {self.log.name}")
                time.sleep(0.1)

    def request(self, method, path, data=None, raw=None):
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
            raise RuntimeError(f"{self.name} {method} {path}: {response.status} {payload[:300]}")
        return elapsed

    def create(self, collection):
        return self.request("POST", f"/v1/buckets/bench/collections/{collection}/records")

    def batch(self, collection, count):
        path = f"/buckets/bench/collections/{collection}/records"
        requests = [{"method": "POST", "path": path, "body": {"data": {}}} for _ in range(count)]
        return self.request("POST", "/v1/batch", raw={"requests": requests})

    def stop(self):
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()


def hook(tag, recipients=("reader@example.com",)):
    return {
        "kinto-emailer": {
            "hooks": [
                {
                    "resource_name": "record",
                    "action": "create",
                    "subject": f"{tag} {{id}}",
                    "template": "{user_id} created {uri}",
                    "recipients": list(recipients),
                }
            ]
        }
    }


def set_up(server):
    server.request("PUT", "/v1/buckets/bench")
    members = [f"ldap:member{i:03}@example.com" for i in range(200)]
    server.request("PUT", "/v1/buckets/bench/groups/everyone", {"members": members})
    server.request("PUT", "/v1/buckets/bench/collections/plain")
    for tag in ("b", "c", "d"):
        server.request("PUT", f"/v1/buckets/bench/collections/{tag}", hook(tag))
    server.request(
        "PUT", "/v1/buckets/bench/collections/e", hook("e", ["/buckets/bench/groups/everyone"])
    )


def p50(samples):
    return statistics.median(samples) * 1000


def main():
    fast, slow = Inbox(), Inbox(delay=SLOW_DELAY)
    directory = tempfile.mkdtemp(prefix="kinto-emailer-bench-")
    alone = Kinto(directory, "alone")
    plugin = Kinto(directory, "plugin", fast.port)
    plugin_slow = Kinto(directory, "plugin-slow", slow.port)
    servers = (alone, plugin, plugin_slow)
    rows = []
    try:
        for server in servers:
            set_up(server)
        for _ in range(50):  # Warm-up, emails included.
            for server in servers:
                server.create("plain")
        samples = {key: [] for key in ("a0", "a1", "b0", "b1", "b1c", "c")}
        steps = [
            ("a0", alone, "plain"),
            ("a1", plugin, "plain"),
            ("b0", alone, "b"),
            ("b1", plugin, "b"),
        ]
        for _ in range(ROUNDS):
            # Interleaved, in a new order each round: drift touches every column alike.
            for key, server, collection in random.sample(steps, len(steps)):
                samples[key].append(server.create(collection))
        for _ in range(SLOW_ROUNDS):
            # (c) against (b) measured in the same rounds.
            samples["b1c"].append(plugin.create("b"))
            samples["c"].append(plugin_slow.create("c"))
        arrived_b = fast.wait_for("b", ROUNDS + SLOW_ROUNDS)
        arrived_c = slow.wait_for("c", SLOW_ROUNDS, timeout=SLOW_ROUNDS * SLOW_DELAY * 3)

        batch_alone, batch_plugin, arrivals_d = [], [], []
        for index in range(BATCHES):
            batch_alone.append(alone.batch("d", 200))
            started = time.monotonic()
            batch_plugin.append(plugin.batch("d", 200))
            waited = fast.wait_for("d", 200 * (index + 1))
            arrivals_d.append(None if waited is None else time.monotonic() - started)

        group_alone, group_plugin = [], []
        started = time.monotonic()
        for _ in range(GROUP_WRITES):
            group_alone.append(alone.create("e"))
            group_plugin.append(plugin.create("e"))
        arrived_e = fast.wait_for("e", GROUP_WRITES)
        arrived_e = None if arrived_e is None else time.monotonic() - started
        full_groups = all(n == 200 for n in fast.recipients.get("e", []))

        def ratio(value, base):
            return value / base - 1

        a0, a1, b0, b1, b1c, c = (p50(samples[k]) for k in samples)
        d0, d1 = p50(batch_alone), p50(batch_plugin)
        e0, e1 = p50(group_alone), p50(group_plugin)
        arrived_d = None if None in arrivals_d else max(arrivals_d)
        rows = [
            (
                "(a) no hook",
                a0,
                a1,
                ratio(a1, a0),
                "Kinto alone +5%",
                ratio(a1, a0) <= 0.05,
                "no email",
                None,
                True,
            ),
            (
                "(b) one matching hook",
                b0,
                b1,
                ratio(b1, b0),
                "Kinto alone +25%",
                ratio(b1, b0) <= 0.25,
                f"{fast.counts.get('b', 0)}/{ROUNDS + SLOW_ROUNDS}",
                arrived_b,
                arrived_b is not None,
            ),
            (
                "(c) mail server 200 ms/email",
                b1c,
                c,
                ratio(c, b1c),
                "(b) +25%",
                ratio(c, b1c) <= 0.25,
                f"{slow.counts.get('c', 0)}/{SLOW_ROUNDS}",
                arrived_c,
                arrived_c is not None,
            ),
            (
                "(d) batch of 200 creations",
                d0,
                d1,
                ratio(d1, d0),
                "Kinto alone +25%",
                ratio(d1, d0) <= 0.25,
                f"{fast.counts.get('d', 0)}/{200 * BATCHES}",
                arrived_d,
                arrived_d is not None,
            ),
            (
                "(e) hook to a 200-member group",
                e0,
                e1,
                ratio(e1, e0),
                "all emails arrive",
                True,
                f"{fast.counts.get('e', 0)}/{GROUP_WRITES}"
                + ("" if full_groups else " (missing recipients)"),
                arrived_e,
                arrived_e is not None and full_groups,
            ),
        ]
    finally:
        for server in servers:
            server.stop()
        fast.stop()
        slow.stop()
    print_table(rows)
    return 0 if all(row[5] and row[8] for row in rows) else 1


def print_table(rows):
    print(
        f"kinto-emailer bench, {time.strftime('%Y-%m-%d')}, {platform.node()}, "
        f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    )
    print(
        f"p50 over {ROUNDS} writes for (a) and (b), {SLOW_ROUNDS} for (c), "
        f"{BATCHES} batches for (d), {GROUP_WRITES} writes for (e); (c) compares with (b)\n"
        "in the same rounds. Last email: seconds after the last write of (b) and (c), after\n"
        "the start of each batch of (d) (the slowest), after the first write of (e)."
    )
    header = (
        "scenario",
        "baseline ms",
        "plugin ms",
        "diff",
        "target",
        "met",
        "emails",
        "last email",
    )
    lines = [header]
    for name, base, value, diff, target, met, emails, arrived, all_arrived in rows:
        lines.append(
            (
                name,
                f"{base:.2f}",
                f"{value:.2f}",
                f"{diff:+.1%}",
                target,
                "yes" if met else "NO",
                emails,
                "-"
                if name.startswith("(a)")
                else (f"{arrived:.2f} s" if all_arrived else "NOT ALL"),
            )
        )
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(header))]
    rule = "  ".join("=" * w for w in widths)
    print(rule)
    for index, line in enumerate(lines):
        print("  ".join(str(cell).ljust(w) for cell, w in zip(line, widths)).rstrip())
        if index == 0:
            print(rule)
    print(rule)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--smtp"]:
        serve_smtp(*sys.argv[2:4])
    else:
        sys.exit(main())
