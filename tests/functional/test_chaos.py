"""Chaos: web processes on one PostgreSQL outbox, killed with SIGKILL at random moments during
1,000 writes. Every committed record gets its email and its webhook at least once; one is
sent twice only where its process died holding it, a webhook's repeats with its first's id
and body; the duplicates are reported.
"""

import json
import random
import threading
import time
from collections import Counter

import pytest
import requests
from standardwebhooks import Webhook

from tests.functional.conftest import AUTH
from tests.functional.test_outbox import hooked_collection, mailed
from tests.http_receiver import SECRET, Receiver
from tests.support import SMTPServer


pytestmark = [pytest.mark.functional, pytest.mark.postgresql]

WRITES = 1000
CLIENTS = 4
KILLS = 6
#: Beside each record's email, a webhook to a loopback receiver.
WEBHOOKS = {"kinto-webhooks": {"hooks": [{"endpoint": "audit", "resource_name": "record"}]}}


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


def test_sigkills_during_1000_writes_lose_no_committed_email_nor_webhook(outbox, record_property):
    seed = random.randrange(2**32)
    record_property("seed", seed)
    chance = random.Random(seed)
    smtp = SMTPServer(port=outbox.smtp_port).start()
    receiver = Receiver()
    try:
        servers = [outbox.web(name, receiver=receiver).start() for name in ("first", "second")]
        hooked_collection(servers[0], metadata=WEBHOOKS)
        writers = Writers(servers)
        kill_at = sorted(chance.sample(range(50, WRITES - 50), KILLS))
        in_flight = 0  # The rows each killed process held: the only ones sent twice.
        held = set()
        writers.start()
        for progress in kill_at:
            while writers.done < progress:
                time.sleep(0.005)
            time.sleep(chance.uniform(0, 0.05))
            victim = chance.choice(servers)
            writers.up.remove(victim)
            victim.kill()
            claimed = outbox.claimed_by(victim)
            in_flight += len(claimed)
            held |= set(claimed)
            victim.start()
            writers.up.append(victim)
        writers.join(timeout=300)

        statuses = outbox.wait_delivered(timeout=120)
    finally:
        smtp.stop()
        receiver.stop()
    committed = outbox.records("b", "c")
    emails = mailed(smtp.inbox)
    email_duplicates = sum(emails.values()) - len(emails)
    # Every webhook received verifies; its id -> the bodies received with it.
    bodies = {}
    for request in receiver.received:
        Webhook(SECRET).verify(request.body, request.headers)
        bodies.setdefault(request.headers["webhook-id"], []).append(request.body)
    webhooks = sum(len(repeats) for repeats in bodies.values())
    webhook_duplicates = webhooks - len(bodies)
    hooked_ids = Counter(json.loads(repeats[0])["data"]["id"] for repeats in bodies.values())
    # What the killed processes held, by what identifies it on arrival.
    rows = outbox.sql(
        "SELECT channel, subject, payload->>'id' FROM kinto_emailer_outbox WHERE id = ANY(%s)",
        (sorted(held),),
    )
    held_emails = {subject for channel, subject, _ in rows if channel == "email"}
    held_webhooks = {webhook_id for channel, _, webhook_id in rows if channel == "webhook"}
    summary = (
        f"chaos (seed {seed}): {len(committed)} records committed, {KILLS} SIGKILLs, "
        f"{sum(emails.values())} emails, {email_duplicates} duplicate(s), "
        f"{webhooks} webhooks, {webhook_duplicates} duplicate(s), {in_flight} in flight"
    )
    print(summary)
    for name, value in [
        ("committed", len(committed)),
        ("kills", KILLS),
        ("emails", sum(emails.values())),
        ("duplicates", email_duplicates),
        ("webhooks", webhooks),
        ("webhook_duplicates", webhook_duplicates),
        ("in_flight", in_flight),
    ]:
        record_property(name, value)

    assert set(writers.acknowledged) <= committed and len(writers.acknowledged) == WRITES
    # One email row and one webhook row per committed record: a retried write that had
    # committed added none.
    assert statuses == {"sent": 2 * len(committed)}, summary
    assert set(emails) == committed, summary
    # One webhook-id per record, every committed record's posted at least once.
    assert set(hooked_ids) == committed and set(hooked_ids.values()) == {1}, summary
    # Sent twice: held by a killed process (the one under way, and those whose outcome it
    # had not written yet: a burst's outcomes are written together).
    assert {id_ for id_, count in emails.items() if count > 1} <= held_emails, summary
    assert {id_ for id_, repeats in bodies.items() if len(repeats) > 1} <= held_webhooks
    assert email_duplicates + webhook_duplicates <= in_flight, summary
    assert Counter(emails.values()).keys() <= {1, 2}, summary
    # A webhook sent again is the same delivery: its id and body, byte for byte.
    assert all(len(set(repeats)) == 1 for repeats in bodies.values()), summary
