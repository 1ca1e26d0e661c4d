"""What ``make bench`` measures: throughput and CPU under 4 clients, and how long an email
takes from its write to the mail server's acceptance at rest."""

import statistics
import threading
import time

from processes import Client, cpu_seconds


CLIENTS = 4


class Saturation:
    """Writes per second and the web process's CPU per write, in rounds of ``seconds``."""

    def __init__(self, server, collection, seconds, inbox=None, helper=None):
        self.server, self.collection, self.seconds = server, collection, seconds
        # The emails of a round are delivered before the next: none is sent in another's.
        self.inbox = inbox
        self.helper = helper  # Another process that works for these writes (the worker).
        self.rates, self.cpu, self.helper_cpu, self.sink_cpu = [], [], [], []
        self.writes = 0
        self.padding = 0  # Records written outside the rounds (``equalize`` in run.py).

    def round(self):
        server, counts = self.server, [0] * CLIENTS
        clients = [Client(server) for _ in range(CLIENTS)]
        start = threading.Barrier(CLIENTS + 1)
        state, errors = {}, []

        def write(index):
            client = clients[index]
            start.wait()
            # A collection each: on PostgreSQL, concurrent creations in one collection
            # conflict on its timestamp (409), which measures retries, not writes.
            collection = f"{self.collection}{index}"
            try:
                while time.monotonic() < state["stop_at"]:
                    client.create(collection)
                    counts[index] += 1
            except Exception as e:
                errors.append(e)

        threads = [threading.Thread(target=write, args=(i,), daemon=True) for i in range(CLIENTS)]
        for thread in threads:
            thread.start()
        cpu, helper, sink = cpu_seconds(server.pid), self._helper_cpu(), self._sink_cpu()
        started = time.monotonic()
        state["stop_at"] = started + self.seconds
        start.wait()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]
        elapsed = time.monotonic() - started
        cpu = cpu_seconds(server.pid) - cpu
        writes = sum(counts)
        self.writes += writes
        if self.inbox is not None:  # Its CPU counts until the last email of the round.
            self.inbox.wait_for(self.collection, self.writes, timeout=120)
        helper, sink = self._helper_cpu() - helper, self._sink_cpu() - sink
        for client in clients:
            client.close()
        self.rates.append(writes / elapsed)
        self.cpu.append(cpu / writes)
        self.helper_cpu.append(helper / writes)
        self.sink_cpu.append(sink / writes)

    def _helper_cpu(self):
        return 0.0 if self.helper is None else cpu_seconds(self.helper.pid)

    def _sink_cpu(self):
        return 0.0 if self.inbox is None else cpu_seconds(self.inbox.process.pid)

    @property
    def rate(self):
        return statistics.median(self.rates)

    @property
    def cpu_per_write(self):
        return statistics.median(self.cpu)

    @property
    def helper_cpu_per_write(self):
        return statistics.median(self.helper_cpu)

    @property
    def sink_cpu_per_write(self):
        return statistics.median(self.sink_cpu)


def at_rest(server, inbox, tag, count, gap):
    """Seconds from each write's request (before its commit) to the mail server's 250 reply,
    one write at a time, ``gap`` seconds apart; None for an email that did not arrive."""
    latencies = []
    for index in range(count):
        id_ = f"rest{index:04}"
        started = time.monotonic()
        server.request("PUT", f"/v1/buckets/bench/collections/{tag}/records/{id_}")
        accepted = inbox.wait_for_id(tag, id_, timeout=30)
        latencies.append(None if accepted is None else accepted - started)
        time.sleep(gap)
    return latencies


def percentile(samples, fraction):
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]
