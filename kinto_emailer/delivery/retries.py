"""What a failed attempt leads to, for every channel: given up (a permanent failure, or the
last attempt), given back to the outbox at shutdown, or tried again after a backoff."""

import random
from collections.abc import Iterable
from typing import TYPE_CHECKING

from ..outbox import Email, Outbox
from .outcomes import FAILED, RETRIED, Report


if TYPE_CHECKING:
    from ..config import EmailerSettings


def backoff(settings: "EmailerSettings", attempts: int) -> float:
    """Seconds before the next of ``attempts`` attempts: exponential, within the settings."""
    delay = min(settings.retry_max_delay, settings.retry_base_delay * 2 ** (attempts - 1))
    # Jitter: processes that failed together don't all come back at the same instant.
    return random.uniform(delay / 2, delay)


def after_failure(
    settings: "EmailerSettings",
    outbox: Outbox,
    report: Report,
    email: Email,
    failure: Exception,
    *,
    permanent: bool,
    stopping: bool,
    retry_after: float | None = None,
    hide: Iterable[str] = (),
) -> None:
    """One more attempt of ``email`` failed with ``failure``. ``stopping``: the process is
    past its stop's deadline, the next process tries it. ``retry_after``: the receiver's
    wish, kept within the retry bounds (never past ``retry_max_delay``). ``hide``: addresses
    kept out of the reason, besides the email's own."""
    email.attempts += 1
    if permanent or email.attempts >= settings.retry_max_attempts:
        given_up = "permanent" if permanent else f"gave up after {email.attempts} attempt(s)"
        reason = f"{given_up}: {failure}"
        report(FAILED, email, reason, hide=hide, attempts=email.attempts)
        outbox.failed(email, report.redact(reason, email, hide))
    elif stopping:
        email.attempts -= 1  # Not an attempt of its own: the next process tries it.
        outbox.release([email])
    else:
        delay = backoff(settings, email.attempts)
        if retry_after is not None:
            delay = max(delay, min(retry_after, settings.retry_max_delay))
        attempt = f"{email.attempts}/{settings.retry_max_attempts}"
        report(RETRIED, email, failure, hide=hide, attempt=attempt, retry_in=f"{delay:.2f}s")
        outbox.retry(email, delay, report.redact(str(failure), email, hide))
