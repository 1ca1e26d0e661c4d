"""The HTTP channels' settings: kinto-slack's ``slack.*`` (and its environment variables),
the operator's ``kinto_emailer.webhooks.<name>.*``, ``kinto_emailer.http_timeout``."""

import base64
import sys
import types

import kinto
import pytest
from pyramid.exceptions import ConfigurationError

from kinto_emailer.config import read_settings
from kinto_emailer.config.channels import slack_key
from tests.support import KINTO_SETTINGS


KEY = bytes(range(32))
SECRET = "whsec_" + base64.b64encode(KEY).decode()
OTHER_KEY = b"k" * 24
OTHER_SECRET = "whsec_" + base64.b64encode(OTHER_KEY).decode()
SLACK_URL = "https://hooks.slack.com/services/T0/B0/secret-token"


@pytest.fixture(autouse=True)
def no_slack_environment(monkeypatch):
    """The tests' own environment only: a developer's SLACK_WEBHOOK_URL must not leak in."""
    import os

    for name in list(os.environ):
        if "SLACK" in name:
            monkeypatch.delenv(name)


def channels(**settings):
    return read_settings(settings).channels


def refused(**settings):
    with pytest.raises(ConfigurationError) as error:
        read_settings(settings)
    return str(error.value)


# Slack, as kinto-slack reads it.


def test_no_slack_setting_posts_nowhere():
    read = channels()
    assert read.slack_url("#ops") is None
    assert (read.slack_default_url, read.slack_debug_dir, dict(read.webhooks)) == (None, None, {})


def test_a_channel_url_serves_the_channel_with_or_without_its_hash_and_the_default_the_rest():
    read = channels(
        **{"slack.webhook_url": SLACK_URL + "0", "slack.ops.webhook_url": SLACK_URL + "1"}
    )
    assert read.slack_url("#ops") == read.slack_url("ops") == SLACK_URL + "1"
    assert read.slack_url("#Ops") == SLACK_URL + "1"
    assert read.slack_url("#general") == SLACK_URL + "0"


def test_a_channel_with_dashes_or_dots_has_one_key_for_ini_and_environment():
    assert slack_key("#team-ops") == slack_key("team_ops") == slack_key("Team.Ops") == "team_ops"
    read = channels(**{"kinto.slack.team-ops.webhook_url": SLACK_URL})
    assert read.slack_url("#team-ops") == SLACK_URL
    assert read.slack_url("#team_ops") == SLACK_URL


def test_the_environment_gives_urls_as_kinto_slack_read_them(monkeypatch):
    monkeypatch.setenv("KINTO_SLACK_WEBHOOK_URL", SLACK_URL + "default")
    monkeypatch.setenv("KINTO_SLACK_TEAM_OPS_WEBHOOK_URL", SLACK_URL + "team")
    read = channels()
    assert read.slack_url("#team-ops") == SLACK_URL + "team"
    assert read.slack_url("#other") == SLACK_URL + "default"


def test_the_environment_wins_over_the_ini_file(monkeypatch):
    monkeypatch.setenv("KINTO_SLACK_WEBHOOK_URL", SLACK_URL + "env")
    monkeypatch.setenv("SLACK_OPS_WEBHOOK_URL", SLACK_URL + "env-ops")
    settings = {"slack.webhook_url": SLACK_URL + "ini", "slack.ops.webhook_url": SLACK_URL}
    read = channels(**settings)
    assert read.slack_default_url == SLACK_URL + "env"
    assert read.slack_url("#ops") == SLACK_URL + "env-ops"


def test_slack_webhook_url_in_the_environment_is_the_default_too(monkeypatch):
    monkeypatch.setenv("SLACK_WEBHOOK_URL", SLACK_URL)
    assert channels().slack_url("#anything") == SLACK_URL


def test_the_debug_directory_is_read():
    assert channels(**{"slack.debug_dir": "/tmp/slack"}).slack_debug_dir == "/tmp/slack"


def test_a_slack_url_that_is_not_http_is_refused_without_showing_it():
    message = refused(**{"slack.ops.webhook_url": "ftp://hooks.example.com/secret-token"})
    assert message == (
        "Setting 'slack.ops.webhook_url' must be an http:// or https:// URL with a host "
        "(got one starting ftp:)."
    )
    message = refused(**{"slack.webhook_url": "hooks.slack.com/secret-token"})
    assert "'slack.webhook_url'" in message and "secret-token" not in message


def test_urls_never_show_in_the_settings_repr():
    read = channels(**{"slack.ops.webhook_url": SLACK_URL})
    assert "secret-token" not in repr(read) and "#ops" not in repr(read)
    assert "ops" in repr(read)


# Signed webhooks: endpoints named by the operator.


def webhook(name="audit", **fields):
    return {f"kinto_emailer.webhooks.{name}.{field}": value for field, value in fields.items()}


def test_an_endpoint_has_a_url_its_decoded_keys_and_every_bucket_by_default():
    read = channels(**webhook(url="https://audit.example.com/hook", secret=SECRET))
    endpoint = read.webhooks["audit"]
    assert (endpoint.name, endpoint.url, endpoint.keys) == (
        "audit",
        "https://audit.example.com/hook",
        (KEY,),
    )
    assert endpoint.buckets is None and endpoint.allows("any")
    assert SECRET not in repr(endpoint) and "audit.example.com" not in repr(endpoint)


def test_a_secret_may_leave_out_its_base64_padding_as_the_reference_library_allows():
    unpadded = "whsec_" + base64.b64encode(b"x" * 25).decode().rstrip("=")
    read = channels(**webhook(url="https://a.example.com", secret=unpadded))
    assert read.webhooks["audit"].keys == (b"x" * 25,)


def test_several_secrets_rotate_and_buckets_reserve_an_endpoint():
    settings = webhook(url="http://127.0.0.1:9/", secret=f"{SECRET} {OTHER_SECRET}", buckets="a b")
    settings.update(webhook("other", url="https://other.example.com", secret=SECRET))
    read = channels(**{"kinto." + k: v for k, v in settings.items()})
    assert read.webhooks["audit"].keys == (KEY, OTHER_KEY)
    assert read.webhooks["audit"].buckets == {"a", "b"}
    assert read.webhooks["audit"].allows("a") and not read.webhooks["audit"].allows("c")
    assert sorted(read.webhooks) == ["audit", "other"]


@pytest.mark.parametrize(
    "secret, problem",
    [
        ("c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0", "must start with 'whsec_' (Standard Webhooks)."),
        ("whsec_not-base64!", "is not 'whsec_' followed by base64."),
        ("whsec_c2hvcnQ=", "decodes to 5 bytes: Standard Webhooks keys have 24 to 64"),
    ],
)
def test_a_bad_secret_is_refused_naming_its_key_never_showing_it(secret, problem):
    message = refused(**webhook(url="https://a.example.com", secret=f"{SECRET} {secret}"))
    assert message.startswith("Setting 'kinto_emailer.webhooks.audit.secret': secret 2 ")
    assert problem in message
    assert secret.split("_")[-1] not in message and SECRET not in message


def test_an_endpoint_without_a_url_or_a_secret_is_refused():
    assert refused(**webhook(secret=SECRET)) == (
        "Setting 'kinto_emailer.webhooks.audit.url' is missing: endpoint 'audit' needs a url "
        "and a secret ('whsec_' + base64)."
    )
    assert "'kinto_emailer.webhooks.audit.secret' is missing" in refused(
        **webhook(url="https://a.example.com", buckets="b")
    )


def test_an_endpoint_url_must_be_http_or_https():
    message = refused(**webhook(url="file:///etc/passwd", secret=SECRET))
    assert message.startswith("Setting 'kinto_emailer.webhooks.audit.url' must be an http://")


def test_a_typo_in_an_endpoint_setting_is_refused_with_the_key_it_stands_for():
    settings = {**webhook(url="https://a.example.com", secret=SECRET), **webhook(ulr="x")}
    assert refused(**settings) == (
        "Unknown setting 'kinto_emailer.webhooks.audit.ulr'; "
        "did you mean 'kinto_emailer.webhooks.audit.url'?"
    )
    assert refused(**{"kinto_emailer.webhooks.audit": "x"}) == (
        "Unknown setting 'kinto_emailer.webhooks.audit'; "
        "write 'kinto_emailer.webhooks.<name>.url' (and .secret, .buckets)"
    )


def test_an_endpoint_name_is_letters_digits_dashes_and_underscores():
    message = refused(**webhook("a.b", url="https://a.example.com", secret=SECRET))
    assert message.startswith("Settings 'kinto_emailer.webhooks.a.b.*': an endpoint's name is")


# One timeout for HTTP requests.


def test_the_http_timeout_defaults_to_fifteen_seconds_and_is_read():
    assert channels().http_timeout == 15
    assert channels(**{"kinto_emailer.http_timeout": "2.5"}).http_timeout == 2.5
    assert refused(**{"kinto_emailer.http_timeout": "0"}) == (
        "Setting 'kinto_emailer.http_timeout' must be a number of seconds greater than 0 and "
        "at most 3600, got '0'."
    )


# kinto-slack and kinto-emailer would post every message twice.


def _kinto_settings(includes):
    return {
        **KINTO_SETTINGS,
        "includes": includes,
        "storage_backend": "kinto.core.storage.memory",
        "permission_backend": "kinto.core.permission.memory",
        "cache_backend": "kinto.core.cache.memory",
    }


@pytest.mark.parametrize("includes", ["kinto_slack kinto_emailer", "kinto_emailer kinto_slack"])
def test_the_application_does_not_start_with_kinto_slack_included_too(monkeypatch, includes):
    # kinto-slack as Remote Settings has it: a plugin whose includeme subscribes its listeners.
    kinto_slack = types.ModuleType("kinto_slack")
    kinto_slack.includeme = lambda config: None
    monkeypatch.setitem(sys.modules, "kinto_slack", kinto_slack)
    with pytest.raises(ConfigurationError) as error:
        kinto.main({}, **_kinto_settings(includes))
    assert str(error.value) == (
        "Setting 'kinto.includes' lists both kinto_slack and kinto_emailer, which posts "
        "kinto-slack's hooks itself: remove kinto_slack from kinto.includes (its metadata "
        "and slack.* settings keep working), or every message would be posted twice."
    )
