"""Slack messages and signed webhooks through real processes: a ``kinto start`` on the
PostgreSQL outbox that delivers nothing itself (``outbox_worker = false``) and a separate
``kinto-emailer worker`` that posts them to a loopback receiver."""

import pytest
from kinto_http import Client
from standardwebhooks import Webhook

from tests.functional.conftest import AUTH
from tests.http_receiver import SECRET


pytestmark = [pytest.mark.functional, pytest.mark.postgresql]

SLACK = {"channel": "#ops", "template": "{action}d {id}", "resource_name": "record"}
WEBHOOK = {"endpoint": "audit", "resource_name": "record"}


def test_a_separate_worker_posts_the_slack_message_and_the_signed_webhook(outbox, receiver):
    web = outbox.web(receiver=receiver, **{"kinto.kinto_emailer.outbox_worker": "false"})
    web.start()
    client = Client(server_url=web.url, auth=AUTH, bucket="b", collection="c", timeout=30)
    client.create_bucket(id="b")
    hooks = {"kinto-slack": {"hooks": [SLACK]}, "kinto-webhooks": {"hooks": [WEBHOOK]}}
    client.create_collection(id="c", data=hooks)
    record = client.create_record(id="r1", data={"title": "Hello"})["data"]
    # Committed with the record, waiting for a worker.
    assert outbox.statuses() == {"queued": 2}
    assert receiver.received == []

    worker = outbox.worker(web).start()
    assert outbox.wait_delivered() == {"sent": 2}
    by_path = {request.path: request for request in receiver.wait_for(2)}
    assert len(receiver.received) == 2 and set(by_path) == {"/ops", "/audit"}
    assert by_path["/ops"].json == {"channel": "#ops", "text": "created r1"}
    request = by_path["/audit"]
    body = Webhook(SECRET).verify(request.body, request.headers)
    assert body["type"] == "kinto.record.create"
    data = body["data"]
    assert (data["bucket_id"], data["collection_id"], data["id"]) == ("b", "c", "r1")
    assert (data["action"], data["new"], data["old"]) == ("create", record, {})
    log = worker.log()
    assert "Slack message sent: " in log and "Webhook sent: " in log
    assert "destination=audit" in log and str(receiver.port) not in log
    assert " sent: " not in web.log()  # The web process delivered nothing.
