"""Real ``kinto start`` and ``kinto-emailer worker`` processes, each with its log in a file."""

import atexit
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from tests.support import free_port


ROOT = Path(__file__).resolve().parents[2]
# The venv's own ``kinto``, next to the interpreter that runs the tests.
KINTO = Path(sys.executable).parent / "kinto"
EMAILER = Path(sys.executable).parent / "kinto-emailer"


def _tests_only():
    """A directory where ``tests`` is importable, and ``kinto_emailer`` is not: processes load
    ``tests.failing_plugin`` from it, and the plugin from where it is installed (the wheel)."""
    directory = Path(tempfile.mkdtemp(prefix="kinto-emailer-tests-"))
    (directory / "tests").symlink_to(ROOT / "tests", target_is_directory=True)
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    return directory


TESTS_ONLY = _tests_only()

POSTGRESQL_SETTINGS = """\
kinto.storage_backend = kinto.core.storage.postgresql
kinto.storage_url = {database_url}
kinto.permission_backend = kinto.core.permission.postgresql
kinto.permission_url = {database_url}
kinto.cache_backend = kinto.core.cache.postgresql
kinto.cache_url = {database_url}
# The failing plugin comes after kinto_emailer: it raises once the emails are built.
kinto.includes = kinto_emailer tests.failing_plugin{signer}
"""

SIGNER_SETTINGS = """\
kinto.signer.resources = /buckets/staging -> /buckets/preview -> /buckets/production
kinto.signer.ecdsa.private_key = {private_key}
kinto.signer.ecdsa.public_key = {public_key}
"""

MEMORY_SETTINGS = """\
kinto.storage_backend = kinto.core.storage.memory
kinto.permission_backend = kinto.core.permission.memory
kinto.cache_backend = kinto.core.cache.memory
kinto.includes = kinto_emailer
"""

INI_TEMPLATE = """\
[app:main]
use = egg:kinto
{backend}
kinto.userid_hmac_secret = functional-tests
multiauth.policies = basicauth
kinto.bucket_create_principals = system.Authenticated
mail.host = 127.0.0.1
mail.port = {smtp_port}
mail.default_sender = kinto@example.com
{extra}

[server:main]
use = egg:waitress#main
host = 127.0.0.1
port = %(http_port)s
threads = 8

[loggers]
keys = root, kinto_emailer

[handlers]
keys = console

[formatters]
keys = plain

[logger_root]
level = WARNING
handlers = console

[logger_kinto_emailer]
level = INFO
handlers =
qualname = kinto_emailer

[handler_console]
class = StreamHandler
args = (sys.stderr,)
formatter = plain

[formatter_plain]
format = %(asctime)s %(levelname)s [%(name)s] %(message)s
"""


class LoggedProcess:
    """A process whose output goes to ``log_path``, kept across restarts."""

    process = None
    log_path: Path

    def log(self):
        return self.log_path.read_text() if self.log_path.exists() else ""

    def wait_for_log(self, text, timeout=30):
        """Wait until ``text`` is in the log; the process may have exited meanwhile."""
        deadline = time.monotonic() + timeout
        while True:
            exited = self.process.poll() is not None  # Before reading: its log is complete.
            log = self.log()
            if text in log:
                return
            if exited or time.monotonic() > deadline:
                raise AssertionError(f"{text!r} not logged:\n{log}")
            time.sleep(0.05)

    def _spawn(self, command, env, cwd=ROOT):
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT
            )

    def kill(self):
        """SIGKILL: no handler runs, nothing is given back."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self, timeout=10):
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=timeout)


class KintoServer(LoggedProcess):
    """``kinto start`` on PostgreSQL (with kinto-signer when given its keys), or on the memory
    backends without a ``database_url``; ``settings`` are added to the ini's ``[app:main]``.

    The one way the tests start a Kinto process: functional tests, the durable mode's
    processes (test_durable.py) and ``make run``'s ini (test_example_config.py).
    """

    def __init__(
        self,
        directory,
        database_url=None,
        smtp_port=None,
        private_key=None,
        public_key=None,
        ini=None,
        **settings,
    ):
        """With ``ini``, that file as it is, run from ``directory`` (relative paths land
        there); else an ini written in ``directory``."""
        self.directory = Path(directory)
        self.log_path = self.directory / "kinto.log"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.process = None
        # The subprocess imports tests.failing_plugin, never the checkout's kinto_emailer.
        pythonpath = [str(TESTS_ONLY), *filter(None, [os.environ.get("PYTHONPATH")])]
        self.env = {**os.environ, "PYTHONPATH": os.pathsep.join(pythonpath)}
        if ini is not None:
            self.ini, self.cwd = Path(ini), self.directory
            return
        self.ini, self.cwd = self.directory / "kinto.ini", ROOT
        backend = MEMORY_SETTINGS
        if database_url is not None:
            signer = ""
            if private_key is not None:
                signer = " kinto_signer\n" + SIGNER_SETTINGS.format(
                    private_key=private_key, public_key=public_key
                )
            backend = POSTGRESQL_SETTINGS.format(database_url=database_url, signer=signer)
        extra = "\n".join(f"{key} = {value}" for key, value in settings.items())
        self.ini.write_text(INI_TEMPLATE.format(backend=backend, smtp_port=smtp_port, extra=extra))

    def migrate(self):
        result = subprocess.run(
            [str(KINTO), "migrate", "--ini", str(self.ini)],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if result.returncode != 0:
            raise RuntimeError(f"kinto migrate failed:\n{result.stdout}{result.stderr}")

    def start(self, timeout=30, ready="/"):
        """Start, and wait until ``ready`` answers 200."""
        self._spawn(
            [str(KINTO), "start", "--ini", str(self.ini), "--port", str(self.port)],
            self.env,
            self.cwd,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"kinto start exited with {self.process.returncode}:\n{self.log()}"
                )
            try:
                # The root, not the heartbeat: a test may start it while the mail server is down.
                if requests.get(f"{self.url}{ready}", timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"kinto did not answer within {timeout}s:\n{self.log()}")

    def worker(self, name="worker"):
        """A ``kinto-emailer worker`` with this server's ini, not started yet."""
        return EmailerWorker(self, name)


class EmailerWorker(LoggedProcess):
    """``kinto-emailer worker --ini`` with the ini of ``server``; its log is ``name.log``."""

    def __init__(self, server, name="worker"):
        self.server = server
        self.log_path = server.directory / f"{name}.log"

    def start(self, timeout=30):
        """Started once it logs that it delivers."""
        self._spawn([str(EMAILER), "worker", "--ini", str(self.server.ini)], self.server.env)
        self.wait_for_log("kinto-emailer worker: delivering from", timeout)
        return self
