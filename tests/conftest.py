"""Tests that need PostgreSQL are skipped when it is unreachable, and fail instead under CI."""

import functools
import os

import pytest

from tests.support import postgresql_unreachable


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
