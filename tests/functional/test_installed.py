"""config/postgresql.ini as a deployment runs it: ``kinto migrate`` on an empty database, a
web process that only writes rows, a separate ``kinto-emailer worker`` that delivers them.

Under ``make test`` these are the console scripts of the virtualenv where the wheel is
installed: a file the package reads and the wheel lacks (the SQL migrations) fails here.
"""

import subprocess
import sys
from pathlib import Path

import psycopg2
import pytest
from kinto_http import Client

import kinto_emailer
from tests.functional.server import KINTO, ROOT, KintoServer
from tests.support import TemporaryDatabase, hooked, record_hook


pytestmark = pytest.mark.functional

POSTGRESQL_INI = ROOT / "config" / "postgresql.ini"


def outbox_statuses(url):
    connection = psycopg2.connect(url)
    try:
        with connection, connection.cursor() as cursor:
            cursor.execute("SELECT status, count(*) FROM kinto_emailer_outbox GROUP BY status")
            return dict(cursor.fetchall())
    finally:
        connection.close()


def test_the_processes_import_the_plugin_that_the_tests_import(tmp_path):
    # As a console script does: its own directory first on sys.path, then the environment
    # that the tests give kinto start and kinto-emailer worker.
    script = tmp_path / "where.py"
    script.write_text("import kinto_emailer\nprint(kinto_emailer.__file__)\n")
    env = KintoServer(tmp_path).env
    result = subprocess.run(
        [sys.executable, str(script)], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert Path(result.stdout.strip()).resolve() == Path(kinto_emailer.__file__).resolve()
    assert KINTO.parent == Path(sys.executable).parent


def test_postgresql_ini_migrates_an_empty_database_and_a_separate_worker_delivers(
    tmp_path, smtp, inbox, processes
):
    with TemporaryDatabase("kinto_emailer_installed") as database:
        web = processes(KintoServer(tmp_path, ini=POSTGRESQL_INI))
        # The environment overrides what the file names, as for any Kinto setting.
        web.env.update(
            KINTO_STORAGE_URL=database.url,
            KINTO_PERMISSION_URL=database.url,
            KINTO_CACHE_URL=database.url,
            MAIL_HOST="127.0.0.1",
            MAIL_PORT=str(smtp.port),
        )
        web.migrate()
        web.start()
        client = Client(server_url=web.url, auth=("alice", "secret"))
        client.create_bucket(id="b")
        hook = record_hook("{id} created", template="Record {id}")
        client.create_collection(id="c", bucket="b", data=hooked(hook))
        client.create_record(id="r1", bucket="b", collection="c", data={})
        # outbox_worker = false: the web process wrote the row and sends nothing.
        assert outbox_statuses(database.url) == {"queued": 1}
        assert inbox.messages == []

        worker = processes(web.worker())
        worker.start()
        [message] = inbox.expect(1, timeout=30)
        assert message["Subject"] == "r1 created"
        processes.stop_all()  # Before the database goes.
        assert outbox_statuses(database.url) == {"sent": 1}
