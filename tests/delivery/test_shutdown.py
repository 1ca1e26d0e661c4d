"""shutdown.py: SIGTERM takes Ctrl-C's way out, only where nothing else handles it."""

import signal
import sys
import threading

import pytest

from kinto_emailer.delivery import shutdown


@pytest.fixture
def sigterm():
    """SIGTERM at its default action for the test, restored after."""
    previous = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    yield
    signal.signal(signal.SIGTERM, previous)


def test_sigterm_raises_keyboard_interrupt_once_handled(sigterm):
    assert shutdown.handle_sigterm() is True
    with pytest.raises(KeyboardInterrupt):
        signal.raise_signal(signal.SIGTERM)


@pytest.mark.parametrize("handler", [signal.SIG_IGN, lambda signum, frame: None])
def test_a_handler_installed_by_someone_else_is_kept(sigterm, handler):
    signal.signal(signal.SIGTERM, handler)
    assert shutdown.handle_sigterm() is False
    assert signal.getsignal(signal.SIGTERM) is handler


def test_nothing_is_installed_from_another_thread(sigterm):
    installed = []
    thread = threading.Thread(target=lambda: installed.append(shutdown.handle_sigterm()))
    thread.start()
    thread.join()
    assert installed == [False]
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_nothing_is_installed_under_uwsgi(sigterm, monkeypatch):
    # uWSGI's handlers are in C: Python sees SIG_DFL there.
    monkeypatch.setitem(sys.modules, "uwsgi", object())
    assert shutdown.handle_sigterm() is False
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
