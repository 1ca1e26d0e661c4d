"""A request's emails into the outbox: the one place that joins the request's transaction.

Where the outbox takes part in the transaction (``Outbox.transactional``), the emails are put
just before it commits: committed with the change, or not at all; they are reported once it
has committed. Elsewhere they are handed over once it has committed, never for a change that
was rolled back.
"""

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import transaction

from ..outbox import Email, Window, active_transaction


if TYPE_CHECKING:
    from .service import Delivery

logger = logging.getLogger("kinto_emailer.listener")

#: What is only known once every event of the request is in (digests): called before commit.
Completer = Callable[[], tuple[list[Email], list[Window]]]


def _nothing_more() -> tuple[list[Email], list[Window]]:
    return [], []


class Handoff:
    """The emails of one request, until its transaction ends."""

    def __init__(self, delivery: "Delivery", complete: Completer = _nothing_more):
        self.delivery = delivery
        self.complete = complete
        self.emails: list[Email] = []
        self.windows: list[Window] = []
        # The transaction whose commit calls us back.
        self.hooked: transaction.interfaces.ITransaction | None = None

    def add(self, emails: list[Email]) -> None:
        current = active_transaction()
        if current is None:
            # Events notified after commit (review events): the data is already stored.
            self.delivery.put(emails)
            return
        self.emails.extend(emails)
        self.call_at_commit(current)

    def call_at_commit(self, current: "transaction.interfaces.ITransaction | None" = None) -> None:
        current = current or active_transaction()
        if current is None or self.hooked is current:
            return
        self.hooked = current
        current.addBeforeCommitHook(self._before_commit)
        if not self.delivery.transactional:
            current.addAfterCommitHook(self._after_commit)

    def _before_commit(self) -> None:
        emails, windows = self.complete()  # Every event is in, and storage still readable.
        self.emails.extend(emails)
        self.windows.extend(windows)
        if not self.delivery.transactional:
            return
        # In the transaction: committed with the change, or not at all.
        current = self.hooked
        emails, self.emails, self.hooked = self.emails, [], None
        windows, self.windows = self.windows, []
        try:
            refused = self.delivery.store(emails)
            self.delivery.gather(windows)
        except Exception:
            # The commit fails with it, and nothing else would roll the change back:
            # its locks would be held until this thread serves another request.
            transaction.abort()
            raise
        if emails and current is not None:
            # Rows of the request's transaction: they exist, dropped ones too, once it commits.

            def report_at_commit(committed: bool) -> None:
                if committed:
                    self.delivery.report_stored(emails, refused or [])

            current.addAfterCommitHook(report_at_commit)

    def _after_commit(self, success: bool) -> None:
        emails, self.emails, self.hooked = self.emails, [], None
        windows, self.windows = self.windows, []
        if success:
            self.delivery.put(emails)
            self.delivery.gather(windows)
        elif emails or windows:
            logger.info("Transaction aborted: %d email(s) not sent", len(emails) + len(windows))
