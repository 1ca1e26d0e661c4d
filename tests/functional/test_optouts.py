"""Opt-outs read by ``kinto-emailer worker`` (issue 23): an unsubscribe made after a write,
before a worker process sends its email, leaves that address out; the worker reads them from
Kinto's storage as the ini describes it."""

import pytest
import requests
from kinto_http import Client

from kinto_emailer.compose import optouts
from tests.functional.conftest import AUTH
from tests.support import ALICE, SMTPServer, hooked, record_hook


pytestmark = [pytest.mark.functional, pytest.mark.postgresql]

SECRET = "functional-optouts"
BOB = "bob@example.com"


@pytest.fixture
def smtp(outbox):
    server = SMTPServer(port=outbox.smtp_port).start()
    yield server
    server.stop()


def test_the_worker_process_leaves_out_who_unsubscribed_after_the_write(outbox, smtp):
    web = outbox.web(
        **{
            "kinto.kinto_emailer.outbox_worker": "false",
            "kinto.kinto_emailer.unsubscribe_secret": SECRET,
        }
    ).start()
    client = Client(server_url=web.url, auth=AUTH, bucket="b", collection="c", timeout=30)
    client.create_bucket(id="b", if_not_exists=True)
    hook = record_hook("{id}", template="Record {id}", recipients=[ALICE, BOB])
    client.create_collection(id="c", data=hooked(hook), if_not_exists=True)
    client.create_record(id="before")
    token = optouts.token(SECRET.encode(), BOB, "/buckets/b/collections/c")
    response = requests.post(f"{web.url}/emailer/unsubscribe/{token}", timeout=30)
    assert response.status_code == 200
    client.create_record(id="after")

    worker = outbox.worker(web).start()  # Only now: every email waited in the outbox.
    assert outbox.wait_delivered() == {"sent": 2}
    worker.stop()
    envelopes = {m["Subject"]: sorted(m.envelope_to) for m in smtp.inbox.messages}
    assert envelopes == {"before": [ALICE], "after": [ALICE]}
