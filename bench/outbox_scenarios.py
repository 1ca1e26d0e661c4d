"""The PostgreSQL outbox's scenarios of ``make bench`` (issue 23): (l) a hooked write and the
worker's drain with a deep backlog, (m) the worker's CPU per email beside a bare socket
speaking SMTP to the same mail server, in the same run."""

import socket
import statistics
import time

import psycopg2
from processes import EmailerWorker, cpu_seconds

from tests.backlog import fill  # After ``processes``: it puts the checkout on the path.


TABLE = "kinto_emailer_outbox"


#: The subject's tag of the rows that ``fill`` writes: ``backlog {n}``.
TAG = "backlog"


def forget(inbox, tag=TAG):
    """Forget the emails tagged ``tag`` so far: each fill numbers its rows from 1 again."""
    with inbox.condition:
        inbox.counts.pop(tag, None)
        inbox.recipients.pop(tag, None)
        for key in [key for key in inbox.accepted if key[0] == tag]:
            del inbox.accepted[key]


def sql(url, statement):
    connection = psycopg2.connect(url)
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute(statement)
            return cursor.fetchall() if cursor.description else None
    finally:
        connection.close()


def empty_outbox(url):
    sql(url, f"TRUNCATE {TABLE}")


def postgres_cpu(database):
    """CPU seconds of the PostgreSQL backends connected to ``database`` now (``/proc``)."""
    rows = sql(database.url, f"SELECT pid FROM pg_stat_activity WHERE datname = '{database.name}'")
    total = 0.0
    for (pid,) in rows:
        try:
            total += cpu_seconds(pid)
        except OSError:  # Gone meanwhile, or on another host.
            pass
    return total


def idle(process, seconds=0.3, timeout=30):
    """Wait until ``process`` spends no CPU for ``seconds`` (started, caught up)."""
    deadline = time.monotonic() + timeout
    before = cpu_seconds(process.pid)
    while time.monotonic() < deadline:
        time.sleep(seconds)
        now = cpu_seconds(process.pid)
        if now == before:
            return
        before = now


def drain_rate(inbox, tag, count, timeout=300):
    """Emails per second between the first and the ``count``-th email tagged ``tag``."""
    inbox.wait_for(tag, count, timeout)
    with inbox.condition:
        times = sorted(t for (t_, _), t in inbox.accepted.items() if t_ == tag)[:count]
    if len(times) < count:
        return None
    return (count - 1) / (times[-1] - times[0])


class Backlog:
    """(l): a hooked write's p50 and the worker's drain rate with ``depth`` pending rows.

    The worker is stopped while the outbox is filled and written to (the writes compete with
    nothing but Kinto), then started to drain ``measured`` emails of the backlog; what is left
    is truncated, so that the run stays bounded.
    """

    def __init__(self, directory, database, web, alone, inbox, writes, measured):
        self.directory, self.database, self.web, self.alone = directory, database, web, alone
        self.inbox, self.writes, self.measured = inbox, writes, measured
        self.results = {}

    def measure(self, depth):
        empty_outbox(self.database.url)
        forget(self.inbox)
        fill(self.database.url, depth + self.measured, 0)
        plugin, alone = [], []
        for _ in range(self.writes):
            plugin.append(self.web.create("bl"))
            alone.append(self.alone.create("bl"))
        # Only the backlog's rows are drained: the writes' emails would take turns with them.
        sql(self.database.url, f"DELETE FROM {TABLE} WHERE bucket_id = 'bench'")
        worker = EmailerWorker(self.directory, self.web.ini)
        try:
            rate = drain_rate(self.inbox, TAG, self.measured)
        finally:
            worker.stop()
        empty_outbox(self.database.url)
        self.results[depth] = {
            "p50": statistics.median(plugin),
            "alone": statistics.median(alone),
            "rate": rate,
        }
        return self.results[depth]


def floor_message(index, size):
    body = b"A record was created. " * max(1, size // 22)
    return (
        b"From: kinto@example.com\r\nTo: alice@example.com\r\n"
        + f"Subject: floor {index}\r\nMessage-ID: <floor.{index}@bench>\r\n".encode()
        + b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        + body
        + b"\r\n.\r\n"
    )


def _replies(connection, buffer, count):
    """Read ``count`` final SMTP replies; returns what is left of ``buffer``."""
    while True:
        lines = buffer.split(b"\r\n")
        finals = [line for line in lines[:-1] if len(line) >= 4 and line[3:4] == b" "]
        if len(finals) >= count:
            return b""
        chunk = connection.recv(65536)
        if not chunk:
            raise ConnectionError("the mail server closed the connection")
        buffer += chunk


def smtp_floor(port, count, size=300):
    """The bare-socket floor: CPU seconds of this thread per email, and emails per second.

    EHLO once, then per email ``MAIL``/``RCPT``/``DATA`` in one write (the server offers
    PIPELINING) and the message in a second: what any client must do, with no library.
    """
    messages = [floor_message(index, size) for index in range(count)]
    envelope = b"MAIL FROM:<kinto@example.com>\r\nRCPT TO:<alice@example.com>\r\nDATA\r\n"
    with socket.create_connection(("127.0.0.1", port)) as connection:
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        _replies(connection, b"", 1)  # The greeting.
        connection.sendall(b"EHLO bench\r\n")
        _replies(connection, b"", 1)
        started, cpu = time.monotonic(), time.thread_time()
        for message in messages:
            connection.sendall(envelope)
            _replies(connection, b"", 3)
            connection.sendall(message)
            _replies(connection, b"", 1)
        cpu, elapsed = time.thread_time() - cpu, time.monotonic() - started
        connection.sendall(b"QUIT\r\n")
    return cpu / count, count / elapsed


def drain(directory, database, web, inbox, count, fill=fill, tag=TAG):
    """(m): one worker drains ``count`` rows that ``fill(url, count, 0)`` writes (emails, or
    (n2)'s webhooks); its CPU and PostgreSQL's per row, its rate."""
    empty_outbox(database.url)
    worker = EmailerWorker(directory, web.ini)
    try:
        idle(worker)  # Started, its imports done: only the drain is counted.
        cpu, pg = cpu_seconds(worker.pid), postgres_cpu(database)
        forget(inbox, tag)
        fill(database.url, count, 0)
        rate = drain_rate(inbox, tag, count)
        idle(worker, 0.1)  # Its last outcomes written.
        cpu, pg = cpu_seconds(worker.pid) - cpu, postgres_cpu(database) - pg
    finally:
        worker.stop()
    empty_outbox(database.url)
    return {"cpu": cpu / count, "pg": pg / count, "rate": rate}
