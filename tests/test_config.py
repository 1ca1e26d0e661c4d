"""The config package and includeme: every setting read once, bad ones stop start-up by name."""

import subprocess
import sys

import kinto
import pytest
from kinto.core.testing import get_user_headers
from pyramid import testing
from pyramid.exceptions import ConfigurationError
from webtest import TestApp

import kinto_emailer
from kinto_emailer.config import DEFAULT_SENDER, ROWS, read_settings
from tests.support import KINTO_SETTINGS


@pytest.fixture
def config_with():
    """Run ``includeme`` on a bare Pyramid configurator with the given settings."""
    configs = []

    def include(settings):
        config = testing.setUp(settings=settings)
        configs.append(config)
        kinto_emailer.includeme(config)
        return config

    yield include
    for _ in configs:
        testing.tearDown()


@pytest.mark.parametrize(
    "key, value, message",
    [
        (
            "mail.port",
            "twenty-five",
            "Setting 'mail.port' must be a whole number from 1 to 65535, got 'twenty-five'.",
        ),
        (
            "mail.debug",
            "yes",
            "Setting 'mail.debug' must be a whole number from 0 to 2, got 'yes'.",
        ),
        ("mail.tls", "maybe", "Setting 'mail.tls' must be true or false, got 'maybe'."),
        ("mail.ssl", "2", "Setting 'mail.ssl' must be true or false, got '2'."),
        (
            "mail.debug_mailer",
            "sometimes",
            "Setting 'mail.debug_mailer' must be true or false, got 'sometimes'.",
        ),
        (
            "kinto_emailer.max_hooks",
            "many",
            "Setting 'kinto_emailer.max_hooks' must be a whole number from 1 to 1000000, "
            "got 'many'.",
        ),
        (
            "kinto_emailer.max_recipients",
            "0",
            "Setting 'kinto_emailer.max_recipients' must be a whole number from 1 to 1000000, "
            "got '0'.",
        ),
        (
            "kinto_emailer.regex_timeout",
            "-1",
            "Setting 'kinto_emailer.regex_timeout' must be a number of seconds greater than 0 "
            "and at most 10, got '-1'.",
        ),
    ],
)
def test_includeme_refuses_a_bad_setting_naming_its_key(config_with, key, value, message):
    with pytest.raises(ConfigurationError) as error:
        config_with({key: value})
    assert str(error.value) == message


SECONDS_UP_TO_AN_HOUR = "a number of seconds greater than 0 and at most 3600"


@pytest.mark.parametrize(
    "key, value, message",
    [
        # Issue 24's numbers that started fine and broke later.
        ("kinto_emailer.smtp_timeout", "nan", f"must be {SECONDS_UP_TO_AN_HOUR}, got 'nan'."),
        ("kinto_emailer.smtp_timeout", "inf", f"must be {SECONDS_UP_TO_AN_HOUR}, got 'inf'."),
        (
            "kinto_emailer.outbox_lease",
            "1e308",
            "must be a number of seconds greater than 0 and at most 86400, got '1e308'.",
        ),
        (
            "kinto_emailer.regex_timeout",
            "inf",
            "must be a number of seconds greater than 0 and at most 10, got 'inf'.",
        ),
        (
            "kinto_emailer.regex_timeout",
            "nan",
            "must be a number of seconds greater than 0 and at most 10, got 'nan'.",
        ),
        (
            "kinto_emailer.queue_poll_interval",
            "1e-9",
            "must be a number of seconds from 0.01 to 3600, got '1e-9'.",
        ),
        ("mail.port", "0", "must be a whole number from 1 to 65535, got '0'."),
        ("mail.port", "99999", "must be a whole number from 1 to 65535, got '99999'."),
        # What int() and float() would read, or fail on with a bare ValueError.
        ("mail.port", "²", "must be a whole number from 1 to 65535, got '²'."),
        ("mail.port", "2_5", "must be a whole number from 1 to 65535, got '2_5'."),
        ("mail.port", "25.0", "must be a whole number from 1 to 65535, got '25.0'."),
        ("mail.port", "9" * 5000, f"must be a whole number from 1 to 65535, got '{'9' * 5000}'."),
        ("kinto_emailer.smtp_timeout", "-1", f"must be {SECONDS_UP_TO_AN_HOUR}, got '-1'."),
        ("kinto_emailer.smtp_timeout", "abc", f"must be {SECONDS_UP_TO_AN_HOUR}, got 'abc'."),
        ("kinto_emailer.smtp_timeout", "1e999", f"must be {SECONDS_UP_TO_AN_HOUR}, got '1e999'."),
        ("kinto_emailer.smtp_timeout", "١", f"must be {SECONDS_UP_TO_AN_HOUR}, got '١'."),
        (
            "kinto_emailer.retry_max_attempts",
            "1001",
            "must be a whole number from 1 to 1000, got '1001'.",
        ),
        (
            "kinto_emailer.outbox_retention_days",
            "1e308",
            "must be a number of days greater than 0 and at most 3650, got '1e308'.",
        ),
        (
            "kinto_emailer.queue_bytes",
            "1" + "0" * 19,
            "must be a whole number of bytes from 1 to 1000000000000, got '10000000000000000000'.",
        ),
        (
            "heartbeat_timeout_seconds",
            "inf",
            f"must be {SECONDS_UP_TO_AN_HOUR}, got 'inf'.",
        ),
    ],
)
def test_includeme_refuses_a_number_out_of_its_range_naming_key_and_range(
    config_with, key, value, message
):
    with pytest.raises(ConfigurationError) as error:
        config_with({key: value})
    assert str(error.value) == f"Setting {key!r} {message}"


NUMBERS = sorted(key for key, row in ROWS.items() if row.metadata["range"])


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "-1", "1e308", "abc", "²", "0x10"])
@pytest.mark.parametrize("key", NUMBERS)
def test_every_numeric_setting_refuses_a_bad_number_with_its_range(key, value):
    with pytest.raises(ConfigurationError) as error:
        read_settings({key: value})
    assert (
        str(error.value)
        == f"Setting {key!r} must be {ROWS[key].metadata['range']}, got {value!r}."
    )


def test_the_numeric_settings_are_those_of_the_table_with_a_range():
    assert len(NUMBERS) == 23 and "mail.port" in NUMBERS and "mail.debug" in NUMBERS


@pytest.mark.parametrize(
    "key, value, read",
    [
        ("mail.port", "65535", 65535),
        ("mail.port", "1", 1),
        ("kinto_emailer.queue_poll_interval", "0.01", 0.01),
        ("kinto_emailer.regex_timeout", "10", 10),
        ("kinto_emailer.smtp_timeout", ".5", 0.5),
        ("kinto_emailer.outbox_lease", "8.64e4", 86400),
        ("kinto_emailer.max_emails_per_hour", "0", 0),
        # Empty is unset: the default.
        ("kinto_emailer.smtp_timeout", "", 10),
        ("kinto_emailer.smtp_exchange_timeout", "", None),
    ],
)
def test_a_number_at_the_edge_of_its_range_is_read(key, value, read):
    assert getattr(read_settings({key: value}), ROWS[key].name) == read


@pytest.mark.parametrize(
    "key, message",
    [
        (
            "kinto_emailer.queue_sise",
            "Unknown setting 'kinto_emailer.queue_sise'; did you mean 'kinto_emailer.queue_size'?",
        ),
        # As written in an ini file: Kinto's prefix is not part of the name.
        (
            "kinto.kinto_emailer.smtp_timout",
            "Unknown setting 'kinto_emailer.smtp_timout'; "
            "did you mean 'kinto_emailer.smtp_timeout'?",
        ),
        (
            "kinto_emailer.frobnicate",
            "Unknown setting 'kinto_emailer.frobnicate'; kinto-emailer has no such setting.",
        ),
    ],
)
def test_includeme_refuses_an_unknown_plugin_setting(config_with, key, message):
    with pytest.raises(ConfigurationError) as error:
        config_with({key: "1"})
    assert str(error.value) == message


@pytest.mark.parametrize("key", sorted(ROWS))
def test_every_setting_of_the_table_is_known_and_its_default_valid(key):
    row = ROWS[key]
    given = read_settings({key: row.metadata["default"]})
    assert getattr(given, row.name) == getattr(read_settings({}), row.name)


def test_settings_of_other_packages_are_left_alone():
    settings = read_settings({"mail.sendmail_app": "/usr/sbin/sendmail", "kinto_signer.x": "1"})
    assert settings.smtp_port == 25


@pytest.mark.parametrize("value", ["not-an-address", "Kinto <kinto>", "a@b.c\r\nBcc: x@y.z"])
def test_includeme_refuses_a_default_sender_that_is_not_an_address(config_with, value):
    with pytest.raises(ConfigurationError) as error:
        config_with({"mail.default_sender": value})
    assert str(error.value) == (
        "Setting 'mail.default_sender' must be an email address such as "
        f"'Kinto <kinto@example.com>', got {value!r}."
    )


def test_a_prefixed_setting_is_read_as_its_plain_name():
    settings = read_settings({"kinto.kinto_emailer.queue_size": "7", "kinto.mail.port": "2525"})
    assert (settings.queue_size, settings.smtp_port) == (7, 2525)


def test_the_plain_name_wins_over_the_prefixed_one():
    # Kinto writes the plain name last, after applying its environment variables.
    settings = read_settings(
        {"kinto.kinto_emailer.queue_size": "7", "kinto_emailer.queue_size": 9}
    )
    assert settings.queue_size == 9


def test_includeme_refuses_tls_together_with_ssl(config_with):
    with pytest.raises(ConfigurationError) as error:
        config_with({"mail.tls": "true", "mail.ssl": "true"})
    assert str(error.value) == (
        "Settings 'mail.tls' and 'mail.ssl' exclude each other: "
        "use 'mail.ssl' for SMTPS (port 465) or 'mail.tls' for STARTTLS."
    )


def test_the_application_does_not_start_with_a_bad_setting():
    settings = {**KINTO_SETTINGS, "includes": "kinto_emailer", "mail.port": "smtp"}
    settings["storage_backend"] = "kinto.core.storage.memory"
    settings["permission_backend"] = "kinto.core.permission.memory"
    settings["cache_backend"] = "kinto.core.cache.memory"
    with pytest.raises(ConfigurationError, match="'mail.port'"):
        kinto.main({}, **settings)


def _kinto_settings(**extra):
    settings = {**KINTO_SETTINGS, "includes": "kinto_emailer"}
    settings["storage_backend"] = "kinto.core.storage.memory"
    settings["permission_backend"] = "kinto.core.permission.memory"
    settings["cache_backend"] = "kinto.core.cache.memory"
    return {**settings, **extra}


def test_the_application_does_not_start_with_an_unknown_prefixed_setting():
    # Kinto hands both names over: the key is named once, without the prefix.
    settings = _kinto_settings(**{"kinto.kinto_emailer.queue_sise": "5"})
    with pytest.raises(ConfigurationError) as error:
        kinto.main({}, **settings)
    assert str(error.value) == (
        "Unknown setting 'kinto_emailer.queue_sise'; did you mean 'kinto_emailer.queue_size'?"
    )


def test_the_application_reads_prefixed_settings_and_kintos_heartbeat_timeout():
    settings = _kinto_settings(
        **{"kinto.kinto_emailer.queue_size": "5", "heartbeat_timeout_seconds": "3"}
    )
    emailer_settings = kinto.main({}, **settings).registry.emailer.settings
    assert (emailer_settings.queue_size, emailer_settings.heartbeat_timeout) == (5, 3)


def test_read_settings_defaults():
    settings = read_settings({})
    assert settings.default_sender == DEFAULT_SENDER == "kinto@localhost"
    assert settings.queue_path is None
    assert settings.debug_directory is None
    assert settings.max_hooks == 50
    assert settings.regex_timeout == 0.1


def test_read_settings_reads_the_pyramid_mailer_names(tmp_path):
    settings = read_settings(
        {
            "mail.default_sender": "Kinto <kinto@example.com>",
            "mail.queue_path": str(tmp_path),
            "mail.port": "2525",
            "mail.tls": "true",
        }
    )
    assert settings.default_sender == "Kinto <kinto@example.com>"
    assert settings.queue_path == str(tmp_path)


def test_debug_mailer_writes_under_mail_by_default():
    assert read_settings({"mail.debug_mailer": "true"}).debug_directory == "./mail"


def test_debug_mailer_honours_top_level_directory(tmp_path):
    settings = read_settings(
        {"mail.debug_mailer": "true", "mail.top_level_directory": str(tmp_path)}
    )
    assert settings.debug_directory == str(tmp_path)


def test_debug_mailer_false_sends_for_real():
    assert read_settings({"mail.debug_mailer": "false"}).debug_directory is None


def test_only_three_settings_are_exposed_to_templates():
    settings = read_settings(
        {
            "project_name": "kinto",
            "project_version": "26",
            "url": "https://kinto.example.com",
            "mail.password": "secret",
            "userid_hmac_secret": "secret",
        }
    )
    assert settings.exposed_settings == {
        "project_name": "kinto",
        "project_version": "26",
        "url": "https://kinto.example.com",
    }


def test_includeme_subscribes_the_emailer_to_a_real_app():
    settings = {**KINTO_SETTINGS, "includes": "kinto_emailer"}
    settings["storage_backend"] = "kinto.core.storage.memory"
    settings["permission_backend"] = "kinto.core.permission.memory"
    settings["cache_backend"] = "kinto.core.cache.memory"
    settings["multiauth.policies"] = "basicauth"
    settings["mail.default_sender"] = "team@example.com"
    app = TestApp(kinto.main({}, **settings))
    emailer = app.app.registry.emailer
    assert emailer.settings.default_sender == "team@example.com"
    capability = app.get("/v1/", headers=get_user_headers("alice")).json["capabilities"]["emailer"]
    assert capability["version"] == kinto_emailer.__version__


@pytest.mark.functional
def test_the_plugin_loads_without_psycopg2_outside_the_postgresql_outbox():
    # In a process of its own: this one has psycopg2 loaded already.
    code = (
        "import sys; sys.modules['psycopg2'] = None\n"
        "import kinto_emailer, kinto_emailer.compose.listener, kinto_emailer.web.emails\n"
        "import kinto_emailer.cli.worker\n"
        "from kinto_emailer.compose import drafts\n"
        "from kinto_emailer.delivery.service import Delivery\n"
        "from kinto_emailer.config import read_settings\n"
        "Delivery(read_settings({}), drafts)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
