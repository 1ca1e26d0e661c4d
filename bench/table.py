"""The rows of ``make bench``'s table: each scenario's figures, formatted, its target and
whether the run met it."""

import os
import platform
import statistics

from scenarios import CLIENTS, percentile


def ms(seconds):
    return f"{seconds * 1000:.2f} ms"


def row(name, alone, plugin, ratio, target, met, emails):
    return {"name": name, "alone": alone, "plugin": plugin, "ratio": ratio,
            "target": target, "met": met, "emails": emails}  # fmt: skip


def latency_row(name, base, value, target, limit, emails):
    p0, p1 = statistics.median(base), statistics.median(value)
    ratio = p1 / p0 - 1
    return row(name, ms(p0), ms(p1), f"{ratio:+.1%}", target, ratio <= limit, emails)


def delivered(inbox, tag, expected, timeout=120):
    waited = inbox.wait_for(tag, expected, timeout)
    text = f"{inbox.counts.get(tag, 0)}/{expected}"
    return (text if waited is None else f"{text} +{waited:.2f}s"), waited is not None


def saturation_rows(label, alone, plugin, inbox, cpu_limit=None, rate_limit=0.90):
    emails, all_in = delivered(inbox, "t", plugin.writes)
    ratio = plugin.rate / alone.rate
    rows = [row(f"{label}, {CLIENTS} clients: writes/s", f"{alone.rate:.0f}",
                f"{plugin.rate:.0f}", f"{ratio:.2f}x", f">= {rate_limit:.2f}x",
                ratio >= rate_limit and all_in, emails)]  # fmt: skip
    cpu = plugin.cpu_per_write / alone.cpu_per_write
    helper = f"+{plugin.sink_cpu_per_write * 1000:.2f} mail server"
    if plugin.helper is not None:
        helper = f"+{plugin.helper_cpu_per_write * 1000:.2f} worker, {helper}"
    helper = f" ({helper})"
    rows.append(
        row(f"{label}, {CLIENTS} clients: web CPU/write", ms(alone.cpu_per_write),
            ms(plugin.cpu_per_write) + helper, f"{cpu:.2f}x",
            "-" if cpu_limit is None else f"<= {cpu_limit:.2f}x",
            cpu_limit is None or cpu <= cpu_limit, "")
    )  # fmt: skip
    return rows


def rest_row(name, latencies):
    arrived = [s for s in latencies if s is not None]
    if not arrived:
        return row(name, "-", "none arrived", "-", "p50 < 100 ms", False, f"0/{len(latencies)}")
    p50, p99 = statistics.median(arrived), percentile(arrived, 0.99)
    met = p50 < 0.1 and len(arrived) == len(latencies)
    emails = f"{len(arrived)}/{len(latencies)}"
    return row(name, "-", f"p50 {ms(p50)}, p99 {ms(p99)}", "-", "p50 < 100 ms", met, emails)


def machine():
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f if "model name" in line)
    except (OSError, StopIteration):
        pass
    return f"{platform.machine()}, {os.cpu_count()} CPUs {model}".strip()
