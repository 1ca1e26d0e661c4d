"""What one request may queue (``kinto_emailer.max_request_bytes``): past it, the request's
emails are dropped, and those not built yet are never built."""

from collections.abc import Callable
from typing import Any

from ..outbox import Email


class RequestBytes:
    """The bytes of one request's emails; ``drop(email, reason)`` reports each one refused."""

    def __init__(self, limit: int, drop: Callable[..., None]):
        self.limit = limit
        self.drop = drop
        self.used = 0
        #: Set by the first email refused: the request's later emails are not built.
        self.spent = False
        # Hook location -> [origin, emails not built].
        self._skipped: dict[str, list[Any]] = {}

    @property
    def reason(self) -> str:
        return f"request too large (kinto_emailer.max_request_bytes = {self.limit})"

    def admit(self, emails: list[Email]) -> list[Email]:
        """The emails that fit; the others are dropped."""
        kept = []
        for email in emails:
            if self.spent or self.used + email.size > self.limit:
                self.spent = True
                self.drop(email, self.reason)
                continue
            self.used += email.size
            kept.append(email)
        return kept

    def skip(self, where: str, origin: dict[str, Any]) -> None:
        """An email of hook ``where`` not built: rendering it would cost memory and CPU for
        an email dropped anyway (50 hooks of 1 MiB, 25 records a batch: 1.2 GB a write)."""
        skipped = self._skipped.setdefault(where, [origin, 0])
        skipped[1] += 1

    def report_skipped(self) -> None:
        """One line per hook for the emails it did not build: 1,250 a batch would flood logs."""
        skipped, self._skipped = self._skipped, {}
        for where, (origin, count) in skipped.items():
            self.drop(Email(None, where, **origin), f"{self.reason}: not built", emails=count)
