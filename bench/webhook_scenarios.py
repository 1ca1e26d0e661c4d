"""Signed webhooks in ``make bench`` (issue 21): (n1) a write with one webhook hook on the
PostgreSQL outbox against Kinto alone, every delivery received and verified; (n2) one worker
draining queued webhook rows beside the same worker draining as many emails."""

import base64
import os
import random
import statistics

import psycopg2
from outbox_scenarios import TABLE, drain
from table import latency_row, row


#: The endpoints' secret (Standard Webhooks: ``whsec_`` and the base64 of 24 to 64 bytes).
SECRET = "whsec_" + base64.b64encode(os.urandom(32)).decode()
HOOKED, DRAINED = "hooked", "drain"  # Endpoints, the receiver's tags, and (n1)'s collection.
ENDPOINTS = (HOOKED, DRAINED)
#: A webhook's body as the plugin composes it for a record's creation (``compose.webhook``);
#: ``data.id`` is the row's number, which the receiver reports.
BODY = """json_build_object(
    'type', 'kinto.record.create', 'timestamp', '2026-01-02T03:04:05.678Z',
    'data', json_build_object(
        'bucket_id', 'bucket-' || mod(n, 10), 'collection_id', 'c', 'id', 'r' || n,
        'uri', '/buckets/bucket-' || mod(n, 10) || '/collections/c/records/r' || n,
        'action', 'create', 'resource_name', 'record', 'user_id', 'account:alice',
        'timestamp', 1767323045678 + n,
        'new', json_build_object('id', 'r' || n, 'last_modified', 1767323045678 + n,
                                 'title', 'A record was created.'),
        'old', json_build_object(), 'event', 'kinto.core.events.AfterResourceChanged'))"""


def hook_metadata():
    return {"kinto-webhooks": {"hooks": [{"endpoint": HOOKED, "resource_name": "record"}]}}


def set_up(servers):
    """(n1)'s collection, its hook naming the endpoint (Kinto alone keeps it as data)."""
    for server in servers:
        server.request("PUT", f"/v1/buckets/bench/collections/{HOOKED}", hook_metadata())


def fill(url, pending, ended=0):
    """``pending`` queued webhook rows for the endpoint ``drain``, as the web process writes
    them (``channel``, ``destination``, ``payload``; no message), claimable now, over 10
    buckets, with ``INSERT ... SELECT generate_series`` as ``tests.backlog.fill`` does."""
    assert not ended, "only pending rows"
    payload = f"json_build_object('id', 'msg_' || md5(n::text), 'body', {BODY})"
    connection = psycopg2.connect(url)
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {TABLE} (bucket_id, collection_id, hook, uri, action, event, "
                "recipients_count, size, status, channel, destination, payload) "
                "SELECT 'bucket-' || mod(n, 10), 'c', '/buckets/bucket-' || mod(n, 10) || '#0', "
                "'/buckets/bucket-' || mod(n, 10) || '/collections/c/records/r' || n, "
                "'create', 'record.create', 0, 600, 'queued', 'webhook', %(endpoint)s, "
                f"{payload} FROM generate_series(1, %(pending)s) AS n",
                {"endpoint": DRAINED, "pending": pending},
            )
            cursor.execute(f"VACUUM ANALYZE {TABLE}")
    finally:
        connection.close()


def hooked_writes(pg_alone, pg_plugin, receiver, rounds, warm=50):
    """(n1): p50 of Kinto alone's writes and of the hooked ones, paired in a new order each
    round, and ``(received text, all received)``. The worker runs throughout."""
    for _ in range(warm):
        pg_alone.create(HOOKED)
        pg_plugin.create(HOOKED)
    receiver.wait_for(HOOKED, warm, timeout=60)
    samples = {"alone": [], "plugin": []}
    steps = [("alone", pg_alone), ("plugin", pg_plugin)]
    for _ in range(rounds):
        for key, server in random.sample(steps, 2):
            samples[key].append(server.create(HOOKED))
    expected = warm + rounds
    waited = receiver.wait_for(HOOKED, expected, timeout=120)
    unsigned = receiver.counts.get("unsigned", 0)
    text = f"{receiver.counts.get(HOOKED, 0)}/{expected}"
    text += "" if waited is None else f" +{waited:.2f}s"
    text += f", {unsigned} unsigned" if unsigned else ""
    return samples, text, waited is not None and not unsigned


def drains(directory, database, pg_plugin, inbox, receiver, count):
    """(n2): emails, webhooks, webhooks, emails (drift touches both alike); each figure the
    mean of its two drains. The bench's own worker must be stopped: ``drain`` starts one."""
    runs = {"email": [], "webhook": []}
    for kind in ("email", "webhook", "webhook", "email"):
        if kind == "email":
            runs[kind].append(drain(directory, database, pg_plugin, inbox, count))
        else:
            runs[kind].append(
                drain(directory, database, pg_plugin, receiver, count, fill=fill, tag=DRAINED)
            )
    return {
        kind: {
            "cpu": statistics.mean(r["cpu"] for r in results),
            "pg": statistics.mean(r["pg"] for r in results),
            "rate": None
            if any(r["rate"] is None for r in results)
            else statistics.mean(r["rate"] for r in results),
        }
        for kind, results in runs.items()
    }


def rows(n1, directory, database, pg_plugin, inbox, receiver, count):
    """(n1) measured while the bench's worker ran (``hooked_writes``); (n2) with workers of
    its own, ``count`` rows per drain."""
    samples, received, all_in = n1
    write = latency_row("(n1) PostgreSQL, one webhook hook", samples["alone"],
                        samples["plugin"], "Kinto alone +8%", 0.08, received)  # fmt: skip
    write["met"] = write["met"] and all_in
    drained = drains(directory, database, pg_plugin, inbox, receiver, count)
    email, webhook = drained["email"], drained["webhook"]

    def cpu(result):
        return f"{result['cpu'] * 1000:.3f} ms (+{result['pg'] * 1000:.3f} PostgreSQL)"

    rates = [r["rate"] for r in (email, webhook)]
    rate = "-" if None in rates else f"{rates[1] / rates[0]:.2f}x"
    return [
        write,
        row("(n2) drain: worker CPU/delivery, webhook vs email", cpu(email), cpu(webhook),
            f"{webhook['cpu'] / email['cpu']:.2f}x", "-", True,
            f"{2 * count} each"),
        row("(n2) drain: deliveries/s per worker, webhook vs email",
            "-" if rates[0] is None else f"{rates[0]:.0f}",
            "-" if rates[1] is None else f"{rates[1]:.0f}", rate, "all drained",
            None not in rates, ""),
    ]  # fmt: skip
