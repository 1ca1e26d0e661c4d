"""From events to messages, handed to the outbox with the request's transaction (what the
templates see of each change is ``context``'s)."""

import logging
import threading
from typing import TYPE_CHECKING, Any

import transaction
from kinto.core.storage import StorageBase

from ..delivery.handoff import Handoff
from ..hooks import patterns, selection
from ..hooks.kinds import KINDS, SLACK, WEBHOOK, HookKind
from ..log_values import quoted
from ..outbox import Email, active_transaction
from ..trace import NO_TRACE, Trace
from .context import object_context, origin, request_context
from .digests import Digests
from .email import compose
from .request_bytes import RequestBytes
from .slack import slack_message
from .webhook import webhook_message


if TYPE_CHECKING:
    from ..config import EmailerSettings
    from ..delivery.service import Emailer
    from ..hooks.events import ChangeEvent
    from ..outbox import Window

logger = logging.getLogger("kinto_emailer.listener")

PENDING_KEY = "kinto_emailer.pending"
BUDGET_KEY = "kinto_emailer.regex_budget"


def hooks_owner(
    event: "ChangeEvent", impacted: dict[str, Any]
) -> tuple[Any, Any, dict[str, Any] | None]:
    """``(bucket_id, collection_id, collection)`` whose hooks apply to an impacted object.

    ``collection`` is the changed collection's own data (the deleted version on delete);
    ``None`` for a record, whose collection is read from storage.
    """
    payload = event.payload
    if payload.get("resource_name") == "record":
        return payload.get("bucket_id"), payload.get("collection_id"), None
    collection = impacted.get("new") or {}
    if collection.get("deleted"):
        collection = impacted.get("old") or {}
    obj = impacted.get("new") or impacted.get("old") or {}
    return payload.get("bucket_id"), obj.get("id"), collection


def collect_emails(
    event: "ChangeEvent",
    emailer: "Emailer",
    digests: Digests | None = None,
    windows: "list[Window] | None" = None,
    request_bytes: RequestBytes | None = None,
    trace: Trace = NO_TRACE,
    finder: selection.HookFinder | None = None,
) -> list[Email]:
    """Every message that ``event`` asks for (emails, Slack messages, webhooks: ``Email``
    items of their channel), one per impacted object and matching hook, within
    the request's bytes (``request_bytes``; past them, emails are dropped or not built).

    Digest hooks add their objects to ``digests``, to be composed once the request's events
    are all in; without ``digests``, those of this event are composed at once, and their
    parts of time windows added to ``windows``. Nothing is queued: the caller does that.
    ``trace`` is told what became of each hook; ``finder`` reads the hooks and groups
    (by default, the request's storage as it is).
    """
    settings = emailer.settings
    own_digests = digests is None
    if digests is None:
        digests = Digests(settings, emailer.delivery.windowed)
    if request_bytes is None:
        request_bytes = RequestBytes(settings.max_request_bytes, emailer.delivery.drop)
    request = event.request
    if finder is None:
        fetched = request.bound_data.get("collections")
        finder = selection.HookFinder(request.registry.storage, fetched)
    base: dict[str, Any] | None = None
    # One budget for the patterns of the whole request: a batch's objects share it.
    budget = request.bound_data.get(BUDGET_KEY)
    if budget is None:
        budget = request.bound_data[BUDGET_KEY] = patterns.RegexBudget(settings.regex_timeout)
    emails: list[Email] = []
    for impacted in event.impacted_objects:
        owner = hooks_owner(event, impacted)
        context: dict[str, Any] | None = None
        for kind in KINDS:
            if not settings.channels.offers(kind.channel):
                continue
            hooks, location = finder.hooks(*owner, key=kind.key)
            if not hooks:
                continue
            # Built only when some hook may fire: most writes have none, and URLs cost.
            base = base or request_context(event, settings)
            context = context or object_context(event, impacted, base)
            matching = selection.matching_hooks(
                hooks, context, budget, location, trace, kind.label
            )
            for index, hook in matching:
                where = kind.where(location, index)
                try:
                    if hook.get("digest") is True and kind is not WEBHOOK:
                        digests.add(hook, context, where, kind.channel)
                        continue
                    if request_bytes.spent:
                        request_bytes.skip(where, origin(context))
                        continue
                    built = _messages(kind, hook, context, finder, settings, where, trace)
                except Exception as e:
                    # A hook can never break a write: skip it and say why.
                    logger.exception("Hook %s: could not build the %s", quoted(where), kind.noun)
                    trace.dropped(where, f"Could not build the {kind.noun}: {e}")
                    continue
                emails += request_bytes.admit(built)
    if budget.skipped > budget.reported:
        logger.warning(
            "%d hook(s) skipped: the request's regular expressions ran out of time",
            budget.skipped - budget.reported,
        )
        budget.reported = budget.skipped
    if own_digests:
        digest_emails, digest_windows = digests.take(finder, request_bytes, trace)
        emails += digest_emails
        if windows is not None:
            windows += digest_windows
    request_bytes.report_skipped()
    return emails


def _messages(
    kind: HookKind,
    hook: dict[str, Any],
    context: dict[str, Any],
    finder: selection.HookFinder,
    settings: "EmailerSettings",
    where: str,
    trace: Trace,
) -> list[Email]:
    """What one hook of ``kind`` makes of one change: emails, a Slack message, a webhook."""
    if kind is SLACK:
        return [slack_message(hook, context, where)]
    if kind is WEBHOOK:
        return [webhook_message(hook, context, where)]
    messages = compose(hook, context, finder, settings, where, trace=trace)
    return [Email(message, where, **origin(context)) for message in messages]


class RequestEmails:
    """The emails of one request: its events' emails, and its digests built once every event
    is in; handed to the outbox by ``delivery.handoff``."""

    def __init__(self, emailer: "Emailer", storage: StorageBase):
        self.settings = emailer.settings
        self.seen_events: list[ChangeEvent] = []
        self.digests = Digests(emailer.settings, emailer.delivery.windowed)
        self.storage = storage
        self.request_bytes = RequestBytes(
            emailer.settings.max_request_bytes, emailer.delivery.drop
        )
        self.handoff = Handoff(emailer.delivery, self._take_digests)

    def add(self, emails: list[Email]) -> None:
        self.handoff.add(emails)

    def call_at_commit(self) -> None:
        self.handoff.call_at_commit()

    def _take_digests(self) -> "tuple[list[Email], list[Window]]":
        if not self.digests:
            return [], []
        try:
            finder = selection.HookFinder(self.storage)
            digests, windows = self.digests.take(finder, self.request_bytes)
            self.request_bytes.report_skipped()
        except Exception:
            # Raising here would fail the commit: a hook can never break a write.
            logger.exception("Could not build the digests of the request")
            return [], []
        return digests, windows


def collect_after_commit(
    event: "ChangeEvent", emailer: "Emailer", request_bytes: RequestBytes | None = None
) -> list[Email]:
    """``collect_emails`` for an event notified once its transaction has committed.

    On PostgreSQL, storage can't be read in a committed transaction (zope.sqlalchemy refuses
    to join it): the reads run in a thread of their own, in a transaction that is discarded.
    """
    outcome: dict[str, Any] = {}

    def read() -> None:
        transaction.begin()
        try:
            outcome["windows"] = []
            outcome["emails"] = collect_emails(
                event, emailer, windows=outcome["windows"], request_bytes=request_bytes
            )
        except Exception as e:
            outcome["error"] = e
        finally:
            transaction.abort()

    reader = threading.Thread(target=read, name="kinto-emailer-after-commit")
    reader.start()
    reader.join()
    if "error" in outcome:
        raise outcome["error"]
    emailer.delivery.gather(outcome["windows"])
    return outcome["emails"]


def build_notification(event: "ChangeEvent") -> None:
    """Build the emails an event asks for and send them once its transaction commits.

    Public: another plugin may subscribe it to its own events. An event that reaches it
    twice is handled once.
    """
    request = event.request
    emailer = request.registry.emailer
    pending = request.bound_data.get(PENDING_KEY)
    if pending is None:
        pending = RequestEmails(emailer, request.registry.storage)
        request.bound_data[PENDING_KEY] = pending
    if any(seen is event for seen in pending.seen_events):
        return
    pending.seen_events.append(event)
    try:
        if active_transaction() is None:
            emails = collect_after_commit(event, emailer, pending.request_bytes)
        else:
            emails = collect_emails(event, emailer, pending.digests, pending.request_bytes)
            if pending.digests:
                pending.call_at_commit()
    except Exception:
        logger.exception("Could not build emails for a %s", type(event).__name__)
        return
    if emails:
        pending.add(emails)
