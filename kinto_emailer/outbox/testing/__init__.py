"""The behaviour every outbox shares: one suite, run by each backend's test class.

A backend's test class mixes ``OutboxTests`` in and defines ``make_outbox(**settings)``;
``shared`` says whether two outboxes made that way see the same emails (two processes).
The suite is in parts by job: the queue, its limits, claims across processes, the status
contract, Slack messages and webhooks, and time windows; ``fixtures`` makes the emails and
window parts they put.
"""

from .channels import ChannelsTests
from .claims import ClaimsTests
from .fixtures import DEFAULTS, email, message_of, outbox_settings, posted, render, window_part
from .limits import LimitsTests
from .queueing import QueueingTests
from .status import StatusTests
from .windows import WindowTests


__all__ = [
    "DEFAULTS",
    "OutboxTests",
    "email",
    "message_of",
    "outbox_settings",
    "posted",
    "render",
    "window_part",
]


class OutboxTests(
    QueueingTests, LimitsTests, ClaimsTests, StatusTests, ChannelsTests, WindowTests
):
    """Every part of the suite: what a backend's test class mixes in."""
