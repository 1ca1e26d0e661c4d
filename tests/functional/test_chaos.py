"""Chaos: web processes on one PostgreSQL outbox, killed with SIGKILL at random moments during
1,000 writes. Every committed record gets its email at least once; an email is sent twice
only where its process died holding it, and the duplicates are reported.
"""

import random
import threading
import time
from collections import Counter

import pytest
import requests

from tests.functional.conftest import AUTH
from tests.functional.test_outbox import hooked_collection, mailed
from tests.support import SMTPServer


pytestmark = [pytest.mark.functional, pytest.mark.postgresql]

WRITES = 1000
CLIENTS = 4
KILLS = 6


class Writers:
    """``CLIENTS`` threads creating records ``r0000``... on whichever server is up; a write
    that fails (connection reset, 5xx, 409) is sent again with the same id, as clients do:
    a POST of an id that exists answers 200 and changes nothing."""

    def __init__(self, servers):
        self.servers = servers
        self.up = list(servers)
        self.ids = iter(f"r{n:04}" for n in range(WRITES))
        self.lock = threading.Lock()
        self.acknowledged = []
        self.threads = [threading.Thread(target=self.write) for _ in range(CLIENTS)]

    def start(self):
        for thread in self.threads:
            thread.start()

    def join(self, timeout):
        for thread in self.threads:
            thread.join(timeout)
        assert not any(thread.is_alive() for thread in self.threads), "writers still busy"

    @property
    def done(self):
        return len(self.acknowledged)

    def write(self):
        session = requests.Session()
        while True:
            with self.lock:
                id_ = next(self.ids, None)
            if id_ is None:
                return
            for _ in range(200):
                server = random.choice(self.up)
                path = f"{server.url}/buckets/b/collections/c/records"
                try:
                    response = session.post(
                        path, json={"data": {"id": id_}}, auth=AUTH, timeout=30
                    )
                    if response.status_code in (200, 201):
                        break
                except requests.RequestException:
                    pass
                time.sleep(0.02)
            else:
                raise AssertionError(f"{id_} could not be written")
            with self.lock:
                self.acknowledged.append(id_)


def test_sigkills_during_1000_writes_lose_no_committed_email(outbox, record_property):
    seed = random.randrange(2**32)
    record_property("seed", seed)
    chance = random.Random(seed)
    smtp = SMTPServer(port=outbox.smtp_port).start()
    try:
        servers = [outbox.web(name).start() for name in ("first", "second")]
        hooked_collection(servers[0])
        writers = Writers(servers)
        kill_at = sorted(chance.sample(range(50, WRITES - 50), KILLS))
        in_flight = 0  # The rows each killed process held: the only ones sent twice.
        writers.start()
        for progress in kill_at:
            while writers.done < progress:
                time.sleep(0.005)
            time.sleep(chance.uniform(0, 0.05))
            victim = chance.choice(servers)
            writers.up.remove(victim)
            victim.kill()
            in_flight += len(outbox.claimed_by(victim))
            victim.start()
            writers.up.append(victim)
        writers.join(timeout=300)

        statuses = outbox.wait_delivered(timeout=120)
    finally:
        smtp.stop()
    committed = outbox.records("b", "c")
    emails = mailed(smtp.inbox)
    duplicates = sum(emails.values()) - len(emails)
    summary = (
        f"chaos (seed {seed}): {len(committed)} records committed, {KILLS} SIGKILLs, "
        f"{sum(emails.values())} emails, {duplicates} duplicate(s), {in_flight} in flight"
    )
    print(summary)
    for name, value in [
        ("committed", len(committed)),
        ("kills", KILLS),
        ("emails", sum(emails.values())),
        ("duplicates", duplicates),
        ("in_flight", in_flight),
    ]:
        record_property(name, value)

    assert set(writers.acknowledged) <= committed and len(writers.acknowledged) == WRITES
    # One row per committed record: a retried write that had committed added none.
    assert statuses == {"sent": len(committed)}, summary
    assert set(emails) == committed, summary
    # Sent twice: held by a killed process, at most the one under way on its SMTP connection.
    assert duplicates <= min(in_flight, KILLS), summary
    assert Counter(emails.values()).keys() <= {1, 2}, summary
