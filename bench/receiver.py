"""The webhook receiver of ``make bench`` ((n1), (n2)): a loopback HTTP server in a process of
its own, as the mail server is, so that it never competes with the bench's clock.

It answers each ``POST`` 200 at once and prints ``tag id 1 accepted_at`` as the mail server
does (``processes.Inbox`` reads it): ``tag`` is the URL's path (one per endpoint), ``id`` the
body's ``data.id`` (the record's id), ``accepted_at`` ``time.monotonic()``. A delivery whose
``webhook-signature`` does not verify with the endpoints' secret (Standard Webhooks: HMAC-SHA256
of ``{webhook-id}.{webhook-timestamp}.{body}``) is counted under the tag ``unsigned``.
"""

import base64
import hashlib
import hmac
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from processes import Inbox


#: Connections served at once; the worker posts one delivery at a time on one connection.
CONNECTIONS = 8


def verified(key, headers, body):
    id_, stamp = headers.get("webhook-id", ""), headers.get("webhook-timestamp", "")
    signed = hmac.new(key, f"{id_}.{stamp}.".encode() + body, hashlib.sha256).digest()
    expected = "v1," + base64.b64encode(signed).decode()
    return any(
        hmac.compare_digest(expected, given)
        for given in headers.get("webhook-signature", "").split()
    )


class Server(ThreadingHTTPServer):
    """Bounded: at most ``CONNECTIONS`` connections served, each idle for at most 30 s."""

    daemon_threads = True

    def __init__(self, address, handler):
        super().__init__(address, handler)
        self.slots = threading.BoundedSemaphore(CONNECTIONS)

    def process_request(self, request, client_address):
        self.slots.acquire()
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.release()
            raise

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()


def serve_http(port, secret):
    key = base64.b64decode(secret.removeprefix("whsec_"))
    lock = threading.Lock()  # One line at a time on stdout.

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # Keep-alive, as the worker's session uses it.
        timeout = 30
        # The reply's body sent at once after its headers: else Nagle holds it until the
        # client's delayed ACK, 40 ms a delivery (production servers set TCP_NODELAY too).
        disable_nagle_algorithm = True

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            accepted = time.monotonic()
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")
            tag = self.path.strip("/") if verified(key, self.headers, body) else "unsigned"
            try:
                id_ = json.loads(body)["data"]["id"]
            except (ValueError, KeyError, TypeError):
                id_ = "-"
            with lock:
                print(tag, id_, 1, accepted, flush=True)

        def log_message(self, format, *args):
            pass  # Not on stderr: the bench's output is its table.

    server = Server(("127.0.0.1", int(port)), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print("ready - 0 0", flush=True)
    sys.stdin.read()  # Until the bench closes our stdin.
    server.shutdown()


class Receiver(Inbox):
    """Counts the webhooks that the receiver process reports, by tag (the endpoint's path)."""

    SCRIPT, SERVE = __file__, "--http"

    def __init__(self, secret):
        super().__init__(secret)  # The process's argument: the mail server's is its delay.


if __name__ == "__main__":
    if sys.argv[1:2] == ["--http"]:
        serve_http(*sys.argv[2:4])
