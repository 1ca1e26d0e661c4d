"""Slack messages and webhooks through the real delivery worker (``posts``), on the memory
and PostgreSQL outboxes, to a loopback HTTP receiver: where they go, what they carry, and
what each reply leads to."""

import base64
import dataclasses
import json
import logging
import os
import time
import uuid

import pytest
from standardwebhooks import Webhook

from kinto_emailer.compose import drafts
from kinto_emailer.config import read_settings
from kinto_emailer.config.channels import Channels, Endpoint
from kinto_emailer.delivery.outcomes import SENT, Report
from kinto_emailer.delivery.service import Delivery
from kinto_emailer.outbox import Email
from tests.http_receiver import Receiver, Reply
from tests.support import (
    FAST_RETRIES,
    TemporaryDatabase,
    free_port,
    migrate,
    postgresql_settings,
    postgresql_unreachable,
)


KEYS = (os.urandom(24), os.urandom(32))  # Two secrets: the endpoint's key is being rotated.
SECRETS = ["whsec_" + base64.b64encode(key).decode() for key in KEYS]


def slack(channel="#ops", text="Record created", bucket_id="b"):
    return Email(
        None,
        location=f"/buckets/{bucket_id}/collections/c#0",
        bucket_id=bucket_id,
        collection_id="c",
        channel="slack",
        destination=channel,
        payload={"channel": channel, "text": text},
    )


def webhook(endpoint="ops", bucket_id="b", record_id="r1"):
    body = {
        "type": "kinto.record.create",
        "timestamp": 1700000000000,
        "data": {"bucket_id": bucket_id, "collection_id": "c", "id": record_id, "é": "ü"},
    }
    return Email(
        None,
        location=f"/buckets/{bucket_id}/collections/c#0",
        bucket_id=bucket_id,
        collection_id="c",
        channel="webhook",
        destination=endpoint,
        payload={"id": f"msg_{uuid.uuid4().hex}", "body": body},
    )


@pytest.fixture(scope="module")
def database():
    unreachable = postgresql_unreachable()
    if unreachable:
        pytest.skip(unreachable)
    with TemporaryDatabase() as database:
        migrate(
            {
                **postgresql_settings(database.url),
                "includes": "kinto_emailer",
                "kinto_emailer.outbox": "postgresql",
            }
        )
        yield database


@pytest.fixture(params=["memory", pytest.param("postgresql", marks=pytest.mark.postgresql)])
def outbox_settings(request):
    if request.param == "memory":
        return {}
    database = request.getfixturevalue("database")
    return {
        **postgresql_settings(database.url),
        "kinto_emailer.outbox": "postgresql",
        "kinto_emailer.queue_poll_interval": "0.05",
    }


@pytest.fixture
def deliver(outbox_settings, receiver):
    """``deliver(*items, **settings)``: a delivery of its own puts them in its outbox, and
    waits until each was sent or given up; returns the delivery."""
    made = []

    def deliver(*items, channels=None, **settings):
        channels = channels or Channels(
            slack_urls={"ops": receiver.url("/ops")},
            slack_default_url=receiver.url("/default"),
            webhooks={"ops": Endpoint("ops", receiver.url("/webhook"), KEYS)},
        )
        emailer = read_settings(
            {
                **FAST_RETRIES,
                "mail.port": str(free_port()),
                **outbox_settings,
                **{f"kinto_emailer.{k}": str(v) for k, v in settings.items()},
            }
        )
        delivery = Delivery(dataclasses.replace(emailer, channels=channels), drafts)
        made.append(delivery)
        assert delivery.outbox is not None
        delivery.outbox.flush()
        delivery.put(list(items))
        assert delivery.drain(timeout=20)
        return delivery

    yield deliver
    for delivery in made:
        delivery.stop(timeout=1)


def record(delivery, item):
    found = delivery.outbox.email(item.bucket_id, item.id)
    assert found is not None
    return found


def test_a_slack_message_is_posted_to_its_channel_s_url_and_not_the_default(deliver, receiver):
    ops, other = slack("#ops", "to ops"), slack("#other", "to the default")
    delivery = deliver(ops, other)
    by_path = {r.path: r for r in receiver.wait_for(2)}
    assert set(by_path) == {"/ops", "/default"}
    assert json.loads(by_path["/ops"].body) == {"channel": "#ops", "text": "to ops"}
    assert json.loads(by_path["/default"].body) == {"channel": "#other", "text": "to the default"}
    assert by_path["/ops"].headers["Content-Type"] == "application/json"
    sent = record(delivery, ops)
    assert (sent["status"], sent["channel"], sent["destination"]) == ("sent", "slack", "#ops")


def test_a_slack_refusal_is_retried_until_it_is_taken(deliver, receiver):
    receiver.script(Reply(500, body=b"rollup_error"), Reply(429, {"Retry-After": "0"}))
    item = slack()
    delivery = deliver(item)
    assert [json.loads(r.body)["text"] for r in receiver.wait_for(3)] == ["Record created"] * 3
    sent = record(delivery, item)
    assert (sent["status"], sent["attempts"]) == ("sent", 3)


def test_a_webhook_is_signed_as_the_reference_library_verifies_with_each_key(deliver, receiver):
    item = webhook()
    deliver(item)
    (request,) = receiver.wait_for(1)
    assert request.path == "/webhook"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["webhook-id"] == item.payload["id"]
    assert abs(int(request.headers["webhook-timestamp"]) - time.time()) < 60
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    for secret in SECRETS:
        assert Webhook(secret).verify(request.body, request.headers) == item.payload["body"]


def test_a_503_is_retried_with_the_same_webhook_id_and_body(deliver, receiver):
    receiver.script(Reply(503, {"Retry-After": "0"}, b"busy"))
    item = webhook()
    delivery = deliver(item)
    first, second = receiver.wait_for(2)
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == item.payload["id"]
    assert first.body == second.body
    Webhook(SECRETS[0]).verify(second.body, second.headers)
    assert record(delivery, item)["status"] == "sent"


def test_a_retry_after_past_retry_max_delay_is_cut_to_it(deliver, receiver):
    receiver.script(Reply(429, {"Retry-After": "3600"}))
    deliver(webhook(), retry_base_delay=0.01, retry_max_delay=0.05)
    assert len(receiver.wait_for(2)) == 2  # Not an hour later.


def test_retry_after_sets_when_the_next_attempt_is_due(deliver, receiver):
    receiver.script(Reply(503, {"Retry-After": "1"}), Reply(503, {"Retry-After": "1"}))
    started = time.monotonic()
    deliver(webhook(), retry_base_delay=0.01, retry_max_delay=30)
    assert len(receiver.wait_for(3)) == 3
    assert time.monotonic() - started >= 1.9  # Two waits of a second, not two of 0.01s.


def test_a_410_is_failed_at_once_and_not_retried(deliver, receiver, caplog):
    receiver.script(Reply(410, body=b"endpoint removed"))
    item, after = webhook(), webhook(record_id="r2")
    with caplog.at_level(logging.ERROR, logger="kinto_emailer"):
        delivery = deliver(item)
    assert len(receiver.received) == 1
    failed = record(delivery, item)
    assert (failed["status"], failed["attempts"]) == ("failed", 1)
    assert "HTTP 410" in failed["error"] and "endpoint removed" in failed["error"]
    assert "gone" in failed["error"]
    (line,) = [r.getMessage() for r in caplog.records if "Webhook failed" in r.getMessage()]
    assert f"id={item.payload['id']}" in line and "destination=ops" in line
    assert str(receiver.port) not in line
    # The next delivery is posted as usual.
    delivery.put([after])
    assert delivery.drain(timeout=10)
    assert record(delivery, after)["status"] == "sent"


def test_a_redirect_is_not_followed(deliver, receiver):
    elsewhere = Receiver()
    try:
        receiver.script(Reply(301, {"Location": elsewhere.url()}))
        item = webhook()
        delivery = deliver(item, retry_max_attempts=1)
        assert elsewhere.received == []
    finally:
        elsewhere.stop()
    failed = record(delivery, item)
    assert failed["status"] == "failed"
    assert "HTTP 301" in failed["error"] and "redirects are not followed" in failed["error"]
    assert elsewhere.url() not in failed["error"]


def test_a_time_out_is_retried(deliver, receiver):
    channels = Channels(
        webhooks={"ops": Endpoint("ops", receiver.url("/webhook"), KEYS)}, http_timeout=1.0
    )
    # The time-out leaves a loaded machine time for the second, prompt reply.
    receiver.script(Reply(delay=2.5))
    item = webhook()
    delivery = deliver(item, channels=channels)
    first, second = receiver.wait_for(2)
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    sent = record(delivery, item)
    assert (sent["status"], sent["attempts"]) == ("sent", 2)


def test_an_item_whose_destination_is_no_longer_configured_fails_clearly(deliver, receiver):
    channels = Channels(
        webhooks={"mine": Endpoint("mine", receiver.url("/webhook"), KEYS, frozenset({"x"}))}
    )
    gone, reserved, no_url = webhook("removed"), webhook("mine"), slack("#ops")
    delivery = deliver(gone, reserved, no_url, channels=channels)
    assert receiver.received == []
    errors = {
        item.destination: record(delivery, item)["error"] for item in (gone, reserved, no_url)
    }
    assert errors == {
        "removed": "permanent: the webhook endpoint 'removed' is not configured "
        "(kinto_emailer.webhooks.removed.url)",
        "mine": "permanent: the webhook endpoint 'mine' is not for bucket 'b' "
        "(kinto_emailer.webhooks.mine.buckets)",
        "#ops": "permanent: no URL is configured for the Slack channel '#ops' "
        "(slack.webhook_url, or the channel's own slack.<channel>.webhook_url)",
    }
    # The worker goes on.
    ok = webhook("mine", bucket_id="x")
    delivery.put([ok])
    assert delivery.drain(timeout=10)
    assert record(delivery, ok)["status"] == "sent"


def test_an_unreachable_url_is_retried_and_never_shown(deliver):
    url = f"http://127.0.0.1:{free_port()}/services/T0/B0/secret-token"
    item = slack()
    delivery = deliver(item, channels=Channels(slack_default_url=url), retry_max_attempts=2)
    failed = record(delivery, item)
    assert (failed["status"], failed["attempts"]) == ("failed", 2)
    assert "could not connect" in failed["error"] and "Connection refused" in failed["error"]
    assert "secret-token" not in failed["error"] and "/services" not in failed["error"]


def test_one_connection_serves_a_burst_to_one_url(deliver, receiver):
    deliver(*(slack(text=str(n)) for n in range(5)))
    assert len({r.peer for r in receiver.wait_for(5)}) == 1


def test_slack_debug_dir_writes_a_file_per_message_instead_of_posting(deliver, receiver, tmp_path):
    channels = Channels(slack_urls={"ops": receiver.url()}, slack_debug_dir=str(tmp_path))
    item = slack(text="not posted")
    delivery = deliver(item, channels=channels)
    assert receiver.received == []
    (written,) = tmp_path.iterdir()
    assert json.loads(written.read_text()) == {"channel": "#ops", "text": "not posted"}
    assert record(delivery, item)["status"] == "sent"


def test_emails_and_posts_of_one_burst_go_each_their_way(deliver, receiver):
    from kinto_emailer.outbox.testing import email

    mail, post = email(to="alice@example.com"), slack()
    delivery = deliver(mail, post, retry_max_attempts=1)
    assert len(receiver.wait_for(1)) == 1
    # No SMTP server listens here: the email failed, the Slack message did not.
    assert record(delivery, mail)["status"] == "failed"
    assert record(delivery, post)["status"] == "sent"


def test_outcome_lines_and_counts_name_the_channel_and_destination(deliver, receiver, caplog):
    item = webhook()
    with caplog.at_level(logging.INFO, logger="kinto_emailer"):
        deliver(item)
    (sent,) = [r for r in caplog.records if r.getMessage().startswith("Webhook sent")]
    assert sent.getMessage() == (
        f"Webhook sent: id={item.payload['id']} hook=/buckets/b/collections/c#0 "
        "destination=ops reply=200"
    )
    assert (sent.channel, sent.destination, sent.bucket_id) == ("webhook", "ops", "b")
    counted = []
    Report(lambda outcome, labels: counted.append((outcome, labels)))(SENT, slack())
    assert counted == [("sent", {"bucket_id": "b", "collection_id": "c", "channel": "slack"})]


@pytest.mark.postgresql
def test_a_stop_abandons_the_post_under_way_and_another_worker_delivers_it(
    database, receiver, caplog
):
    receiver.script(Reply(trickle=0.05))  # Its reply never ends.
    channels = Channels(webhooks={"ops": Endpoint("ops", receiver.url("/webhook"), KEYS)})
    emailer = read_settings(
        {
            **postgresql_settings(database.url),
            "kinto_emailer.outbox": "postgresql",
            "kinto_emailer.queue_poll_interval": "0.05",
            "kinto_emailer.shutdown_timeout": "2",
        }
    )
    emailer = dataclasses.replace(emailer, channels=channels)
    first = Delivery(emailer, drafts)
    first.outbox.flush()
    item = webhook()
    first.put([item])
    assert len(receiver.wait_for(1)) == 1
    with caplog.at_level(logging.INFO, logger="kinto_emailer"):
        assert first.stop()  # At its deadline, the POST is cut short and the row given back.
    # The worker thread itself gave it back: it was not left behind, blocked.
    assert "Delivery still busy at the deadline" not in caplog.text
    assert "Delivery stopped: 1 email(s) left in the outbox" in caplog.text
    again = Delivery(emailer, drafts)
    try:
        assert again.drain(timeout=20)
        first_try, second_try = receiver.wait_for(2)
        assert second_try.headers["webhook-id"] == item.payload["id"]
        sent = record(again, item)
        assert (sent["status"], sent["attempts"]) == ("sent", 1)  # The cut one didn't count.
    finally:
        again.stop(timeout=1)


def test_the_debug_mailer_writes_slack_messages_and_webhooks_to_files_too(tmp_path, receiver):
    emailer = read_settings(
        {"mail.debug_mailer": "true", "mail.top_level_directory": str(tmp_path)}
    )
    channels = Channels(slack_default_url=receiver.url())
    delivery = Delivery(dataclasses.replace(emailer, channels=channels), drafts)
    item = webhook()
    delivery.put([slack(text="written"), item])
    written = [json.loads(path.read_text()) for path in tmp_path.glob("*.json")]
    assert sorted(written, key=str) == sorted(
        [{"channel": "#ops", "text": "written"}, item.payload], key=str
    )
    assert receiver.received == []  # Nothing leaves with the debug mailer.


def test_a_failed_opt_outs_read_gives_back_the_burst_s_posts_too(deliver, receiver, monkeypatch):
    from kinto_emailer.delivery.optouts import OptOuts
    from kinto_emailer.outbox.testing import email

    failures = []
    of = OptOuts.of

    def fails_once(self, emails):
        if not failures:
            failures.append(emails)
            raise RuntimeError("the storage is unreachable")
        return of(self, emails)

    monkeypatch.setattr(OptOuts, "of", fails_once)
    item = slack()
    # Without a mail server, the email is given up; the Slack message is posted once the
    # round that failed gave it back (on the memory outbox, it would be held for good).
    delivery = deliver(email(subject="m0"), item, retry_max_attempts=2)
    assert failures and [json.loads(r.body)["text"] for r in receiver.wait_for(1)] == [
        "Record created"
    ]
    assert record(delivery, item)["status"] == "sent"
