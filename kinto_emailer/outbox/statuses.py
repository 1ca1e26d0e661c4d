"""One vocabulary for what becomes of an email: its status in the outbox, and the outcome
that the outcome log (``delivery.outcomes``) writes. The strings are stored and logged."""

import enum


class Status(enum.StrEnum):
    """An email's status in the outbox: stored, shown and filtered on by the status views."""

    QUEUED = "queued"
    SENDING = "sending"
    RETRYING = "retrying"
    SENT = "sent"
    FAILED = "failed"
    CANCELLED = "cancelled"
    DROPPED = "dropped"


class Outcome(enum.StrEnum):
    """What the outcome log (``delivery.outcomes``) says happened to an email: the status it
    took, in the same words, but for a retry, logged as done ("retried")."""

    QUEUED = Status.QUEUED.value
    SENT = Status.SENT.value
    RETRIED = "retried"
    FAILED = Status.FAILED.value
    CANCELLED = Status.CANCELLED.value
    DROPPED = Status.DROPPED.value


QUEUED, SENDING, SENT, RETRYING = Status.QUEUED, Status.SENDING, Status.SENT, Status.RETRYING
FAILED, CANCELLED, DROPPED = Status.FAILED, Status.CANCELLED, Status.DROPPED
#: Waiting to be sent, or being sent: what ``pending`` counts.
PENDING = (QUEUED, SENDING, RETRYING)
ENDED = (SENT, FAILED, CANCELLED, DROPPED)
