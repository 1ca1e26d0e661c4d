"""Tests that need PostgreSQL are skipped when it is unreachable, and fail instead under CI."""

import functools
import os

import pytest

from tests.support import postgresql_unreachable


NEEDS_POSTGRESQL = ("postgresql", "functional")
_affected = []


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
    _affected.append(item.nodeid)
    if "CI" in os.environ:
        pytest.fail(f"{problem}, and CI is set: these tests must run", pytrace=False)
    pytest.skip(problem)


def pytest_terminal_summary(terminalreporter):
    if _affected:
        outcome = "failed (CI is set)" if "CI" in os.environ else "skipped"
        terminalreporter.write_line(
            f"{len(_affected)} postgresql/functional tests {outcome}: {_postgresql_problem()}"
        )
