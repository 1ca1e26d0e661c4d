"""``make run``: config/kinto.ini starts a Kinto whose emails land as files under ./mail/."""

import email
import email.policy
import subprocess
import sys
import time
from pathlib import Path

import requests

from .support import free_port


ROOT = Path(__file__).resolve().parent.parent
KINTO = Path(sys.executable).parent / "kinto"
AUTH = ("alice", "secret")


def start_example_server(directory, port, timeout=30):
    log = open(directory / "kinto.log", "wb")
    process = subprocess.Popen(
        [str(KINTO), "start", "--ini", str(ROOT / "config" / "kinto.ini"), "--port", str(port)],
        cwd=directory,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            requests.get(f"http://127.0.0.1:{port}/v1/", timeout=2)
            return process
        except requests.RequestException:
            time.sleep(0.2)
    process.kill()
    raise AssertionError((directory / "kinto.log").read_text())


def test_example_config_writes_each_email_under_mail(tmp_path):
    port = free_port()
    process = start_example_server(tmp_path, port)
    try:
        url = f"http://127.0.0.1:{port}/v1"
        capabilities = requests.get(f"{url}/").json()["capabilities"]
        assert "emailer" in capabilities
        requests.put(f"{url}/buckets/blog", auth=AUTH).raise_for_status()
        hooks = {
            "hooks": [{"template": "{user_id} created {id}", "recipients": ["e@example.com"]}]
        }
        requests.put(
            f"{url}/buckets/blog/collections/posts",
            json={"data": {"kinto-emailer": hooks}},
            auth=AUTH,
        ).raise_for_status()
        record = requests.post(
            f"{url}/buckets/blog/collections/posts/records",
            json={"data": {"title": "Hello"}},
            auth=AUTH,
        ).json()["data"]
        # The debug mailer writes at commit, before the response: nothing to wait for.
        files = sorted((tmp_path / "mail").glob("*.eml"))
        bodies = [
            email.message_from_bytes(f.read_bytes(), policy=email.policy.default).get_content()
            for f in files
        ]
        assert len(files) == 2
        assert any(f"created {record['id']}" in body for body in bodies)
        assert any("created posts" in body for body in bodies)
    finally:
        process.terminate()
        process.wait(timeout=10)
