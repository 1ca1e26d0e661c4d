"""Concurrent writers on the real server: one email per write, none lost, none twice.

Kinto refuses some concurrent writes with a 409 (rolled back) that the clients retry with the
same record id: an email for a refused attempt would show up as a duplicate.
"""

from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from kinto_http import Client

from tests.functional.conftest import AUTH
from tests.support import hooked


pytestmark = [pytest.mark.functional, pytest.mark.postgresql]

CLIENTS = 8
WRITES = 400


def test_concurrent_writes_send_exactly_one_email_each(kinto_server, scenario):
    bid = scenario.bucket
    hook = {
        "resource_name": "record",
        "subject": "written",
        "template": "{record_id}",
        "recipients": ["alice@example.com"],
    }
    scenario.client.create_collection(id="busy", bucket=bid, data=hooked(hook))

    def write(worker):
        # One client per thread: a requests session is not meant to be shared. Concurrent
        # writes to one collection may be refused (409, rolled back): retried, as clients do.
        client = Client(
            server_url=kinto_server.url,
            auth=AUTH,
            bucket=bid,
            collection="busy",
            retry=20,
            retry_after=0,
        )
        ids = []
        for n in range(WRITES // CLIENTS):
            ids.append(client.create_record(data={"worker": worker, "n": n})["data"]["id"])
        return ids

    with ThreadPoolExecutor(CLIENTS) as pool:
        written = [i for ids in pool.map(write, range(CLIENTS)) for i in ids]
    assert len(set(written)) == WRITES

    messages = scenario.flushed(WRITES, timeout=60)
    mailed = Counter(m.get_content().strip() for m in messages)
    assert [i for i, n in mailed.items() if n > 1] == []
    assert set(mailed) == set(written)
