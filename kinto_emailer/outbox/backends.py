"""Which outbox the settings choose: the one place that reads ``kinto_emailer.outbox`` (and
``mail.queue_path``) to pick a backend; everything else asks the backend it gets."""

from collections.abc import Callable
from typing import TYPE_CHECKING

from pyramid_mailer.message import Message

from ..smtp.mime import Outgoing
from . import DraftCompleter, Outbox


if TYPE_CHECKING:
    from kinto.core.storage import StorageBase

    from ..config import EmailerSettings


#: Said where the outbox in use keeps no status: which ones do.
KEEPING_STATUS = "The memory and postgresql outboxes keep one (kinto_emailer.outbox)."
#: Said to a separate worker whose outbox is this process's own.
SHARED_OUTBOXES = "set 'kinto_emailer.outbox = postgresql' (or 'mail.queue_path')"


def backend(settings: "EmailerSettings") -> type[Outbox]:
    """The outbox class that ``settings`` name (``EmailerSettings.outbox_name``)."""
    name = settings.outbox_name
    if name == "postgresql":
        # Imported here: psycopg2 is needed with the PostgreSQL outbox only.
        from .postgresql import PostgreSQLOutbox

        return PostgreSQLOutbox
    if name == "maildir":
        from .maildir import MaildirOutbox

        return MaildirOutbox
    from .memory import MemoryOutbox

    return MemoryOutbox


def open_outbox(
    settings: "EmailerSettings",
    render: Callable[[Message], Outgoing],
    drafts: DraftCompleter,
    storage: "StorageBase | None" = None,
) -> Outbox:
    """The outbox that ``settings`` name, loaded from them."""
    return backend(settings).from_settings(settings, render, drafts, storage)
