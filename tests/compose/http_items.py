"""What the outbox receives of the Slack and webhook channels, until it stores them itself.

``HTTPItemsMixin`` keeps the items of those channels that reach the outbox's ``put``
(``self.items``), in the request's transaction where the outbox takes part in it, at commit
elsewhere: the path a change takes to its messages, up to the outbox, is the plugin's own.
Emails go on to the real outbox.
"""

import base64
import threading
from unittest import mock


SECRET = "whsec_" + base64.b64encode(bytes(range(32))).decode()
SLACK_URL = "https://hooks.slack.example/services/default"
OPS_URL = "https://hooks.slack.example/services/ops"
#: Slack URLs for ``#ops`` and every other channel; endpoints ``audit`` (any bucket) and
#: ``reserved`` (bucket ``other`` only).
HTTP_SETTINGS = {
    "slack.webhook_url": SLACK_URL,
    "slack.ops.webhook_url": OPS_URL,
    "kinto_emailer.webhooks.audit.url": "https://audit.example.com/hooks",
    "kinto_emailer.webhooks.audit.secret": SECRET,
    "kinto_emailer.webhooks.reserved.url": "https://reserved.example.com/hooks",
    "kinto_emailer.webhooks.reserved.secret": SECRET,
    "kinto_emailer.webhooks.reserved.buckets": "other",
}


class HTTPItemsMixin:
    """Put it before the web test base class."""

    @classmethod
    def extra_settings(cls):
        return {**super().extra_settings(), **HTTP_SETTINGS}

    def setUp(self):
        super().setUp()
        self.items = []
        self.items_lock = threading.Lock()
        outbox = self.app.app.registry.emailer.delivery.outbox
        real_put = outbox.put

        def put(emails):
            with self.items_lock:
                self.items += [e for e in emails if e.channel != "email"]
            return real_put([e for e in emails if e.channel == "email"])

        patcher = mock.patch.object(outbox, "put", put)
        patcher.start()
        self.addCleanup(patcher.stop)

    def received(self, channel=None):
        """The items received so far, once what the requests handed over is in."""
        self.drain()
        with self.items_lock:
            return [i for i in self.items if channel is None or i.channel == channel]
