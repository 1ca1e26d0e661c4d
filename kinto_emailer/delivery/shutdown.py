"""Stopping cleanly: the workers deliver what they hold at exit, on SIGTERM as on SIGINT.

On SIGINT, Python raises ``KeyboardInterrupt`` in the main thread: the server (``pserve``
with waitress, as ``kinto start`` runs it) returns, and ``atexit`` stops the workers. On
SIGTERM, which systemd, Docker and Kubernetes send, the default is to die at once: where
nothing else handles it, SIGTERM is made to take the same way out.
"""

import atexit
import logging
import signal
import sys
import threading
from types import FrameType

from .worker import register_fork_hook, running_workers


logger = logging.getLogger("kinto_emailer.shutdown")


def stop_workers() -> None:
    """Deliver what the workers hold, each within ``kinto_emailer.shutdown_timeout``."""
    # Stop them all first, then wait: their time limits run side by side.
    stopping = [worker for worker in running_workers() if worker.begin_stop()]
    for worker in stopping:
        worker.wait_stopped()


def _served_by_uwsgi() -> bool:
    # uWSGI handles signals in C, where Python's ``getsignal`` may not see its handlers.
    return "uwsgi" in sys.modules or "uwsgi" in sys.builtin_module_names


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    logger.info("SIGTERM received: stopping as on Ctrl-C")
    raise KeyboardInterrupt


def handle_sigterm() -> bool:
    """Make SIGTERM stop the process as SIGINT does, where nothing else handles it.

    Only from the main thread (where Python runs signal handlers), and only while SIGTERM
    has its default action: gunicorn installs its handlers in the arbiter and in each worker
    before it loads the application, or replaces ours after (``--preload``). True when the
    handler was installed.
    """
    if threading.current_thread() is not threading.main_thread() or _served_by_uwsgi():
        return False
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return False
    signal.signal(signal.SIGTERM, _on_sigterm)
    return True


_registered = False


def register_process_hooks() -> None:
    """At exit, the workers deliver what they hold; in a forked child, they start afresh.
    Once per process, when the plugin starts (not at import)."""
    global _registered
    if not _registered:
        atexit.register(stop_workers)
        register_fork_hook()
        _registered = True
