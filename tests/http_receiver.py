"""A loopback HTTP receiver for the Slack and webhook tests: records each POST, answers as
scripted (a status, headers, a delay), then 200 "ok"."""

import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    path: str
    headers: dict
    body: bytes
    #: The client's address and port: one value per connection.
    peer: tuple


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
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
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

    def wait_for(self, count, timeout=10):
        """The requests received, once there are ``count`` (or ``timeout`` seconds passed)."""
        with self.condition:
            self.condition.wait_for(lambda: len(self.received) >= count, timeout=timeout)
            return list(self.received)

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
