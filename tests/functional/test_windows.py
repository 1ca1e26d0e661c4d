"""Time-window digests on one PostgreSQL outbox shared by two real ``kinto start`` processes:
one email per window, whichever processes took the changes and closed it."""

import uuid

import pytest
from kinto_http import Client
from kinto_signer.generate_keypair import generate_keypair

from tests.functional.conftest import AUTH
from tests.functional.server import KintoServer
from tests.support import TemporaryDatabase, hooked, record_hook


pytestmark = [pytest.mark.functional, pytest.mark.postgresql]

WINDOW = record_hook(
    "{count} changes",
    collection_id="busy",
    digest=True,
    digest_window=3,
    template="{items}",
    item_template="{record_id}",
)
# Sent at once: once it arrives, every email asked for before it has too.
SENTINEL = record_hook(
    "flushed", collection_id="flush", template="", recipients=["flush@example.com"]
)


@pytest.fixture(scope="module")
def two_servers(smtp, tmp_path_factory):
    directory = tmp_path_factory.mktemp("windows")
    private_key, public_key = directory / "signer.key", directory / "signer.pub"
    generate_keypair(private_key, public_key)
    settings = {"kinto_emailer.outbox": "postgresql", "kinto_emailer.queue_poll_interval": "0.2"}
    with TemporaryDatabase("kinto_emailer_functional") as database:
        servers = []
        for name in ("one", "two"):
            (directory / name).mkdir()
            servers.append(
                KintoServer(
                    directory / name, database.url, smtp.port, private_key, public_key, **settings
                )
            )
        try:
            servers[0].migrate()
            for server in servers:
                server.start()
            yield servers
        finally:
            for server in servers:
                server.stop()


def test_two_processes_send_one_email_per_window(two_servers, inbox):
    bucket = f"b-{uuid.uuid4().hex[:10]}"
    one, two = (Client(server_url=server.url, auth=AUTH, bucket=bucket) for server in two_servers)
    one.create_bucket(id=bucket, data=hooked(WINDOW, SENTINEL))
    for collection in ("busy", "flush"):
        one.create_collection(id=collection)

    def write(client):
        return client.create_record(collection="busy", data={})["data"]["id"]

    def flushed():
        """Every email sent so far, once a later one has arrived."""
        count = len(inbox.messages)
        one.create_record(collection="flush", data={})
        inbox.wait_for(count + 1, timeout=30)
        messages = list(inbox.messages)
        assert messages[-1]["Subject"] == "flushed"
        inbox.clear()
        return [m for m in messages if m["Subject"] != "flushed"]

    ids = [write(one), write(two), write(one), write(two)]
    # The window is open: both processes' workers see it, neither sends it yet.
    assert flushed() == []
    (digest,) = inbox.wait_for(1, timeout=30)
    assert sorted(digest.get_content().split()) == sorted(ids)
    assert [m["Subject"] for m in flushed()] == ["4 changes"]

    # The next change opens a new window, closed by one of the two processes.
    later = write(two)
    (digest,) = inbox.wait_for(1, timeout=30)
    assert digest.get_content().split() == [later]
    assert [m["Subject"] for m in flushed()] == ["1 changes"]
