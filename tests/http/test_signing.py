"""Standard Webhooks v1 signatures, checked with the spec's reference library."""

import base64
import os
import time

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from kinto_emailer.http import signing


KEYS = (os.urandom(24), os.urandom(32))


def secret(key):
    return "whsec_" + base64.b64encode(key).decode()


def test_each_key_s_signature_verifies_with_the_reference_library():
    body = '{"type":"kinto.record.create","data":{"id":"é"}}'.encode()
    headers = signing.headers("msg_1", int(time.time()), body, KEYS)
    assert headers["webhook-id"] == "msg_1"
    assert headers["webhook-signature"].count("v1,") == 2
    for key in KEYS:
        assert Webhook(secret(key)).verify(body, headers) == {
            "type": "kinto.record.create",
            "data": {"id": "é"},
        }


def test_a_changed_body_id_or_timestamp_does_not_verify():
    body, now = b'{"a":1}', int(time.time())
    headers = signing.headers("msg_1", now, body, KEYS[:1])
    webhook = Webhook(secret(KEYS[0]))
    for changed_body, changed in (
        (b'{"a":2}', headers),
        (body, {**headers, "webhook-id": "msg_2"}),
        (body, {**headers, "webhook-timestamp": str(now - 1)}),
    ):
        with pytest.raises(WebhookVerificationError):
            webhook.verify(changed_body, changed)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret(os.urandom(24))).verify(body, headers)
