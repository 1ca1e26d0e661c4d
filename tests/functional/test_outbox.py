"""The PostgreSQL outbox through real ``kinto start`` and ``kinto-emailer worker`` processes:
what a failed request, a SIGKILL, a second process and a SIGTERM leave, and how start-up fails.

Each email's subject is its record's id (``RECORD_HOOK``): emails are matched to records.
"""

import signal
import subprocess
from collections import Counter

import pytest
import requests
from kinto_http import Client, KintoException

from tests.functional.conftest import AUTH, OUTBOX_SETTINGS, RECORD_HOOK
from tests.functional.server import EMAILER, ROOT, KintoServer
from tests.support import Inbox, SMTPServer, free_port, hooked


pytestmark = [pytest.mark.functional, pytest.mark.postgresql]

NO_WORKER = {"kinto.kinto_emailer.outbox_worker": "false"}


@pytest.fixture
def smtp(outbox):
    server = SMTPServer(port=outbox.smtp_port).start()
    yield server
    server.stop()


@pytest.fixture
def paced_smtp(outbox):
    """A mail server on the deployment's port that takes 0.3s to accept each email."""
    server = SMTPServer(port=outbox.smtp_port, inbox=Inbox(delay=0.3)).start()
    yield server
    server.stop()


def hooked_collection(server, bucket="b", collection="c", metadata=None):
    """``bucket/collection`` with ``RECORD_HOOK``, and ``metadata`` (other channels' hooks)."""
    client = Client(
        server_url=server.url, auth=AUTH, bucket=bucket, collection=collection, timeout=30
    )
    client.create_bucket(id=bucket, if_not_exists=True)
    data = {**hooked(RECORD_HOOK), **(metadata or {})}
    client.create_collection(id=collection, data=data, if_not_exists=True)
    return client


def write_in_one_request(server, ids, bucket="b", collection="c"):
    """One batch (25 writes at most), one transaction: a single claim takes every email."""
    path = f"/buckets/{bucket}/collections/{collection}/records"
    body = {
        "defaults": {"method": "PUT", "body": {"data": {}}},
        "requests": [{"path": f"{path}/{id_}"} for id_ in ids],
    }
    response = requests.post(f"{server.url}/batch", json=body, auth=AUTH, timeout=30)
    assert response.status_code == 200, response.text
    assert [r["status"] for r in response.json()["responses"]] == [201] * len(ids)


def mailed(inbox):
    return Counter(message["Subject"] for message in inbox.messages)


def test_a_request_that_fails_writes_no_row_and_sends_nothing(outbox, smtp):
    server = outbox.web().start()
    client = hooked_collection(server)
    # In the event (nothing written yet), then at commit once the rows are written.
    for explosion in (True, "at commit"):
        with pytest.raises(KintoException) as failure:
            client.create_record(id=f"boom-{explosion}", data={"explode": explosion})
        assert failure.value.response.status_code == 500
    assert "explode: at commit in the data" in server.log()
    client.create_record(id="fine")

    assert outbox.wait_delivered() == {"sent": 1}
    # Id 1 went to the row that the failed commit wrote, then rolled back.
    assert outbox.sql("SELECT id, subject FROM kinto_emailer_outbox") == [(2, "fine")]
    assert mailed(smtp.inbox) == {"fine": 1}
    assert outbox.records("b", "c") == {"fine"}


def test_emails_written_while_the_mail_server_is_down_outlive_a_sigkill(outbox):
    # Nothing listens on the mail server's port yet: every attempt fails.
    web = outbox.web().start()
    client = hooked_collection(web)
    ids = [f"r{n:02}" for n in range(50)]
    client.create_record(id=ids[0])
    write_in_one_request(web, ids[1:25])
    write_in_one_request(web, ids[25:])
    web.wait_for_log("Email retried")
    web.kill()
    assert outbox.statuses().get("sent") is None
    assert sum(outbox.statuses().values()) == 50

    smtp = SMTPServer(port=outbox.smtp_port).start()
    try:
        worker = outbox.worker(web).start()
        assert outbox.wait_delivered() == {"sent": 50}
        worker.stop()
    finally:
        smtp.stop()
    assert mailed(smtp.inbox) == {id_: 1 for id_ in ids}


def test_what_a_killed_process_claimed_is_sent_by_another_after_its_lease(outbox, paced_smtp):
    inbox = paced_smtp.inbox
    web = outbox.web().start()
    ids = [f"r{n:02}" for n in range(10)]
    hooked_collection(web)
    write_in_one_request(web, ids)
    # Two emails accepted, the third in the middle of its DATA.
    assert inbox.wait_started(3, timeout=30)
    web.kill()
    started = inbox.started
    sent_before = outbox.statuses().get("sent", 0)
    claimed = outbox.claimed_by(web)
    assert len(claimed) == 10 - sent_before >= 7

    inbox.delay = 0
    worker = outbox.worker(web).start()
    assert outbox.wait_delivered() == {"sent": 10}
    worker.stop()

    sent_at = dict(outbox.sql("SELECT id, sent FROM kinto_emailer_outbox"))
    assert all(sent_at[id_] >= lease_until for id_, lease_until in claimed.items())
    assert worker.log().count("Email sent") == len(claimed)
    counts = mailed(inbox)
    assert set(counts) == set(ids)
    # Only an email whose DATA had begun and whose row wasn't marked sent can be sent twice.
    in_flight = started - sent_before
    duplicates = sum(counts.values()) - len(ids)
    assert duplicates <= in_flight <= 1, (counts, started, sent_before)


def test_two_web_processes_on_one_database_send_each_email_once(outbox, smtp):
    first, second = outbox.web("first").start(), outbox.web("second").start()
    hooked_collection(first)
    servers = first, second
    clients = [hooked_collection(server) for server in servers]
    ids = [f"r{n:03}" for n in range(120)]
    for n, id_ in enumerate(ids):
        clients[n % 2].create_record(id=id_)
    # Then in batches: each process's worker holds a burst at the same time as the other's.
    for n in range(4):
        write_in_one_request(servers[n % 2], [f"bulk{n}-{i:02}" for i in range(25)])

    assert outbox.wait_delivered() == {"sent": 220}
    assert mailed(smtp.inbox) == {id_: 1 for id_ in outbox.records("b", "c")}
    assert len(smtp.inbox.messages) == 220


def test_sigterm_on_the_worker_gives_back_what_it_holds_and_exits_0(outbox, paced_smtp):
    inbox = paced_smtp.inbox
    web = outbox.web(**NO_WORKER, **{"kinto.kinto_emailer.shutdown_timeout": "1"}).start()
    ids = [f"r{n:02}" for n in range(20)]
    hooked_collection(web)
    write_in_one_request(web, ids)
    worker = outbox.worker(web).start()
    assert inbox.wait_started(1, timeout=30)
    worker.process.send_signal(signal.SIGTERM)
    # The bound: shutdown_timeout, plus the email under way when it falls.
    assert worker.process.wait(timeout=30) == 0, worker.log()
    log = worker.log()
    assert "kinto-emailer worker: stopping within 1s" in log

    statuses = outbox.statuses()
    sent = statuses.pop("sent")
    assert 1 <= sent < 20, statuses
    # Given back: waiting for the next worker, claimed by none.
    assert outbox.claimed_by(worker) == {}
    assert sum(statuses.values()) == 20 - sent and "sending" not in statuses, statuses
    assert f"Delivery stopped: {20 - sent} email(s) left in the outbox" in log

    inbox.delay = 0
    outbox.worker(web, "second-worker").start()
    assert outbox.wait_delivered() == {"sent": 20}
    assert mailed(inbox) == {id_: 1 for id_ in ids}


# Start-up errors.


def test_the_postgresql_outbox_with_the_memory_backend_stops_start_up(tmp_path):
    server = KintoServer(
        tmp_path, None, free_port(), **{"kinto.kinto_emailer.outbox": "postgresql"}
    )
    with pytest.raises(RuntimeError, match="kinto start exited"):
        server.start()
    assert (
        "pyramid.exceptions.ConfigurationError: Setting 'kinto_emailer.outbox = postgresql' "
        "needs 'kinto.storage_backend = kinto.core.storage.postgresql', got "
        "'kinto.core.storage.memory': the outbox is a table of the storage database."
    ) in server.log()


def test_a_database_without_the_outbox_table_stops_start_up(outbox):
    # Migrated before the outbox was turned on: Kinto's tables, not the plugin's.
    before = KintoServer(outbox.directory, outbox.database.url, outbox.smtp_port)
    before.migrate()
    outbox.migrated = True
    server = outbox.web()
    with pytest.raises(RuntimeError, match="kinto start exited"):
        server.start()
    assert (
        "pyramid.exceptions.ConfigurationError: kinto_emailer.outbox = postgresql: the database "
        "has no outbox table (version 6 needed): run 'kinto migrate' with this ini file."
    ) in server.log()

    server.migrate()
    server.start()


def run_worker(server, ini=None):
    """``kinto-emailer worker`` with the ini of ``server`` (or ``ini``), to its end."""
    return subprocess.run(
        [str(EMAILER), "worker", "--ini", str(ini or server.ini)],
        cwd=ROOT,
        env=server.env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def assert_one_line_and_exit_1(result, line):
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [line]


def test_the_worker_with_a_missing_ini_prints_one_line_and_exits_1(tmp_path):
    web = KintoServer(tmp_path, None, free_port())
    missing = tmp_path / "missing.ini"
    assert_one_line_and_exit_1(
        run_worker(web, missing),
        f"kinto-emailer: cannot start with {missing}: [Errno 2] No such file or directory: "
        f"'{missing}'",
    )


def test_the_worker_with_a_bad_setting_prints_one_line_and_exits_1(outbox):
    settings = {**OUTBOX_SETTINGS, "kinto.kinto_emailer.outbox_leese": "2"}
    web = KintoServer(outbox.directory, outbox.database.url, outbox.smtp_port, **settings)
    assert_one_line_and_exit_1(
        run_worker(web),
        f"kinto-emailer: cannot start with {web.ini}: Unknown setting "
        "'kinto_emailer.outbox_leese'; did you mean 'kinto_emailer.outbox_lease'?",
    )


@pytest.mark.parametrize(
    "setting, shown",
    [
        (
            {"kinto.kinto_emailer.smtp_timeout": "nan"},
            "'kinto_emailer.smtp_timeout' must be a number "
            "of seconds greater than 0 and at most 3600, got 'nan'.",
        ),
        # Kinto reads the ini's numbers: 1e308 reaches the plugin as the float 1e+308.
        (
            {"kinto.kinto_emailer.outbox_lease": "1e308"},
            "'kinto_emailer.outbox_lease' must be a "
            "number of seconds greater than 0 and at most 86400, got '1e+308'.",
        ),
    ],
)
def test_the_worker_with_a_number_out_of_range_prints_one_line_and_exits_1(
    tmp_path, setting, shown
):
    web = KintoServer(tmp_path, None, free_port(), **setting)
    assert_one_line_and_exit_1(
        run_worker(web), f"kinto-emailer: cannot start with {web.ini}: Setting {shown}"
    )


def test_the_worker_with_a_port_out_of_range_prints_one_line_and_exits_1(tmp_path):
    web = KintoServer(tmp_path, None, 99999)
    assert_one_line_and_exit_1(
        run_worker(web),
        f"kinto-emailer: cannot start with {web.ini}: Setting 'mail.port' must be a whole "
        "number from 1 to 65535, got '99999'.",
    )


def test_the_worker_with_an_unreachable_database_prints_one_line_and_exits_1(tmp_path):
    port = free_port()
    url = f"postgresql://postgres@127.0.0.1:{port}/nowhere"
    web = KintoServer(tmp_path, url, free_port(), **{"kinto.kinto_emailer.outbox": "postgresql"})
    assert_one_line_and_exit_1(
        run_worker(web),
        f"kinto-emailer: cannot start with {web.ini}: kinto_emailer.outbox: cannot reach the "
        f'database: connection to server at "127.0.0.1", port {port} failed: Connection refused '
        "Is the server running on that host and accepting TCP/IP connections?",
    )


def test_a_burst_that_outlasts_the_lease_is_not_sent_twice(outbox, paced_smtp):
    # 15 emails claimed at once, 0.3s each: sending them all takes longer than the 2s lease.
    web = outbox.web().start()
    ids = [f"r{n:02}" for n in range(15)]
    hooked_collection(web)
    write_in_one_request(web, ids)
    assert paced_smtp.inbox.wait_started(1, timeout=30)
    outbox.worker(web).start()

    assert outbox.wait_delivered() == {"sent": 15}
    assert mailed(paced_smtp.inbox) == {id_: 1 for id_ in ids}
