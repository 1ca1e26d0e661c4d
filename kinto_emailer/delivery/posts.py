"""Slack messages and webhook deliveries, posted by the worker one after the other: where
each goes (read from the settings at each attempt: the outbox keeps a name, never a URL),
what is posted and signed, and each outcome told to the outbox and the report, as the SMTP
sender (``rounds``) does for emails."""

import json
import os
import secrets
import time
from typing import TYPE_CHECKING

from ..http import signing
from ..http.transport import HTTPTransport, PostFailure
from ..outbox import Email, Outbox
from .outcomes import SENT, Report
from .retries import after_failure


if TYPE_CHECKING:
    from ..config import EmailerSettings


SLACK, WEBHOOK = "slack", "webhook"
#: The channels this sender posts; the others are emails, for ``rounds.Sender``.
POSTED = (SLACK, WEBHOOK)


class Unroutable(Exception):
    """Its Slack channel's URL or its endpoint is no longer configured: given up at once."""


class Poster:
    """Owned by the worker thread; ``abandon`` may be called from another."""

    def __init__(self, settings: "EmailerSettings", outbox: Outbox, report: Report):
        self.settings = settings
        self.channels = settings.channels
        self.outbox = outbox
        self.report = report
        self.http = HTTPTransport(self.channels.http_timeout)
        #: Set at shutdown: no retry after it; what is left is given back to the outbox.
        self.deadline: float | None = None

    def send_burst(self, items: list[Email]) -> None:
        for index, item in enumerate(items):
            if self.deadline is not None and time.monotonic() > self.deadline:
                self.outbox.release(items[index:])
                return
            if not self.outbox.renew(item):
                continue  # Its lease ran out while the burst went on: another worker has it.
            self._post(item)

    def abandon(self) -> None:
        """From another thread, once the stop's deadline passed: the POST under way ends."""
        self.http.abandon()

    def close(self) -> None:
        self.http.close()

    def _post(self, item: Email) -> None:
        try:
            if item.channel == SLACK and self.channels.slack_debug_dir:
                self._write_debug_file(item, self.channels.slack_debug_dir)
                return
            url, body, headers = self._request(item)
        except Unroutable as e:  # Its URL or endpoint left the settings: no later try helps.
            after_failure(
                self.settings, self.outbox, self.report, item, e, permanent=True, stopping=False
            )
            return
        left = None if self.deadline is None else max(0.001, self.deadline - time.monotonic())
        try:
            status = self.http.post(url, body, headers, timeout=left)
        except PostFailure as failure:
            self.failed(item, failure)
            return
        item.attempts += 1
        self.report(SENT, item, reply=status)
        self.outbox.sent(item)

    def _request(self, item: Email) -> tuple[str, bytes, dict[str, str]]:
        """Where ``item`` goes, the bytes posted and the headers; raises ``Unroutable``."""
        payload, destination = item.payload or {}, item.destination or ""
        if item.channel == SLACK:
            url = self.channels.slack_url(destination)
            if url is None:
                raise Unroutable(
                    f"no URL is configured for the Slack channel {destination!r} "
                    "(slack.webhook_url, or the channel's own slack.<channel>.webhook_url)"
                )
            return url, _json(payload), {}
        if item.channel == WEBHOOK:
            key = f"kinto_emailer.webhooks.{destination}"
            endpoint = self.channels.webhooks.get(destination)
            if endpoint is None:
                raise Unroutable(
                    f"the webhook endpoint {destination!r} is not configured ({key}.url)"
                )
            if not endpoint.allows(item.bucket_id):
                raise Unroutable(
                    f"the webhook endpoint {destination!r} is not for bucket {item.bucket_id!r} "
                    f"({key}.buckets)"
                )
            if not endpoint.keys:
                raise Unroutable(
                    f"the webhook endpoint {destination!r} has no secret ({key}.secret)"
                )
            body = _json(payload["body"])
            # The id was made when the delivery was composed: every attempt carries it.
            headers = signing.headers(payload["id"], int(time.time()), body, endpoint.keys)
            return endpoint.url, body, headers
        raise Unroutable(f"no transport for the channel {item.channel!r}")

    def _write_debug_file(self, item: Email, directory: str) -> None:
        """``slack.debug_dir``: the message written to a JSON file of its own, not posted."""
        name = f"{time.strftime('%Y%m%d%H%M%S')}_{secrets.token_hex(4)}.json"
        try:
            os.makedirs(directory, exist_ok=True)
            with open(os.path.join(directory, name), "xb") as f:
                f.write(_json(item.payload or {}))
        except OSError as e:
            self.failed(item, PostFailure(f"could not write to slack.debug_dir: {e.strerror}"))
            return
        item.attempts += 1
        self.report(SENT, item, file=name)
        self.outbox.sent(item)

    def failed(self, item: Email, failure: PostFailure) -> None:
        after_failure(
            self.settings,
            self.outbox,
            self.report,
            item,
            failure,
            permanent=failure.permanent,
            stopping=self.deadline is not None,
            retry_after=failure.retry_after,
        )


def _json(payload: object) -> bytes:
    # The same bytes for the same payload: what a webhook's signature covers.
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
