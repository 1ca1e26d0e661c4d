"""One HTTP POST and what its reply means: sent (any 2xx), to try again later (honouring
``Retry-After``), or given up (410: the endpoint is gone).

A ``requests`` session per URL keeps its connection for the next POST; TLS is verified
(``REQUESTS_CA_BUNDLE`` names another trust store); redirects are not followed: a receiver
that moved is a failure, never a POST to an address nobody configured. Errors name what went
wrong, never the URL: a Slack URL is a secret.
"""

import email.utils
import os
import re
import threading
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version

import requests

from .deadline import Watch, WatchedAdapter


#: Bytes of a reply's body read, for the error text; a longer body is left unread.
BODY_BOUND = 4096
#: Characters of that text kept in an error (the status views show it, the log writes it).
ERROR_TEXT = 200
#: ``Retry-After`` in seconds: ASCII digits only.
_SECONDS = re.compile(r"[0-9]{1,10}", re.ASCII)
#: What the socket said, in an exception's text that also holds the URL: ``[Errno 111] ...``.
_OS_REASON = re.compile(r"\[Errno -?[0-9]+\][^'\"()\]]*|\[SSL: [A-Z0-9_]+\][^'\"()\]]*")


def _user_agent() -> str:
    try:
        return f"kinto-emailer/{version('kinto-emailer')}"
    except PackageNotFoundError:  # A checkout that was never installed.
        return "kinto-emailer"


USER_AGENT = _user_agent()


class PostFailure(Exception):
    """The POST did not succeed; worth trying again later unless ``permanent``."""

    permanent = False

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        #: Seconds the receiver asked to wait (``Retry-After`` of a 429 or a 503).
        self.retry_after = retry_after


class EndpointGone(PostFailure):
    """410 Gone: the receiver says it won't take any more; never tried again."""

    permanent = True


def ca_bundle() -> str | bool:
    """The certificates TLS is verified with: those requests reads from the environment
    (``REQUESTS_CA_BUNDLE``, ``CURL_CA_BUNDLE``), else its own."""
    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True


class HTTPTransport:
    """The POSTs of one worker thread; ``abandon`` and ``close`` may be called from another."""

    def __init__(self, timeout: float):
        #: Seconds for one POST as a whole: connecting, sending, and the reply (``Watch``).
        self.timeout = timeout
        self._lock = threading.Lock()
        self._sessions: dict[str, requests.Session] = {}
        self._watch: Watch | None = None  # The POST under way.

    def _session(self, url: str) -> requests.Session:
        with self._lock:
            session = self._sessions.get(url)
            if session is None:
                session = self._sessions[url] = requests.Session()
                # One connection per URL, kept for the next POST; no retry of its own: the
                # outbox retries, with backoff, and says so in the status views.
                adapter = WatchedAdapter(pool_connections=1, pool_maxsize=1, max_retries=0)
                session.mount("https://", adapter)
                session.mount("http://", adapter)
                session.headers["User-Agent"] = USER_AGENT
                # The environment (proxies, ``REQUESTS_CA_BUNDLE``) read once per URL, not on
                # every POST as requests does by default: a sixth of a POST's time in the
                # bench's profile.
                session.trust_env = False
                session.proxies.update(requests.utils.get_environ_proxies(url))
                session.verify = ca_bundle()
            return session

    def post(
        self,
        url: str,
        body: bytes,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> int:
        """POST ``body`` (JSON) to ``url``; returns the 2xx status, else raises
        ``PostFailure``. ``timeout`` (the time left before a stop) shortens ``self.timeout``."""
        timeout = self.timeout if timeout is None else min(self.timeout, timeout)
        deadline = time.monotonic() + timeout
        session = self._session(url)
        with Watch(timeout) as watch:
            self._watch = watch
            try:
                response = session.post(
                    url,
                    data=body,
                    headers={"Content-Type": "application/json", **(headers or {})},
                    timeout=(timeout, timeout),
                    allow_redirects=False,
                    stream=True,  # The body is read up to a bound (``BODY_BOUND``).
                )
                try:
                    text = _read_text(response, deadline)
                finally:
                    response.close()  # Read to its end: the connection waits for the next.
            except (requests.RequestException, OSError) as e:
                raise _failure(e, watch, timeout) from None
            finally:
                self._watch = None
            if watch.expired:  # Shut mid-reply, which may then look complete: not a reply.
                raise _failure(TimeoutError(), watch, timeout)
        return _outcome(response, text)

    def abandon(self) -> None:
        """From another thread: the process stops, the POST under way ends now."""
        watch = self._watch
        if watch is not None:
            watch.abandon()

    def close(self) -> None:
        with self._lock:
            sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            session.close()


def _failure(error: BaseException, watch: Watch, timeout: float) -> PostFailure:
    if watch.abandoned:
        return PostFailure("abandoned: the process stops")
    if watch.expired or isinstance(error, requests.Timeout):
        return PostFailure(f"no reply within {timeout:g}s")
    if isinstance(error, requests.exceptions.SSLError):
        return PostFailure(f"TLS failed: {_reason(error)}")
    if isinstance(error, requests.ConnectionError):
        return PostFailure(f"could not connect: {_reason(error)}")
    return PostFailure(f"the request failed: {type(error).__name__}")


def _outcome(response: requests.Response, text: str) -> int:
    status = response.status_code
    if 200 <= status < 300:
        return status
    reply = f"HTTP {status} {_one_line(response.reason or '')}".rstrip()
    if 300 <= status < 400:
        raise PostFailure(f"{reply}: redirects are not followed, set the new URL")
    detail = f"{reply}: {text}" if text else reply
    if status == 410:
        raise EndpointGone(f"{detail} (the endpoint is gone: not tried again)")
    retry_after = None
    if status in (429, 503):
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
    raise PostFailure(detail, retry_after)


def _read_text(response: requests.Response, deadline: float) -> str:
    """The start of the reply's body, within the POST's time; what can't be read is left."""
    data = b""
    try:
        for chunk in response.iter_content(1024):
            data += chunk
            if len(data) >= BODY_BOUND or time.monotonic() > deadline:
                break
    except (requests.RequestException, OSError):
        pass  # A body cut short: its status said what happened.
    return _one_line(data[:BODY_BOUND].decode("utf-8", "replace"))[:ERROR_TEXT]


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _reason(error: BaseException) -> str:
    """What the socket or TLS said, without the URL that ``requests`` puts in its text."""
    match = _OS_REASON.search(str(error))
    if match:
        return match.group(0).strip(" :")
    return type(error).__name__


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds that ``Retry-After`` asks to wait: a number of seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if _SECONDS.fullmatch(value):
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - (now or datetime.now(timezone.utc))).total_seconds())
