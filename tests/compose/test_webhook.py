"""A webhook's ``type`` and ``timestamp``, for the events the listener may be handed."""

import datetime
import re

import pytest

from kinto_emailer.compose.webhook import event_type, rfc3339


@pytest.mark.parametrize(
    "event, expected",
    [
        ("kinto.core.events.AfterResourceChanged", "kinto.record.update"),
        ("kinto_signer.events.ReviewRequested", "kinto.review.requested"),
        ("kinto_remote_settings.signer.events.ReviewCanceled", "kinto.review.canceled"),
        # Another plugin's event: the change it describes; data.event names it.
        ("my_plugin.events.Published", "kinto.record.update"),
    ],
)
def test_the_type_names_the_change_or_the_review(event, expected):
    context = {"event": event, "resource_name": "record", "action": "update"}
    assert event_type(context) == expected


def test_the_timestamp_is_kintos_in_rfc3339_and_now_without_one():
    assert rfc3339(1767323045678) == "2026-01-02T03:04:05.678Z"
    now = rfc3339(None)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", now)
    moment = datetime.datetime.fromisoformat(now.replace("Z", "+00:00"))
    assert abs(moment - datetime.datetime.now(datetime.timezone.utc)).total_seconds() < 60
    assert rfc3339(True) != "1970-01-01T00:00:00.001Z"  # A boolean is no timestamp.
