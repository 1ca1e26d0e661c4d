"""Standard Webhooks v1 signatures (https://www.standardwebhooks.com/): what a receiver
checks with the reference library (``standardwebhooks.Webhook(secret).verify``) or the
recipe of the docs.

Written with the standard library rather than signed by ``standardwebhooks``: its
``Webhook`` holds one secret, and an endpoint being rotated has several, each signing every
delivery; the algorithm is one HMAC per key. The tests verify ours with the library.
"""

import base64
import hashlib
import hmac
from collections.abc import Iterable


def signature(key: bytes, webhook_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`` with ``key``."""
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return f"v1,{base64.b64encode(digest).decode('ascii')}"


def headers(webhook_id: str, timestamp: int, body: bytes, keys: Iterable[bytes]) -> dict[str, str]:
    """The headers of one attempt: its id (the same for every attempt of a delivery), its
    time (Unix seconds) and one signature per key, space-separated."""
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(signature(k, webhook_id, timestamp, body) for k in keys),
    }
