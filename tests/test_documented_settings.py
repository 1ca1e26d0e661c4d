"""The README's settings tables and the outbox's start-up messages, as the README gives them."""

import kinto
import pytest
from pyramid.exceptions import ConfigurationError

from kinto_emailer.config import read_settings
from tests.support import KINTO_SETTINGS, TemporaryDatabase, migrate, postgresql_settings


def test_the_settings_of_the_readme_tables_have_their_documented_defaults():
    settings = read_settings({})
    assert settings.smtp_exchange_timeout == 60 == 6 * settings.smtp_timeout
    assert (settings.queue_size, settings.queue_bytes) == (10000, 50_000_000)
    assert (settings.max_request_bytes, settings.max_emails_per_hour) == (5_000_000, 0)
    assert (settings.outbox, settings.outbox_worker) == ("memory", True)
    assert (settings.outbox_lease, settings.outbox_retention_days) == (60, 7)
    assert (settings.queue_poll_interval, settings.regex_timeout) == (1, 0.1)
    assert settings.hook_write_principals == settings.sender_domains == ()
    assert settings.recipient_domains == ()


def test_the_exchange_timeout_follows_smtp_timeout_when_unset():
    assert read_settings({"kinto_emailer.smtp_timeout": "3"}).smtp_exchange_timeout == 18


@pytest.mark.parametrize(
    "extra, message",
    [
        (
            {"kinto_emailer.outbox": "postgresql", "storage_backend": ""},
            "Setting 'kinto_emailer.outbox = postgresql' needs 'kinto.storage_backend = "
            "kinto.core.storage.postgresql', got 'the memory backend': the outbox is a table "
            "of the storage database.",
        ),
        (
            {
                "kinto_emailer.outbox": "postgresql",
                "storage_backend": "kinto.core.storage.postgresql",
                "mail.queue_path": "/tmp/queue",
            },
            "Settings 'kinto_emailer.outbox = postgresql' and 'mail.queue_path' exclude "
            "each other: emails wait in the database, or in the Maildir.",
        ),
        (
            {"kinto_emailer.outbox": "redis"},
            "Setting 'kinto_emailer.outbox' must be one of memory, postgresql, got 'redis'.",
        ),
    ],
)
def test_a_postgresql_outbox_needs_postgresql_storage_and_no_maildir(extra, message):
    with pytest.raises(ConfigurationError) as error:
        read_settings(extra)
    assert str(error.value) == message


@pytest.mark.postgresql
def test_a_server_without_the_outbox_table_stops_until_kinto_migrate_created_it():
    with TemporaryDatabase() as database:
        settings = {
            **KINTO_SETTINGS,
            **postgresql_settings(database.url),
            "includes": "kinto_emailer",
            "kinto_emailer.outbox": "postgresql",
        }
        # What pserve (kinto start) and paste loaders pass: no "command".
        global_config = {"__file__": "kinto.ini", "here": "."}
        with pytest.raises(ConfigurationError) as error:
            kinto.main(global_config, **settings)
        assert str(error.value) == (
            "kinto_emailer.outbox = postgresql: the database has no outbox table "
            "(version 6 needed): run 'kinto migrate' with this ini file."
        )
        migrate(settings)
        app = kinto.main(global_config, **settings)
        assert app.registry.emailer.delivery.outbox.name == "postgresql"
        app.registry.emailer.delivery.outbox.close()
