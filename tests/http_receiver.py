"""A loopback HTTP receiver for the Slack and webhook tests: records each POST, answers as
scripted (a status, headers, a delay), then 200 "ok"; ``HTTPChannelsMixin`` points a web
test's Slack channels and webhook endpoints at one."""

import base64
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.support import FAST_RETRIES


@dataclass
class Received:
    path: str
    headers: dict
    body: bytes
    #: The client's address and port: one value per connection.
    peer: tuple

    @property
    def json(self):
        return json.loads(self.body)


@dataclass
class Reply:
    status: int = 200
    headers: dict = field(default_factory=dict)
    body: bytes = b"ok"
    #: Seconds before the reply: longer than the client's time-out, a time-out.
    delay: float = 0.0
    #: Seconds between the bytes of a header that never ends: each read in time, the whole
    #: never; what bounds a POST as a whole is tested with it.
    trickle: float = 0.0


class Receiver:
    """On 127.0.0.1; with ``tls`` (an ``ssl.SSLContext``), HTTPS."""

    def __init__(self, tls=None):
        self.received = []
        self.replies = []  # The next replies, in order; then ``Reply()``.
        self.condition = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # Keep-alive: connections are reused.

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                if len(body) < length:
                    # The sender died mid-request (the chaos test's SIGKILLs): no request, as
                    # a real server sees it; the sender's outbox sends it again.
                    self.close_connection = True
                    return
                with receiver.condition:
                    reply = receiver.replies.pop(0) if receiver.replies else Reply()
                    receiver.received.append(
                        Received(self.path, dict(self.headers), body, self.client_address)
                    )
                    receiver.condition.notify_all()
                if reply.delay:
                    time.sleep(reply.delay)
                try:
                    if reply.trickle:
                        self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
                        for _ in range(200):
                            self.wfile.write(b"x")
                            self.wfile.flush()
                            time.sleep(reply.trickle)
                        return
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(reply.body)))
                    self.end_headers()
                    self.wfile.write(reply.body)
                except OSError:  # The client gave up waiting.
                    self.close_connection = True

            def log_message(self, *args):
                pass

        class Server(ThreadingHTTPServer):
            def handle_error(self, request, client_address):
                pass  # A client that gave up waiting: the test says what it expects.

        self.server = Server(("127.0.0.1", 0), Handler)
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.scheme = "https" if tls is not None else "http"
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path="/hook"):
        return f"{self.scheme}://127.0.0.1:{self.port}{path}"

    def script(self, *replies):
        with self.condition:
            self.replies.extend(replies)

    def clear(self):
        with self.condition:
            self.received.clear()
            self.replies.clear()

    def wait_for(self, count, timeout=10):
        """The requests received, once there are ``count`` (or ``timeout`` seconds passed)."""
        with self.condition:
            self.condition.wait_for(lambda: len(self.received) >= count, timeout=timeout)
            return list(self.received)

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


SECRET = "whsec_" + base64.b64encode(bytes(range(32))).decode()


def channel_settings(receiver):
    """Slack: ``#ops`` to ``/ops``, every other channel to ``/default``; webhook endpoints
    ``audit`` (any bucket) to ``/audit`` and ``reserved`` (bucket ``other`` only) to
    ``/reserved``, signed with ``SECRET``."""
    return {
        "slack.webhook_url": receiver.url("/default"),
        "slack.ops.webhook_url": receiver.url("/ops"),
        "kinto_emailer.webhooks.audit.url": receiver.url("/audit"),
        "kinto_emailer.webhooks.audit.secret": SECRET,
        "kinto_emailer.webhooks.reserved.url": receiver.url("/reserved"),
        "kinto_emailer.webhooks.reserved.secret": SECRET,
        "kinto_emailer.webhooks.reserved.buckets": "other",
    }


class HTTPChannelsMixin:
    """A web test whose Slack messages and webhooks reach a receiver of its class
    (``channel_settings``), retried at once. Put it before the web test base class."""

    @classmethod
    def setUpClass(cls):
        cls.receiver = Receiver()
        try:
            super().setUpClass()
        except BaseException:
            cls.receiver.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        cls.receiver.stop()

    @classmethod
    def extra_settings(cls):
        return {**super().extra_settings(), **FAST_RETRIES, **channel_settings(cls.receiver)}

    def setUp(self):
        super().setUp()
        # What the class's earlier tests handed over is not this test's.
        self.drain()
        outbox = self.app.app.registry.emailer.delivery.outbox
        if outbox is not None and outbox.keeps_status:
            outbox.flush()
        self.receiver.clear()

    def posted(self, path=None):
        """The POSTs received (to ``path``), once everything handed over was delivered."""
        self.drain()
        return [r for r in self.receiver.received if path is None or r.path == path]
