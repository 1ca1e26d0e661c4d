"""outcomes.py through the real app: one log line per email sent, retried, failed or dropped,
with its id, recipient count, hook and reason, and never an address, a subject or a body."""

import logging
import os

from kinto_emailer.outbox.maildir import files
from tests.support import (
    FAST_RETRIES,
    EmailerWebTest,
    Inbox,
    MaildirQueueMixin,
    SMTPServer,
    free_port,
)


ALICE, BOB = "alice@example.com", "bob@example.com"
HOOK = {
    "resource_name": "record",
    "subject": "Private subject {id}",
    "template": "Private body {id}",
    "recipients": [ALICE, BOB],
}
WHERE = "hook=/buckets/b/collections/c#0"
PRIVATE = (ALICE, BOB, "Private subject", "Private body")


class LogTest(EmailerWebTest):
    @classmethod
    def extra_settings(cls):
        return FAST_RETRIES

    def setUp(self):
        super().setUp()
        self.create_bucket()
        self.create_collection(data=self.hooked(HOOK))
        self.drain()
        self.inbox.clear()

    def write_and_log(self):
        """Create a record, wait for delivery; the lines logged, at INFO and above."""
        with self.assertLogs("kinto_emailer", level="DEBUG") as logs:
            self.create_record()
            self.drain()
        self.debug = [r.getMessage() for r in logs.records if r.levelno < logging.INFO]
        lines = [r.getMessage() for r in logs.records if r.levelno >= logging.INFO]
        for line in lines:
            assert not any(secret in line for secret in PRIVATE), line
        return lines

    def only(self, lines, outcome):
        [line] = [line for line in lines if line.startswith(f"Email {outcome}:")]
        assert WHERE in line
        return line


class SentTest(LogTest):
    def test_a_sent_email_is_one_info_line_with_its_id_count_and_hook(self):
        lines = self.write_and_log()
        [message] = self.inbox.messages
        assert self.only(lines, "sent") == (
            f"Email sent: id={message['Message-ID']} {WHERE} recipients=2"
        )
        assert lines == [self.only(lines, "sent")]


class RetriedTest(LogTest):
    def test_a_451_reply_is_one_warning_line_with_the_reason_then_a_sent_line(self):
        self.inbox.scripted_replies = ["451 4.3.0 try later"]
        lines = self.write_and_log()
        retried = self.only(lines, "retried")
        assert "recipients=2 attempt=1/8 retry_in=" in retried
        assert retried.endswith('reason="451 4.3.0 try later"')
        self.only(lines, "sent")
        assert len(lines) == 2


class PermanentFailureTest(LogTest):
    def test_a_5xx_reply_is_one_error_line_with_the_reason_and_addresses_only_at_debug(self):
        self.inbox.scripted_replies = ["550 5.7.1 refused by policy"]
        lines = self.write_and_log()
        failed = self.only(lines, "failed")
        assert failed.endswith(
            'recipients=2 attempts=1 reason="permanent: 550 5.7.1 refused by policy"'
        )
        assert lines == [failed]
        assert any(ALICE in line and BOB in line for line in self.debug)


class GivenUpTest(LogTest):
    @classmethod
    def extra_settings(cls):
        return {**FAST_RETRIES, "kinto_emailer.retry_max_attempts": "2"}

    def test_the_last_failed_attempt_is_one_error_line(self):
        self.inbox.scripted_replies = ["451 4.3.0 try later"] * 2
        lines = self.write_and_log()
        failed = self.only(lines, "failed")
        assert 'reason="gave up after 2 attempt(s): 451 4.3.0 try later"' in failed
        self.only(lines, "retried")
        assert len(lines) == 2 and self.inbox.messages == []


class DroppedTest(LogTest):
    @classmethod
    def extra_settings(cls):
        return {"kinto_emailer.queue_size": "1"}

    def test_an_email_dropped_by_a_full_queue_is_one_error_line(self):
        self.inbox.delay = 0.2
        with self.assertLogs("kinto_emailer", level="INFO") as logs:
            requests = [{"method": "POST", "path": "/buckets/b/collections/c/records"}] * 2
            self.app.post_json("/batch", {"requests": requests}, headers=self.headers)
            self.drain()
        [dropped] = [line for line in logs.output if "Email dropped" in line]
        assert dropped.startswith("ERROR:kinto_emailer.outcomes:Email dropped: id=<")
        assert dropped.endswith(
            f'{WHERE} recipients=2 reason="queue full (kinto_emailer.queue_size = 1)"'
        )
        assert not any(secret in "\n".join(logs.output) for secret in PRIVATE)


class RefusingBob(Inbox):
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address == BOB:
            return f"550 5.1.1 <{BOB}>: Recipient address rejected: User unknown"
        envelope.rcpt_tos.append(address)
        return "250 OK"


class PartlyRefusedTest(LogTest):
    @classmethod
    def setUpClass(cls):
        cls.refusing = SMTPServer(inbox=RefusingBob()).start()
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        cls.refusing.stop()

    @classmethod
    def extra_settings(cls):
        return {"mail.port": str(cls.refusing.port)}

    def setUp(self):
        self.smtp = self.refusing
        super().setUp()

    def test_a_refused_recipient_is_a_failed_line_without_its_address_in_the_reply(self):
        lines = self.write_and_log()
        assert self.only(lines, "sent").endswith("recipients=1")
        failed = self.only(lines, "failed")
        assert "recipients=1" in failed
        assert "550 5.1.1 <[recipient]>: Recipient address rejected: User unknown" in failed
        assert len(lines) == 2


class DurableTest(MaildirQueueMixin, LogTest):
    pass


class DurableDeliveryTest(DurableTest):
    def test_the_hook_survives_the_maildir_and_never_reaches_the_recipients(self):
        lines = self.write_and_log()
        queued = self.only(lines, "queued")
        sent = self.only(lines, "sent")
        [message] = self.inbox.messages
        file = queued.split(" file=")[1]
        assert sent == f"Email sent: id={message['Message-ID']} {WHERE} recipients=2 file={file}"
        assert "X-Kinto-Emailer-Hook" not in message and "X-Kinto-Emailer-Labels" not in message


class QueueOnlyTest(DurableTest):
    processor = False

    def test_the_maildir_file_carries_the_hook_and_its_labels(self):
        lines = self.write_and_log()
        queued = self.only(lines, "queued")
        path = os.path.join(self.queue_path, "new", queued.split(" file=")[1])
        outgoing, location, labels = files.load(path)
        assert location == "/buckets/b/collections/c#0"
        assert labels == {"bucket_id": "b", "collection_id": "c"}
        assert b"X-Kinto-Emailer" not in outgoing.data


class UnreachableTest(LogTest):
    @classmethod
    def extra_settings(cls):
        return {"mail.port": str(free_port()), "kinto_emailer.retry_max_attempts": "1"}

    def test_a_server_that_cannot_be_reached_is_one_failed_line_with_the_reason(self):
        lines = self.write_and_log()
        failed = self.only(lines, "failed")
        assert "gave up after 1 attempt(s)" in failed and "Connection refused" in failed
        assert lines == [failed]
