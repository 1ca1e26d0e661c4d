"""``make run``: config/kinto.ini starts a Kinto whose emails land as files under ./mail/."""

import email
import email.policy
import re
import subprocess

import pytest
import requests

from tests.functional.server import KINTO, ROOT, KintoServer


pytestmark = pytest.mark.functional

AUTH = ("alice", "secret")
EXAMPLE_INI = ROOT / "config" / "kinto.ini"


def test_example_config_writes_each_email_under_mail(tmp_path):
    server = KintoServer(tmp_path, ini=EXAMPLE_INI).start()
    try:
        url = server.url
        capabilities = requests.get(f"{url}/").json()["capabilities"]
        assert "emailer" in capabilities
        requests.put(f"{url}/buckets/blog", auth=AUTH).raise_for_status()
        # The hook of the README's "Trying it".
        hook = {
            "subject": "{resource_name} {id} {action}d",
            "template": "By {user_id}",
            "recipients": ["editors@example.com"],
        }
        requests.put(
            f"{url}/buckets/blog/collections/posts",
            json={"data": {"kinto-emailer": {"hooks": [hook]}}},
            auth=AUTH,
        ).raise_for_status()
        record = requests.post(
            f"{url}/buckets/blog/collections/posts/records",
            json={"data": {"title": "Hello"}},
            auth=AUTH,
        ).json()["data"]
        # The debug mailer writes at commit, before the response: nothing to wait for.
        emails = [
            email.message_from_bytes(f.read_bytes(), policy=email.policy.default)
            for f in (tmp_path / "mail").glob("*.eml")
        ]
        assert sorted(m["Subject"] for m in emails) == [
            "collection posts created",
            f"record {record['id']} created",
        ]
        # Basic auth's user id: a hash of the credentials, not the name "alice".
        for message in emails:
            assert re.fullmatch(r"By basicauth:[0-9a-f]{64}", message.get_content().strip())
    finally:
        server.stop()


def test_send_email_with_the_example_config_writes_the_test_email_under_mail(tmp_path):
    result = subprocess.run(
        [
            str(KINTO.parent / "kinto-send-email"),
            str(EXAMPLE_INI),
            "a@b.example",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Test email sent to a@b.example through debug files in ./mail.\n"
    [eml] = (tmp_path / "mail").glob("*.eml")
    message = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
    assert message["To"] == "a@b.example"
