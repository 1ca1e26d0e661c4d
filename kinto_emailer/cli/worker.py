"""``kinto-emailer worker --ini FILE``: deliver the outbox's emails from a process of its own.

Web processes with ``kinto_emailer.outbox_worker = false`` only write emails to the outbox;
any number of these workers, on any hosts, deliver them. SIGTERM or SIGINT: the worker
finishes what it holds within ``kinto_emailer.shutdown_timeout``, gives back what it
claimed, and exits 0.
"""

import argparse
import logging
import signal
import sys
import threading
import warnings
from typing import TYPE_CHECKING

from pyramid.exceptions import ConfigurationError

from ..outbox.backends import SHARED_OUTBOXES


if TYPE_CHECKING:
    from ..config import EmailerSettings
    from ..delivery.service import Delivery, Emailer


logger = logging.getLogger("kinto_emailer.command")


def _fail(message: str) -> int:
    print(f"kinto-emailer: {' '.join(str(message).split())}", file=sys.stderr)
    return 1


def load(ini: str) -> "Emailer":
    """The emailer of the Kinto app that ``ini`` describes, with its logging set up."""
    from pyramid.paster import bootstrap, setup_logging

    setup_logging(ini)
    # Not one of Kinto's commands: the outbox checks its table as in a web process.
    env = bootstrap(ini)
    return env["registry"].emailer


def worker(args: argparse.Namespace) -> int:
    # Kinto's start-up warnings, held back: a worker that can't start prints one line.
    with warnings.catch_warnings(record=True) as held:
        warnings.simplefilter("default")
        started = _start(args)
    if isinstance(started, int):
        return started
    for warning in held:
        warnings.showwarning(warning.message, warning.category, warning.filename, warning.lineno)
    settings, delivery = started
    runner = delivery.new_worker()
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    runner.ensure_started()
    logger.info("kinto-emailer worker: delivering from the %s outbox", settings.outbox_name)
    stop.wait()
    logger.info("kinto-emailer worker: stopping within %gs", settings.shutdown_timeout)
    return 0 if runner.stop() else 1


def _start(args: argparse.Namespace) -> "tuple[EmailerSettings, Delivery] | int":
    """The settings and delivery of the ini's app; the exit status when it can't start."""
    try:
        emailer = load(args.ini)
        settings, delivery = emailer.settings, emailer.delivery
        if delivery.outbox is None or not delivery.outbox.durable:
            raise ConfigurationError(
                f"kinto-emailer worker needs an outbox that processes share: {SHARED_OUTBOXES}"
            )
    except Exception as e:  # A bad ini, an unreachable database: one line, no traceback.
        return _fail(f"cannot start with {args.ini}: {e}")
    return settings, delivery


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kinto-emailer", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("worker", help="deliver the outbox's emails until stopped")
    run.add_argument("--ini", required=True, help="the Kinto ini file")
    run.set_defaults(handler=worker)
    args = parser.parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
