"""Operating the plugin: its heartbeat in ``/__heartbeat__``, and its metrics."""

import functools
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kinto.core.metrics import NoOpMetricsService
from kinto.plugins.statsd import StatsDService
from pyramid.config import Configurator
from pyramid.registry import Registry
from pyramid.request import Request

from ..log_values import quoted
from ..outbox import probes


if TYPE_CHECKING:
    from ..delivery.service import Delivery


logger = logging.getLogger("kinto_emailer.health")

HEARTBEAT = "emailer"
COUNTER = "emailer.{outcome}"
BUILD_TIMER = "emailer.build.seconds"
LABELS = ("bucket_id", "collection_id", "channel")
#: Seconds an SMTP check's answer is reused: heartbeat callers can't make a stream of sessions.
SMTP_CHECK_SECONDS = 5.0

# Kinto's metrics services create a metric on its first use without a lock, and both request
# threads and the delivery thread count: our calls take turns.
_metrics_lock = threading.Lock()


def _new_lock_in_child() -> None:
    global _metrics_lock
    _metrics_lock = threading.Lock()  # The parent's may have been held at the fork.


_fork_hook_registered = False


def _register_fork_hook() -> None:
    global _fork_hook_registered
    if not _fork_hook_registered:
        os.register_at_fork(after_in_child=_new_lock_in_child)
        _fork_hook_registered = True


class Heartbeat:
    """True when emails can leave: the mail server answers, the directory takes files."""

    def __init__(
        self, delivery: "Delivery", timeout: float, cache_seconds: float = SMTP_CHECK_SECONDS
    ):
        self.delivery = delivery
        self.timeout = timeout
        self.cache_seconds = cache_seconds
        self._check_lock = threading.Lock()  # Callers at the same time share one check.
        self._checked_at: float | None = None
        self._answer = False

    def __call__(self, request: Request | None = None) -> bool:
        settings = self.delivery.settings
        try:
            if self.delivery.debug_mailer is not None:
                assert settings.debug_directory is not None  # Where the debug mailer writes.
                return probes.writable(settings.debug_directory)
            outbox = self.delivery.outbox
            if outbox is not None and not outbox.heartbeat():
                return False
            # Queue-only mode: an external queue processor talks to the mail server.
            return self.delivery.worker is None or self._server_answers_lately()
        except Exception:  # A heartbeat answers, it never raises.
            logger.exception("Emailer heartbeat failed")
            return False

    def _server_answers_lately(self) -> bool:
        with self._check_lock:
            checked_at = self._checked_at
            if checked_at is None or time.monotonic() - checked_at >= self.cache_seconds:
                self._answer = self._server_answers()
                self._checked_at = time.monotonic()
            return self._answer

    def _server_answers(self) -> bool:
        transport = self.delivery.transport
        try:
            # The delivery's own connection code: TLS, verification and login apply.
            connection = transport.connect(
                timeout=self.timeout, setting="heartbeat_timeout_seconds"
            )
        except Exception as e:
            _server_failed(transport.address, e)
            return False
        try:
            return connection.noop()
        except Exception as e:
            _server_failed(transport.address, e)
            return False
        finally:
            connection.close()


def _server_failed(address: str, error: Exception) -> None:
    logger.warning(
        "Emailer heartbeat: mail server %s: %s",
        quoted(address),
        quoted(error),
        extra={"mail_server": address, "error": str(error)},
    )


class Metrics:
    """Counts and times through Kinto's metrics service (StatsD, Prometheus); without one,
    nothing. Safe from any thread."""

    def __init__(self, registry: Registry):
        _register_fork_hook()  # When the plugin starts, not at import.
        self.registry = registry
        self._resolved: tuple[Any] | None = None

    def _service(self) -> Any:
        """The metrics service, or None when there is none or it is Kinto's no-op one."""
        if self._resolved is None:
            # Looked up on first use, once plugins registered theirs: the registry doesn't
            # change once the app serves. Absent when Kinto's initialization sequence leaves
            # out ``setup_metrics``.
            service = getattr(self.registry, "metrics", None)
            self._resolved = (None if isinstance(service, NoOpMetricsService) else service,)
        return self._resolved[0]

    def count(self, outcome: str, labels: dict[str, str | None]) -> None:
        service = self._service()
        if service is None:
            return
        key = COUNTER.format(outcome=outcome)
        with _metrics_lock:
            if isinstance(service, StatsDService):
                # StatsD has no labels: its ``unique`` counts distinct values, not emails.
                service.count(key)
            else:
                service.count(key, unique=[(name, str(labels.get(name) or "")) for name in LABELS])

    def timed(self, listener: Callable[[Any], None]) -> Callable[[Any], None]:
        """``listener`` timed as ``emailer.build.seconds``: building the emails of an event."""

        @functools.wraps(listener)
        def timed_listener(event: Any) -> None:
            service = self._service()
            if service is None:
                return listener(event)
            try:
                with _metrics_lock:
                    timer = service.timer(BUILD_TIMER)
            except Exception:  # Metrics never stop an email nor break a write.
                logger.warning(
                    "Could not time the emails of a %s", type(event).__name__, exc_info=True
                )
                return listener(event)
            with timer:
                return listener(event)

        return timed_listener


def setup(config: Configurator, delivery: "Delivery") -> None:
    """Register the heartbeat: whether emails can leave."""
    heartbeats = getattr(config.registry, "heartbeats", None)
    if heartbeats is not None:  # Outside Kinto (a bare Pyramid app) there is nowhere to report.
        heartbeats[HEARTBEAT] = Heartbeat(delivery, delivery.settings.heartbeat_timeout)
