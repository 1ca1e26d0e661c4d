"""Issue 11, point 6: a default server under the byte bomb stays under its memory bound.

50 hooks whose templates repeat ``{new[b]}`` 8,192 times (the longest template allowed),
batches of 25 records with a large ``b``, four writers, the mail server down: each write asks
for 1,250 emails of 2 MiB. With the default limits the process stays under ``BOUND_MB``.
"""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.functional.conftest import AUTH
from tests.functional.server import KintoServer
from tests.support import free_port, hooked


pytestmark = pytest.mark.functional

#: The bound of the README: a default server's resident memory under the attack.
BOUND_MB = 350
WRITERS = 4
#: Batches per writer: a fixed amount of stored data (Kinto's memory backend keeps the
#: records), whatever the machine's speed; the deadline only bounds the test's time.
BATCHES = 12
DEADLINE_SECONDS = 45
BOMB = "{new[b]}" * 8192
# ASCII fills the queue; one emoji makes every character take 4 bytes in memory.
VALUES = ["x" * 2000, "x" * 1999 + "\N{GRINNING FACE}"]


def memory_mb(pid):
    """``(VmRSS, VmHWM)`` of ``pid`` in MB: now, and the peak since it started."""
    fields = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                fields[name] = int(value.split()[0]) // 1024
    return fields["VmRSS"], fields["VmHWM"]


@pytest.fixture
def server(tmp_path):
    # Nothing listens on the mail port: the server is down for the whole attack.
    kinto = KintoServer(tmp_path, None, free_port()).start(ready="/")
    yield kinto
    # Killed: a clean stop would wait kinto_emailer.shutdown_timeout for the server that is down.
    kinto.kill()


def test_the_byte_bomb_keeps_a_default_server_under_its_bound(server):
    session = requests.Session()
    session.auth = AUTH
    session.put(f"{server.url}/buckets/bomb", json={"data": {}}).raise_for_status()
    bomb = {
        "resource_name": "record",
        "subject": "{new[b]}",
        "template": BOMB,
        "html_template": BOMB,
        "recipients": ["victim@example.com"],
    }
    response = session.put(
        f"{server.url}/buckets/bomb/collections/c", json={"data": hooked(*[bomb] * 50)}
    )
    assert response.status_code == 201, response.text

    deadline = time.monotonic() + DEADLINE_SECONDS
    writes = []
    lock = threading.Lock()

    def writer(n):
        client = requests.Session()
        client.auth = AUTH
        body = {
            "defaults": {"method": "POST", "path": "/buckets/bomb/collections/c/records"},
            "requests": [{"body": {"data": {"b": VALUES[n % 2]}}}] * 25,
        }
        for _ in range(BATCHES):
            if time.monotonic() > deadline:
                break
            answer = client.post(f"{server.url}/batch", json=body, timeout=120)
            statuses = {r["status"] for r in answer.json()["responses"]}
            with lock:
                writes.append((answer.status_code, statuses))

    with ThreadPoolExecutor(WRITERS) as pool:
        for future in [pool.submit(writer, n) for n in range(WRITERS)]:
            future.result()
    rss, peak = memory_mb(server.process.pid)
    print(f"byte bomb: {len(writes)} writes, peak {peak} MB, now {rss} MB")

    # Every write succeeded, and the plugin said what it dropped and why.
    assert len(writes) >= WRITERS * BATCHES // 2, f"{len(writes)} writes before the deadline"
    assert all(code == 200 and statuses == {201} for code, statuses in writes), writes
    log = server.log()
    assert 'reason="request too large (kinto_emailer.max_request_bytes = 5000000)' in log
    assert 'reason="queue full (kinto_emailer.queue_bytes = 50000000)"' in log
    assert peak < BOUND_MB, f"peak {peak} MB, now {rss} MB, after {len(writes)} writes"


def test_window_writes_keep_a_default_server_under_its_bound(server):
    # Issue 24, attack 1: each write into a day's window kept a copy of the whole draft
    # (611 MB after 250 writes). Now one draft per window, counted in queue_bytes.
    session = requests.Session()
    session.auth = AUTH
    session.put(f"{server.url}/buckets/windows", json={"data": {}}).raise_for_status()
    window = {
        "resource_name": "record",
        "subject": "{count} changes",
        "digest": True,
        "digest_window": 86400,
        "template": BOMB,
        "html_template": BOMB,
        "item_template": "{new[b]}",
        "recipients": ["victim@example.com"],
    }
    records = f"{server.url}/buckets/windows/collections/c/records"
    response = session.put(
        f"{server.url}/buckets/windows/collections/c", json={"data": hooked(window)}
    )
    assert response.status_code == 201, response.text
    for n in range(250):
        answer = session.post(records, json={"data": {"b": VALUES[n % 2]}}, timeout=60)
        assert answer.status_code == 201, answer.text
    rss, peak = memory_mb(server.process.pid)
    print(f"window writes: peak {peak} MB, now {rss} MB")
    assert peak < BOUND_MB, f"peak {peak} MB, now {rss} MB"
