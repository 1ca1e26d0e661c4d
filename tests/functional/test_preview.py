"""Issue 22: the preview inside a real ``kinto start`` on PostgreSQL, called with kinto-http as
the documentation shows; nothing reaches the mail server."""

import pytest
from kinto_http import KintoException

from tests.support import hooked, record_hook


pytestmark = [pytest.mark.functional, pytest.mark.postgresql]


def test_the_documented_kinto_http_call_previews_and_sends_nothing(scenario):
    client, bid = scenario.client, scenario.bucket
    saved = record_hook("New: {new[title]}", template="{new[title]}", recipients=["a@example.com"])
    client.create_collection(id="c", bucket=bid, data=hooked(saved))

    # As in the documentation: a record to create, the saved hooks, then hooks to try.
    endpoint = f"/buckets/{bid}/collections/c/emailer-preview"
    change = {"action": "create", "new": {"id": "r1", "title": "Hello"}}
    body, _ = client.session.request("post", endpoint, data=change)
    (answer,) = body["data"]
    assert answer["hook"] == f"/buckets/{bid}/collections/c#0"
    assert answer["messages"][0]["subject"] == "New: Hello"

    tried = {**change, "metadata": hooked({**saved, "templat": "{new[title]}"})}
    with pytest.raises(KintoException) as refused:
        client.session.request("post", endpoint, data=tried)
    assert refused.value.response.status_code == 400
    assert 'did you mean "template"?' in refused.value.response.json()["message"]

    assert scenario.flushed(0) == []
