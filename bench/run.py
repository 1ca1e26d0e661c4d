"""Writes with and without kinto-emailer: real `kinto start` processes on the memory backend
and on PostgreSQL (outbox delivered by `kinto-emailer worker`), a local aiosmtpd server, all
measured interleaved in one run. `make bench`."""

import argparse
import os
import platform
import random
import sys
import tempfile
import time

import webhook_scenarios as webhooks
from outbox_scenarios import Backlog, drain, smtp_floor
from processes import Database, EmailerWorker, Inbox, Kinto, migrate, write_ini
from receiver import Receiver
from scenarios import CLIENTS, Saturation, at_rest
from table import delivered, latency_row, machine, ms, rest_row, row, saturation_rows


ROUNDS = 500  # Writes per server for (a) and (b).
SLOW_ROUNDS = 100  # (c): 100 emails at 200 ms each keep the slow server busy for 20 s.
BATCHES = 5  # (d): batches of 200 creations per server.
GROUP_WRITES = 20  # (e)
SLOW_DELAY = 0.2
PG_ROUNDS = 300  # (h)
PG_BATCHES = 3  # (i)
SATURATION_ROUNDS = 5  # (f), (j): rounds per server, interleaved; medians reported.
SATURATION_SECONDS = 4.0
REST_WRITES = 100  # (g), (k)
REST_GAP = 0.05
BACKLOG_DEPTHS = (0, 10_000, 100_000)  # (l): pending rows.
BACKLOG_WRITES = 200  # (l): hooked writes per depth, interleaved with Kinto alone's.
BACKLOG_DRAINED = 3000  # (l): emails of the backlog drained per depth for the rate.
DRAINED = 5000  # (m)
WEBHOOK_ROUNDS = 300  # (n1)
WEBHOOKS_DRAINED = 2000  # (n2): per drain, two of webhooks and two of emails.


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
    for tag in ("b", "c", "d", "l", "bl"):
        server.request("PUT", f"/v1/buckets/bench/collections/{tag}", hook(tag))
    for index in range(CLIENTS):
        server.request("PUT", f"/v1/buckets/bench/collections/t{index}", hook("t"))
    server.request(
        "PUT", "/v1/buckets/bench/collections/e", hook("e", ["/buckets/bench/groups/everyone"])
    )


def equalize(first, second):
    """Creations in an unhooked collection, so that both servers hold as many records."""
    behind, ahead = sorted((first, second), key=lambda s: s.writes + s.padding)
    missing = ahead.writes + ahead.padding - behind.writes - behind.padding
    while missing > 0:
        count = min(missing, 200)
        behind.server.batch("plain", count)
        behind.padding += count
        missing -= count


GROUPS = {
    "memory": "(a) to (g): the memory backend, the delivery thread in the web process",
    "postgresql": "(h) to (k): PostgreSQL, a separate kinto-emailer worker",
    "backlog": "(l): PostgreSQL, a hooked write and the drain with a deep backlog",
    "drain": "(m): one worker's CPU per email beside a bare SMTP socket's",
    "webhooks": "(n1), (n2): PostgreSQL, a hooked write and the drain of signed webhooks",
}


def options(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only",
        default=",".join(GROUPS),
        help="comma-separated groups of scenarios: "
        + "; ".join(f"{name}: {what}" for name, what in GROUPS.items()),
    )
    args = parser.parse_args(argv)
    args.groups = {name.strip() for name in args.only.split(",") if name.strip()}
    unknown = args.groups - set(GROUPS)
    if unknown:
        parser.error(f"unknown group(s) {', '.join(sorted(unknown))}: one of {', '.join(GROUPS)}")
    return args


def main(argv=None):
    groups = options(argv).groups
    load = os.getloadavg()
    fast, slow, outbox_inbox = Inbox(), Inbox(delay=SLOW_DELAY), Inbox()
    directory = tempfile.mkdtemp(prefix="kinto-emailer-bench-")
    databases, processes = [], []
    rows = []
    pg_groups = groups & {"postgresql", "backlog", "drain", "webhooks"}
    receiver = Receiver(webhooks.SECRET) if "webhooks" in groups else None
    try:
        servers = []
        if "memory" in groups:
            alone = Kinto(directory, "alone", write_ini(directory, "alone"))
            processes.append(alone)
            plugin = Kinto(directory, "plugin", write_ini(directory, "plugin", fast.port))
            processes.append(plugin)
            plugin_slow = Kinto(directory, "plugin-slow", write_ini(directory, "slow", slow.port))
            processes.append(plugin_slow)
            servers += [alone, plugin, plugin_slow]
        if pg_groups:
            databases += [Database("alone"), Database("plugin")]
            pg_alone_ini = write_ini(directory, "pg-alone", database=databases[0])
            pg_plugin_ini = write_ini(directory, "pg-plugin", outbox_inbox.port, databases[1])
            with open(os.path.join(directory, "migrate.log"), "w") as log:
                migrate(pg_alone_ini, log)
                migrate(pg_plugin_ini, log)
            pg_alone = Kinto(directory, "pg-alone", pg_alone_ini)
            processes.append(pg_alone)
            pg_plugin = Kinto(directory, "pg-plugin", pg_plugin_ini)
            processes.append(pg_plugin)
            worker_ini = pg_plugin_ini
            if receiver is not None:
                # (n1) and (n2) on a server of their own, on the same database: with an HTTP
                # channel configured, a write also looks for that channel's hooks, which
                # falls back to the bucket where the collection has none ((h) to (k) would
                # pay that read, which their deployment doesn't).
                endpoints = (receiver.port, webhooks.SECRET, webhooks.ENDPOINTS)
                worker_ini = write_ini(
                    directory, "pg-webhooks", outbox_inbox.port, databases[1], endpoints
                )
                pg_webhooks = Kinto(directory, "pg-webhooks", worker_ini)
                processes.append(pg_webhooks)
            worker = EmailerWorker(directory, worker_ini)  # It posts (n1)'s webhooks too.
            processes.append(worker)
            servers += [pg_alone, pg_plugin]
        for server in servers:
            set_up(server)
        if receiver is not None:
            webhooks.set_up([pg_alone, pg_webhooks])
        for _ in range(50):  # Warm-up, emails included.
            for server in servers:
                server.create("plain")
                server.create("b")
        if "memory" in groups:
            fast.wait_for("b", 50)
        if pg_groups:
            outbox_inbox.wait_for("b", 50)
        warm = 50

        if "memory" in groups:
            rows += memory_scenarios(alone, plugin, plugin_slow, fast, slow, warm)
        if "postgresql" in groups:
            rows += postgresql_scenarios(pg_alone, pg_plugin, worker, outbox_inbox, warm)
        if "webhooks" in groups:
            n1 = webhooks.hooked_writes(pg_alone, pg_webhooks, receiver, WEBHOOK_ROUNDS)
        if groups & {"backlog", "drain", "webhooks"}:
            worker.stop()  # (l) and (m) start workers of their own.
            processes.remove(worker)
        if "backlog" in groups:
            rows += backlog_rows(directory, databases[1], pg_plugin, pg_alone, outbox_inbox)
        if "drain" in groups:
            rows += drain_rows(directory, databases[1], pg_plugin, outbox_inbox)
        if "webhooks" in groups:
            rows += webhooks.rows(
                n1, directory, databases[1], pg_webhooks, outbox_inbox, receiver, WEBHOOKS_DRAINED
            )
    finally:
        for process in reversed(processes):
            process.stop()
        for inbox in (fast, slow, outbox_inbox, receiver):
            if inbox is not None:
                inbox.stop()
        for database in databases:
            database.drop()
    print_table(rows, load, os.getloadavg(), groups)
    return 0 if all(r["met"] for r in rows) else 1


def memory_scenarios(alone, plugin, plugin_slow, fast, slow, warm):
    """(a) to (g)."""
    samples = {key: [] for key in ("a0", "a1", "b0", "b1", "b1c", "c")}
    steps = [("a0", alone, "plain"), ("a1", plugin, "plain"),
             ("b0", alone, "b"), ("b1", plugin, "b")]  # fmt: skip
    for _ in range(ROUNDS):
        # Interleaved, in a new order each round: drift touches every column alike.
        for key, server, collection in random.sample(steps, len(steps)):
            samples[key].append(server.create(collection))
    for _ in range(SLOW_ROUNDS):
        # (c) against (b) measured in the same rounds.
        samples["b1c"].append(plugin.create("b"))
        samples["c"].append(plugin_slow.create("c"))
    emails_b, _ = delivered(fast, "b", warm + ROUNDS + SLOW_ROUNDS)
    emails_c, _ = delivered(slow, "c", SLOW_ROUNDS, timeout=SLOW_ROUNDS * SLOW_DELAY * 3)
    batch = {"d0": [], "d1": []}
    for _ in range(BATCHES):
        batch["d0"].append(alone.batch("d", 200))
        batch["d1"].append(plugin.batch("d", 200))
    emails_d, _ = delivered(fast, "d", 200 * BATCHES)
    group = {"e0": [], "e1": []}
    for _ in range(GROUP_WRITES):
        group["e0"].append(alone.create("e"))
        group["e1"].append(plugin.create("e"))
    emails_e, all_e = delivered(fast, "e", GROUP_WRITES)
    full_groups = all(n == 200 for n in fast.recipients.get("e", []))

    # (f): 4 clients back to back, both servers in turn, in a new order each round.
    saturations = [
        Saturation(alone, "t", SATURATION_SECONDS),
        Saturation(plugin, "t", SATURATION_SECONDS, inbox=fast),
    ]
    for _ in range(SATURATION_ROUNDS):
        for saturation in random.sample(saturations, len(saturations)):
            saturation.round()
        # Kinto's memory permission backend scans every stored object on each write:
        # servers compared start each round with as many records.
        equalize(*saturations)
    memory_rows = saturation_rows("(f) memory", *saturations, fast)
    # (g): at rest, one write at a time.
    rest_memory = at_rest(plugin, fast, "l", REST_WRITES, REST_GAP)
    e_text = emails_e + ("" if full_groups else " (missing recipients)")
    return [
        latency_row("(a) no hook", samples["a0"], samples["a1"], "Kinto alone +5%", 0.05,
                    "no email"),
        latency_row("(b) one matching hook", samples["b0"], samples["b1"],
                    "Kinto alone +25%", 0.25, emails_b),
        latency_row("(c) mail server 200 ms/email", samples["b1c"], samples["c"],
                    "(b) +25%", 0.25, emails_c),
        latency_row("(d) batch of 200 creations", batch["d0"], batch["d1"],
                    "Kinto alone +25%", 0.25, emails_d),
        {**latency_row("(e) hook to a 200-member group", group["e0"], group["e1"],
                       "all emails arrive", float("inf"), e_text),
         "met": all_e and full_groups},
        *memory_rows,
        rest_row("(g) memory, write to accepted, at rest", rest_memory),
    ]  # fmt: skip


def postgresql_scenarios(pg_alone, pg_plugin, worker, outbox_inbox, warm):
    """(h) to (k), interleaved."""
    pg = {"h0": [], "h1": [], "i0": [], "i1": []}
    pg_steps = [("h0", pg_alone), ("h1", pg_plugin)]
    for _ in range(PG_ROUNDS):
        for key, server in random.sample(pg_steps, 2):
            pg[key].append(server.create("b"))
    emails_h, _ = delivered(outbox_inbox, "b", warm + PG_ROUNDS)
    for _ in range(PG_BATCHES):
        pg["i0"].append(pg_alone.batch("d", 200))
        pg["i1"].append(pg_plugin.batch("d", 200))
    emails_i, _ = delivered(outbox_inbox, "d", 200 * PG_BATCHES)
    saturations = [
        Saturation(pg_alone, "t", SATURATION_SECONDS),
        Saturation(pg_plugin, "t", SATURATION_SECONDS, inbox=outbox_inbox, helper=worker),
    ]
    for _ in range(SATURATION_ROUNDS):
        for saturation in random.sample(saturations, len(saturations)):
            saturation.round()
        equalize(*saturations)
    pg_rows = saturation_rows(
        "(j) PostgreSQL", *saturations, outbox_inbox, cpu_limit=1.03, rate_limit=0.95
    )
    rest_pg = at_rest(pg_plugin, outbox_inbox, "l", REST_WRITES, REST_GAP)
    return [
        latency_row("(h) PostgreSQL, one matching hook", pg["h0"], pg["h1"],
                    "Kinto alone +8%", 0.08, emails_h),
        latency_row("(i) PostgreSQL, batch of 200", pg["i0"], pg["i1"],
                    "Kinto alone +25%", 0.25, emails_i),
        *pg_rows,
        rest_row("(k) PostgreSQL, write to accepted, at rest", rest_pg),
    ]  # fmt: skip


def backlog_rows(directory, database, pg_plugin, pg_alone, inbox):
    """(l): each depth in turn between two measures of the empty outbox; "Kinto alone" is the
    empty outbox's column, and the write's ratio is to Kinto alone's p50 in the same rounds."""
    backlog = Backlog(directory, database, pg_plugin, pg_alone, inbox,
                      BACKLOG_WRITES, BACKLOG_DRAINED)  # fmt: skip
    first = dict(backlog.measure(0))
    deeps = {depth: backlog.measure(depth) for depth in BACKLOG_DEPTHS[1:]}
    last = backlog.measure(0)
    # The empty outbox before and after the deep ones: the write's ratio to Kinto alone is
    # their mean, the drain rate the faster of the two (a slow start never flatters depth).
    empty = {
        "p50": (first["p50"] + last["p50"]) / 2,
        "alone": (first["alone"] + last["alone"]) / 2,
        "rate": max((r for r in (first["rate"], last["rate"]) if r), default=None),
    }
    rows = []
    for depth, deep in deeps.items():
        # Against Kinto alone in the same rounds: the machine's drift between depths cancels.
        write = (deep["p50"] / deep["alone"]) / (empty["p50"] / empty["alone"]) - 1
        plugin = f"{ms(deep['p50'])} (Kinto alone {ms(deep['alone'])})"
        rows.append(row(f"(l) backlog {depth:,}: hooked write p50",
                        f"{ms(empty['p50'])} (Kinto alone {ms(empty['alone'])})", plugin,
                        f"{write:+.1%}", "empty +5%", write <= 0.05, ""))  # fmt: skip
        if deep["rate"] is None or empty["rate"] is None:
            rows.append(row(f"(l) backlog {depth:,}: drain", "-", "not drained", "-",
                            "empty -10%", False, f"<{BACKLOG_DRAINED}"))  # fmt: skip
            continue
        rate = deep["rate"] / empty["rate"]
        rows.append(row(f"(l) backlog {depth:,}: drain emails/s", f"{empty['rate']:.0f}",
                        f"{deep['rate']:.0f}", f"{rate:.2f}x", ">= 0.90x", rate >= 0.90,
                        f"{BACKLOG_DRAINED} drained"))  # fmt: skip
    return rows


def drain_rows(directory, database, pg_plugin, inbox):
    """(m): the bare socket first, then the worker, on the same mail server."""
    floor_cpu, floor_rate = smtp_floor(inbox.port, DRAINED)
    drained = drain(directory, database, pg_plugin, inbox, DRAINED)
    ratio = drained["cpu"] / floor_cpu
    cpu = f"{drained['cpu'] * 1000:.3f} ms (+{drained['pg'] * 1000:.3f} PostgreSQL)"
    rate = "-" if drained["rate"] is None else f"{drained['rate']:.0f}"
    return [
        row("(m) drain: CPU/email, worker vs bare socket", f"{floor_cpu * 1000:.3f} ms",
            cpu, f"{ratio:.1f}x", "<= 4x", ratio <= 4, f"{DRAINED} emails"),
        row("(m) drain: emails/s, worker vs bare socket", f"{floor_rate:.0f}", rate,
            "-" if drained["rate"] is None else f"{drained['rate'] / floor_rate:.2f}x", "-",
            drained["rate"] is not None, ""),
    ]  # fmt: skip


def print_table(rows, load_before, load_after, groups):
    print(
        f"kinto-emailer bench, {time.strftime('%Y-%m-%d')}, {platform.node()}, {machine()}, "
        f"Python {platform.python_version()}; load average {load_before[0]:.2f} before, "
        f"{load_after[0]:.2f} after; groups: {', '.join(g for g in GROUPS if g in groups)}"
    )
    print(
        f"p50 over {ROUNDS} writes for (a) and (b), {SLOW_ROUNDS} for (c), {BATCHES} batches "
        f"for (d), {GROUP_WRITES} writes for (e), {PG_ROUNDS} for (h), {PG_BATCHES} batches\n"
        f"for (i); (c) compares with (b) in the same rounds. (f), (j): {CLIENTS} clients "
        f"writing back to back for {SATURATION_SECONDS:g} s, medians of {SATURATION_ROUNDS} "
        "rounds interleaved\nwith the other server, each plugin round's emails delivered "
        "before the next; CPU of the kinto process from /proc,\nin brackets that of the worker "
        "and of the mail server (aiosmtpd, same host) until the round's last email.\n"
        f"(g), (k): {REST_WRITES} writes {REST_GAP * 1000:g} ms apart, from the request to the "
        "mail server's 250.\nPostgreSQL: kinto_emailer.outbox = postgresql, outbox_worker = "
        "false, one `kinto-emailer worker`.\n"
        f"(l): {BACKLOG_WRITES} hooked writes per depth (worker stopped, interleaved with Kinto "
        f"alone's), then a worker drains {BACKLOG_DRAINED} emails\nof the backlog: emails/s "
        "between the first and the last. (m): the same mail server, a bare socket (EHLO once, "
        "MAIL/RCPT/DATA\nin one write, the message in a second) then one worker draining "
        f"{DRAINED} rows: CPU per email of the socket's thread and of the worker process,\n"
        "in brackets PostgreSQL's backends of that database (/proc).\n"
        f"(n1): {WEBHOOK_ROUNDS} writes to a collection with one webhook hook, paired with Kinto "
        "alone's; the worker posts to a loopback receiver\n(http.server, its own process, 200 "
        "at once) that verifies each signature. (n2): one worker drains "
        f"{WEBHOOKS_DRAINED} rows, emails then webhooks\nthen webhooks then emails (means of "
        "two): CPU per delivery of the worker, in brackets PostgreSQL's; deliveries/s.\n"
        "Emails: arrived/expected, +seconds waited for the last after the writes."
    )
    header = {"name": "scenario", "alone": "Kinto alone", "plugin": "plugin", "ratio": "ratio",
              "target": "target", "met": "met", "emails": "emails"}  # fmt: skip
    lines = [header] + [{**r, "met": "yes" if r["met"] else "NO"} for r in rows]
    widths = {key: max(len(str(line[key])) for line in lines) for key in header}
    rule = "  ".join("=" * w for w in widths.values())
    print(rule)
    for index, line in enumerate(lines):
        print("  ".join(str(line[key]).ljust(w) for key, w in widths.items()).rstrip())
        if index == 0:
            print(rule)
    print(rule)


if __name__ == "__main__":
    sys.exit(main())
