"""health.py through the real app: the heartbeat, and the metrics in Prometheus and StatsD."""

import os
import shutil
import socket
import tempfile
import threading
import time

from kinto.plugins import prometheus
from prometheus_client.parser import text_string_to_metric_families

from kinto_emailer.web.health import HEARTBEAT, SMTP_CHECK_SECONDS, Heartbeat
from tests.support import FAST_RETRIES, EmailerWebTest, SMTPServer, free_port, record_hook


class HeartbeatTest(EmailerWebTest):
    def heartbeat(self, status=200):
        return self.app.get("/__heartbeat__", status=status).json


class ServerUpTest(HeartbeatTest):
    def test_the_heartbeat_is_true_when_the_mail_server_answers(self):
        assert self.heartbeat()["emailer"] is True


class ServerDownTest(HeartbeatTest):
    @classmethod
    def extra_settings(cls):
        return {"mail.port": str(free_port())}  # Nothing listens there.

    def test_the_heartbeat_is_false_and_503_when_the_mail_server_is_down(self):
        assert self.heartbeat(status=503)["emailer"] is False


class SilentServerTest(HeartbeatTest):
    """A server that accepts connections and never greets: the check ends in time."""

    @classmethod
    def setUpClass(cls):
        cls.silent = socket.socket()
        cls.silent.bind(("127.0.0.1", 0))
        cls.silent.listen(8)  # Never accepted: the kernel completes the handshake alone.
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        cls.silent.close()

    @classmethod
    def extra_settings(cls):
        return {
            "mail.port": str(cls.silent.getsockname()[1]),
            "heartbeat_timeout_seconds": "0.5",
        }

    def test_the_heartbeat_is_false_once_kintos_heartbeat_timeout_has_passed(self):
        answers = []
        call = threading.Thread(target=lambda: answers.append(self.heartbeat(status=503)))
        call.start()
        # A bound for waiting, far above the 0.5 s timeout that ends the check.
        call.join(timeout=30)
        assert not call.is_alive(), "the heartbeat waits for a server that never greets"
        assert answers[0]["emailer"] is False


class CachedCheckTest(HeartbeatTest):
    """Callers of the heartbeat share one SMTP check for a few seconds."""

    cache_seconds = 0.3

    @classmethod
    def setUpClass(cls):
        cls.port = free_port()
        super().setUpClass()

    @classmethod
    def extra_settings(cls):
        return {"mail.port": str(cls.port)}

    def setUp(self):
        super().setUp()
        self.start_server()
        registry = self.app.app.registry
        # A check of its own: no answer is kept from another test.
        registry.heartbeats[HEARTBEAT] = Heartbeat(
            registry.emailer.delivery, 5, cache_seconds=self.cache_seconds
        )

    def start_server(self):
        self.server = SMTPServer(self.port).start()
        self.addCleanup(self.stop_server)

    def stop_server(self):
        if self.server is not None:
            self.server.stop()
            self.server = None

    def wait_for_the_cache_to_expire(self):
        time.sleep(self.cache_seconds + 0.1)

    def test_the_default_cache_is_a_few_seconds(self):
        assert 1 <= SMTP_CHECK_SECONDS <= 10

    def test_many_heartbeat_calls_at_once_make_one_smtp_session(self):
        self.app.app.registry.heartbeats[HEARTBEAT].cache_seconds = 60
        answers, errors = [], []

        def call_many():
            for _ in range(25):
                try:
                    # Any status: Kinto's memory cache check may fail under concurrent calls.
                    answers.append(self.heartbeat(status="*")["emailer"])
                except Exception as e:
                    errors.append(repr(e))

        threads = [threading.Thread(target=call_many) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert answers == [True] * 200
        assert self.server.inbox.sessions == 1

    def test_after_the_cache_time_the_server_is_asked_again(self):
        for _ in range(10):
            assert self.heartbeat()["emailer"] is True
        assert self.server.inbox.sessions == 1
        self.wait_for_the_cache_to_expire()
        for _ in range(10):
            assert self.heartbeat()["emailer"] is True
        assert self.server.inbox.sessions == 2

    def test_a_server_that_stops_is_reported_failing_and_its_recovery_seen(self):
        assert self.heartbeat()["emailer"] is True
        self.stop_server()
        self.wait_for_the_cache_to_expire()
        for _ in range(20):
            assert self.heartbeat(status=503)["emailer"] is False
        self.start_server()
        # The failure is kept too: a server down is not asked at each call either.
        assert self.heartbeat(status=503)["emailer"] is False
        assert self.server.inbox.sessions == 0
        self.wait_for_the_cache_to_expire()
        assert self.heartbeat()["emailer"] is True
        assert self.server.inbox.sessions == 1


class DirectoryTest(HeartbeatTest):
    """Debug mailer and queue-only mode: the heartbeat checks the directory, not SMTP."""

    setting = None

    @classmethod
    def setUpClass(cls):
        cls.directory = tempfile.mkdtemp()
        cls.path = os.path.join(cls.directory, "mail")
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        cls.app.app.registry.emailer.delivery.stop(timeout=1)  # Before its Maildir goes.
        super().tearDownClass()
        shutil.rmtree(cls.directory)

    @classmethod
    def extra_settings(cls):
        # The mail server is down: in these modes, the heartbeat doesn't ask it.
        return {"mail.port": str(free_port()), **cls.mode_settings()}

    def break_directory(self):
        # A file where the directory should be: refused even to root.
        shutil.rmtree(self.path, ignore_errors=True)
        with open(self.path, "w") as f:
            f.write("not a directory")

    def tearDown(self):
        super().tearDown()
        if os.path.isfile(self.path):
            os.unlink(self.path)


class DebugMailerHeartbeatTest(DirectoryTest):
    @classmethod
    def mode_settings(cls):
        return {"mail.debug_mailer": "true", "mail.top_level_directory": cls.path}

    def test_the_heartbeat_is_true_when_the_debug_directory_is_writable(self):
        assert self.heartbeat()["emailer"] is True

    def test_the_heartbeat_is_false_when_the_debug_directory_is_not_writable(self):
        self.break_directory()
        assert self.heartbeat(status=503)["emailer"] is False


class QueueOnlyHeartbeatTest(DirectoryTest):
    @classmethod
    def mode_settings(cls):
        return {"mail.queue_path": cls.path}

    def test_the_heartbeat_is_true_when_the_maildir_is_writable(self):
        assert self.heartbeat()["emailer"] is True

    def test_the_heartbeat_is_false_when_the_maildir_is_not_writable(self):
        self.break_directory()
        assert self.heartbeat(status=503)["emailer"] is False


class QueueProcessorHeartbeatTest(DirectoryTest):
    @classmethod
    def mode_settings(cls):
        return {"mail.queue_path": cls.path, "kinto_emailer.queue_processor": "true"}

    def test_the_heartbeat_also_asks_the_mail_server_when_this_process_delivers(self):
        assert self.heartbeat(status=503)["emailer"] is False


def samples(text, name):
    """``{(bucket_id, collection_id): value}`` of a metric in Prometheus' text format."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                key = (sample.labels.get("bucket_id"), sample.labels.get("collection_id"))
                found[key] = sample.value
    return found


class PrometheusWebTest(EmailerWebTest):
    @classmethod
    def extra_settings(cls):
        return {"includes": "kinto.plugins.prometheus kinto_emailer", **FAST_RETRIES}

    def setUp(self):
        prometheus.reset_registry()  # Counts are global to the process: start from zero.
        super().setUp()
        self.create_bucket()
        self.create_collection(data=self.hooked(record_hook()))
        self.drain()
        self.inbox.clear()
        prometheus.reset_registry()

    def counts(self, outcome):
        text = self.app.get("/__metrics__").text
        return samples(text, f"kinto_emailer_{outcome}_total")


class PrometheusTest(PrometheusWebTest):
    def test_sent_and_queued_emails_are_counted_by_bucket_and_collection(self):
        self.create_record()
        self.create_record()
        self.drain()
        assert self.counts("queued") == {("b", "c"): 2}
        assert self.counts("sent") == {("b", "c"): 2}
        assert self.counts("failed") == self.counts("dropped") == {}

    def test_a_5xx_reply_is_counted_as_failed(self):
        self.inbox.scripted_replies = ["550 5.1.1 mailbox unavailable"]
        self.create_record()
        self.drain()
        assert self.counts("failed") == {("b", "c"): 1}
        assert self.counts("sent") == {}

    def test_a_451_reply_is_counted_as_retried_then_sent(self):
        self.inbox.scripted_replies = ["451 4.3.0 try later"]
        self.create_record()
        self.drain()
        assert self.counts("retried") == {("b", "c"): 1}
        assert self.counts("sent") == {("b", "c"): 1}

    def test_building_emails_is_timed(self):
        self.create_record()
        self.drain()
        text = self.app.get("/__metrics__").text
        [count] = samples(text, "kinto_emailer_build_seconds_count").values()
        assert count >= 1


class PrometheusDroppedTest(PrometheusWebTest):
    @classmethod
    def extra_settings(cls):
        return {**super().extra_settings(), "kinto_emailer.queue_size": "1"}

    def test_emails_dropped_by_a_full_queue_are_counted(self):
        self.inbox.delay = 0.2
        requests = [
            {"method": "POST", "path": "/buckets/b/collections/c/records", "body": {"data": {}}}
        ] * 3
        self.app.post_json("/batch", {"requests": requests}, headers=self.headers)
        self.drain()
        assert self.counts("dropped") == {("b", "c"): 2}
        assert self.counts("queued") == self.counts("sent") == {("b", "c"): 1}


class StatsDTest(EmailerWebTest):
    """StatsD has no labels: plain counters, sent from the delivery thread too."""

    @classmethod
    def setUpClass(cls):
        cls.statsd = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        cls.statsd.bind(("127.0.0.1", 0))
        cls.statsd.settimeout(10)
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        cls.statsd.close()

    @classmethod
    def extra_settings(cls):
        return {
            "includes": "kinto.plugins.statsd kinto_emailer",
            "statsd_url": f"udp://127.0.0.1:{cls.statsd.getsockname()[1]}",
        }

    def test_emails_are_counted_as_statsd_counters(self):
        self.create_bucket()
        self.create_collection(data=self.hooked(record_hook()))
        self.create_record()
        self.drain()
        packets = []
        while "kinto.emailer.sent:1|c" not in packets:
            packets += self.statsd.recv(4096).decode().splitlines()  # Times out after 10 s.
        assert "kinto.emailer.queued:1|c" in packets
