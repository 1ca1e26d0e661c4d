"""The plugin inside a real ``kinto start`` on PostgreSQL, driven with kinto-http."""

import functools

import pytest
from kinto_http import KintoException

from tests import support
from tests.support import hooked


pytestmark = [pytest.mark.functional, pytest.mark.postgresql]


record_hook = functools.partial(
    support.record_hook,
    subject="{action} {record_id}",
    template="{user_id} did {action} {uri}",
    recipients=["Alice <alice@example.com>"],
)


def subjects(messages):
    return sorted(m["Subject"] for m in messages)


def test_records_created_updated_and_deleted_send_one_email_each(scenario):
    client, bid = scenario.client, scenario.bucket
    client.create_collection(id="c", bucket=bid, data=hooked(record_hook()))
    client.create_record(id="r1", bucket=bid, collection="c", data={"n": 1})
    client.update_record(id="r1", bucket=bid, collection="c", data={"n": 2})
    client.delete_record(id="r1", bucket=bid, collection="c")

    messages = scenario.flushed(3)
    assert subjects(messages) == ["create r1", "delete r1", "update r1"]
    message = messages[0]
    assert message.envelope_to == ["alice@example.com"]
    assert message["From"] == "kinto@example.com"
    body = message.get_content().strip()
    assert body.startswith("basicauth:") and body.endswith(
        f"/buckets/{bid}/collections/c/records/r1"
    )


def test_a_deleted_collection_sends_its_own_hook(scenario):
    client, bid = scenario.client, scenario.bucket
    hook = {
        "resource_name": "collection",
        "action": "delete",
        "subject": "{collection_id} deleted from {bucket_id}",
        "template": "{uri}",
        "recipients": ["alice@example.com"],
    }
    client.create_collection(id="doomed", bucket=bid, data=hooked(hook))
    client.delete_collection(id="doomed", bucket=bid)

    assert subjects(scenario.flushed(1)) == [f"doomed deleted from {bid}"]


def test_a_batch_sends_one_email_per_record_with_its_own_id(scenario):
    client, bid = scenario.client, scenario.bucket
    client.create_collection(id="c", bucket=bid, data=hooked(record_hook()))
    with client.batch(bucket=bid, collection="c") as batch:
        for n in range(20):
            batch.create_record(id=f"r{n:02}", data={"n": n})

    assert subjects(scenario.flushed(20)) == [f"create r{n:02}" for n in range(20)]


def test_bucket_hooks_apply_to_a_collection_without_hooks(scenario):
    client, bid = scenario.client, scenario.bucket
    client.patch_bucket(id=bid, data=hooked(record_hook(subject="bucket: {record_id}")))
    client.create_collection(id="plain", bucket=bid)
    client.create_record(id="r1", bucket=bid, collection="plain")

    assert subjects(scenario.flushed(1)) == ["bucket: r1"]


def test_a_group_recipient_is_expanded_to_its_members_with_email_addresses(scenario):
    client, bid = scenario.client, scenario.bucket
    members = ["ldap:bob@example.com", "basicauth:not-an-address", "carol@example.org"]
    client.create_group(id="c-reviewers", bucket=bid, data={"members": members})
    recipients = [f"/buckets/{bid}/groups/{{collection_id}}-reviewers"]
    client.create_collection(id="c", bucket=bid, data=hooked(record_hook(recipients=recipients)))
    client.create_record(id="r1", bucket=bid, collection="c")

    (message,) = scenario.flushed(1)
    assert sorted(message.envelope_to) == ["bob@example.com", "carol@example.org"]


def test_a_review_request_through_kinto_signer_mails_the_reviewers_group(scenario):
    # kinto-signer is configured for the bucket "staging" (see server.py).
    client = scenario.client
    client.create_bucket(id="staging", if_not_exists=True)
    hook = {
        "event": "kinto_signer.events.ReviewRequested",
        "subject": "Review requested on {bucket_id}/{collection_id}",
        "template": "{comment} ({changes_count} changes)",
        "recipients": ["/buckets/staging/groups/reviewers"],
    }
    client.create_collection(id="addons", bucket="staging", data=hooked(hook))
    # kinto-signer created the reviewers group when the collection was created.
    client.patch_group(
        id="reviewers", bucket="staging", data={"members": ["ldap:reviewer@example.com"]}
    )
    client.create_record(id="r1", bucket="staging", collection="addons", data={"n": 1})
    client.patch_collection(
        id="addons",
        bucket="staging",
        data={"status": "to-review", "last_editor_comment": "please look"},
    )

    (message,) = scenario.flushed(1)
    assert message["Subject"] == "Review requested on staging/addons"
    assert message.envelope_to == ["reviewer@example.com"]
    assert message.get_content().strip() == "please look (1 changes)"


def test_a_write_that_fails_after_its_event_is_rolled_back_and_sends_nothing(scenario):
    client, bid = scenario.client, scenario.bucket
    client.create_collection(id="c", bucket=bid, data=hooked(record_hook()))
    with pytest.raises(KintoException) as failure:
        client.create_record(id="boom", bucket=bid, collection="c", data={"explode": True})
    assert failure.value.response.status_code == 500
    client.create_record(id="fine", bucket=bid, collection="c")

    assert subjects(scenario.flushed(1)) == ["create fine"]
    with pytest.raises(KintoException) as missing:
        client.get_record(id="boom", bucket=bid, collection="c")
    assert missing.value.response.status_code == 404
