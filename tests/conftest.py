"""Tests that need PostgreSQL are skipped when it is unreachable, and fail instead under CI."""

import functools
import os
from pathlib import Path

import pytest

import kinto_emailer
from tests.http_receiver import Receiver
from tests.support import postgresql_unreachable


CHECKOUT = Path(__file__).resolve().parents[1]


def pytest_configure(config):
    # ``make test`` runs on the wheel: a test that imported the checkout would pass with a
    # file missing from it.
    if not os.environ.get("KINTO_EMAILER_TEST_INSTALLED"):
        return
    imported = Path(kinto_emailer.__file__).resolve()
    if imported.is_relative_to(CHECKOUT / "kinto_emailer"):
        raise pytest.UsageError(
            f"KINTO_EMAILER_TEST_INSTALLED is set but kinto_emailer was imported from the "
            f"checkout ({imported}): run pytest with --import-mode=append and PYTHONSAFEPATH=1 "
            "from the test virtualenv, as make test does."
        )


NEEDS_POSTGRESQL = ("postgresql", "functional")


@functools.cache
def _postgresql_problem():
    return postgresql_unreachable()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    # Before any fixture: nothing tries to create a database on a server that isn't there.
    if not any(item.get_closest_marker(name) for name in NEEDS_POSTGRESQL):
        return
    problem = _postgresql_problem()
    if not problem:
        return
    if "CI" in os.environ:
        pytest.fail(f"{problem}, and CI is set: these tests must run", pytrace=False)
    pytest.skip(problem)


def pytest_terminal_summary(terminalreporter):
    # Counted from the reports: with pytest-xdist the tests ran in other processes.
    problem = _postgresql_problem()
    if not problem:
        return
    stats = terminalreporter.stats
    reports = [r for key in ("skipped", "error") for r in stats.get(key, [])]
    affected = [r for r in reports if r.when == "setup" and problem in str(r.longrepr)]
    if affected:
        outcome = "failed (CI is set)" if "CI" in os.environ else "skipped"
        terminalreporter.write_line(
            f"{len(affected)} postgresql/functional tests {outcome}: {problem}"
        )


@pytest.fixture
def receiver():
    """A loopback HTTP server that records what Slack messages and webhooks post to it."""
    receiver = Receiver()
    yield receiver
    receiver.stop()
