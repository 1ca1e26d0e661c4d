"""One POST to a loopback receiver (``http.transport``): what each reply means, TLS
verified, the reply's body read up to a bound, ``Retry-After`` in both its forms."""

import ssl
import time
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest
import trustme

from kinto_emailer.http.transport import (
    BODY_BOUND,
    ERROR_TEXT,
    EndpointGone,
    HTTPTransport,
    PostFailure,
    parse_retry_after,
)
from tests.http_receiver import Receiver, Reply


CA = trustme.CA()


@pytest.fixture
def transport():
    transport = HTTPTransport(timeout=5)
    yield transport
    transport.close()


def failure(transport, receiver, reply):
    receiver.script(reply)
    with pytest.raises(PostFailure) as raised:
        transport.post(receiver.url(), b"{}")
    return raised.value


def test_any_2xx_is_a_success(transport, receiver):
    receiver.script(Reply(202), Reply(204, body=b""))
    assert [transport.post(receiver.url(), b"{}") for _ in range(3)] == [202, 204, 200]


def test_410_is_permanent_and_other_failures_are_not(transport, receiver):
    gone = failure(transport, receiver, Reply(410, body=b"no such hook"))
    assert isinstance(gone, EndpointGone) and gone.permanent
    assert str(gone) == "HTTP 410 Gone: no such hook (the endpoint is gone: not tried again)"
    for status in (400, 404, 500, 302):
        assert not failure(transport, receiver, Reply(status)).permanent


def test_a_redirect_is_a_failure_that_does_not_name_where_it_points(transport, receiver):
    moved = failure(transport, receiver, Reply(308, {"Location": "http://127.0.0.1:1/secret"}))
    assert str(moved) == (
        "HTTP 308 Permanent Redirect: redirects are not followed, set the new URL"
    )
    assert len(receiver.received) == 1


def test_retry_after_is_read_from_429_and_503_only(transport, receiver):
    assert failure(transport, receiver, Reply(429, {"Retry-After": "7"})).retry_after == 7
    later = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=90), usegmt=True)
    waited = failure(transport, receiver, Reply(503, {"Retry-After": later})).retry_after
    assert waited is not None and 80 < waited <= 90
    assert failure(transport, receiver, Reply(500, {"Retry-After": "7"})).retry_after is None


@pytest.mark.parametrize(
    "value, seconds",
    [
        ("120", 120.0),
        (" 0 ", 0.0),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 60.0),
        ("Wed, 21 Oct 2015 07:26:00 GMT", 0.0),  # Past: now.
        ("soon", None),
        ("-5", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_in_seconds_or_as_an_http_date(value, seconds):
    now = datetime(2015, 10, 21, 7, 27, tzinfo=timezone.utc)
    assert parse_retry_after(value, now) == seconds


def test_a_long_reply_is_read_up_to_a_bound(transport, receiver):
    error = failure(transport, receiver, Reply(500, body=b"x" * (100 * BODY_BOUND)))
    assert str(error) == "HTTP 500 Internal Server Error: " + "x" * ERROR_TEXT


def test_a_slow_reply_is_a_time_out(receiver):
    transport = HTTPTransport(timeout=0.2)
    late = failure(transport, receiver, Reply(delay=1))
    assert str(late) == "no reply within 0.2s" and not late.permanent
    transport.close()


def test_one_connection_per_url_is_reused(transport, receiver):
    for _ in range(3):
        transport.post(receiver.url(), b"{}")
    assert len({r.peer for r in receiver.received}) == 1


def tls_receiver(names=("127.0.0.1",)):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    CA.issue_cert(*names).configure_cert(context)
    return Receiver(tls=context)


def test_a_certificate_of_an_unknown_ca_is_refused(transport):
    receiver = tls_receiver()
    try:
        with pytest.raises(PostFailure, match="TLS failed: .*CERTIFICATE_VERIFY_FAILED"):
            transport.post(receiver.url(), b"{}")
        assert receiver.received == []
    finally:
        receiver.stop()


def test_a_ca_trusted_through_requests_ca_bundle_is_accepted(transport, tmp_path, monkeypatch):
    bundle = tmp_path / "ca.pem"
    CA.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    receiver = tls_receiver()
    try:
        assert transport.post(receiver.url(), b"{}") == 200
    finally:
        receiver.stop()


def test_a_reply_trickled_byte_by_byte_ends_at_the_post_s_time_out(receiver):
    transport = HTTPTransport(timeout=0.5)  # Each byte comes in 0.05s: each read in time.
    late = failure(transport, receiver, Reply(trickle=0.05))
    assert str(late) == "no reply within 0.5s"
    transport.close()


def test_abandon_ends_the_post_under_way_at_once(transport, receiver):
    import threading

    receiver.script(Reply(trickle=0.05))
    threading.Timer(0.3, transport.abandon).start()
    with pytest.raises(PostFailure, match="abandoned: the process stops"):
        transport.post(receiver.url(), b"{}")


def test_posts_share_one_deadline_thread_whatever_their_number(transport, receiver):
    import threading

    transport.post(receiver.url(), b"{}")
    before = threading.active_count()
    for _ in range(20):
        transport.post(receiver.url(), b"{}")
    assert threading.active_count() == before
    names = [thread.name for thread in threading.enumerate()]
    assert names.count("kinto-emailer-http-deadlines") == 1


def test_a_short_deadline_behind_a_long_one_ends_its_post_on_time(receiver):
    import threading

    # A POST of 5 s waits in another thread; one of 0.3 s, added after it, still ends first.
    patient, hasty = HTTPTransport(timeout=5), HTTPTransport(timeout=0.3)
    receiver.script(Reply(delay=1))
    first = threading.Thread(target=patient.post, args=(receiver.url(), b"{}"))
    first.start()
    while not receiver.received:  # The receiver holds the first POST now.
        time.sleep(0.01)
    started = time.monotonic()
    late = failure(hasty, receiver, Reply(trickle=0.05))
    # Ended by its own deadline, not when the thread woke for the first POST's (5 s).
    assert str(late) == "no reply within 0.3s" and time.monotonic() - started < 3
    first.join()
    assert receiver.received[0].path == receiver.received[1].path  # Both got there.
    patient.close()
    hasty.close()


def test_a_forked_child_s_posts_end_at_their_deadline(receiver):
    import os

    transport = HTTPTransport(timeout=0.5)
    transport.post(receiver.url(), b"{}")  # The parent's deadline thread is running.
    receiver.script(Reply(trickle=0.05))
    pid = os.fork()
    if pid == 0:  # The child has no deadline thread of its own until it posts.
        child, started = HTTPTransport(timeout=0.5), time.monotonic()
        try:
            child.post(receiver.url(), b"{}")
            os._exit(1)
        except PostFailure as e:
            on_time = time.monotonic() - started < 3  # Not at the trickle's end, much later.
            os._exit(0 if str(e) == "no reply within 0.5s" and on_time else 2)
        except BaseException:
            os._exit(3)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    transport.close()
