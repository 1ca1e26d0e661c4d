"""From events to messages, and their hand-off once the transaction has committed."""

import logging
import threading

import transaction

from . import selection, templates
from .compose import compose
from .delivery import Envelope
from .digest import Digests


logger = logging.getLogger(__name__)

OUTBOX_KEY = "kinto_emailer.outbox"
BUDGET_KEY = "kinto_emailer.regex_budget"


def event_name(event):
    cls = type(event)
    name = f"{cls.__module__}.{cls.__qualname__}"
    # Emails about ordinary changes are sent after commit: they carry the name people filter on.
    return selection.KINTO_EVENT if name == selection.KINTO_EVENT_SYNONYM else name


def request_context(event, settings):
    request = event.request
    try:
        root_url = request.route_url("hello")
    except Exception:  # Route-less requests, such as a plugin's own script.
        root_url = request.application_url + "/"
    return {
        "user_id": event.payload.get("user_id") or request.prefixed_userid,
        "root_url": root_url,
        "client_address": request.client_addr,
        "user_agent": request.user_agent,
        "event": event_name(event),
        "settings": settings.exposed_settings,
    }


def object_context(event, impacted, base):
    """Placeholders for one impacted object: ids come from the object, never the payload.

    Kinto merges the events of a batch, so the payload's ids are those of the first object.
    """
    payload = event.payload
    new, old = impacted.get("new") or {}, impacted.get("old") or {}
    obj = new or old
    context = {
        # A plugin's event may carry fields of its own: they render when present.
        **{k: v for k, v in payload.items() if isinstance(v, str | int | float)},
        **base,
        "resource_name": payload.get("resource_name"),
        "action": payload.get("action"),
        "bucket_id": payload.get("bucket_id"),
        "timestamp": obj.get("last_modified", payload.get("timestamp")),
        "id": obj.get("id"),
        "new": new,
        "old": old,
    }
    for name in templates.EVENT_PLACEHOLDERS:
        if getattr(event, name, None) is not None:
            context[name] = getattr(event, name)
    bid = context["bucket_id"]
    if context["resource_name"] == "record":
        cid = context["collection_id"] = payload.get("collection_id")
        context["record_id"] = obj.get("id")
        context["uri"] = f"/buckets/{bid}/collections/{cid}/records/{obj.get('id')}"
    else:
        context.pop("record_id", None)
        context["collection_id"] = obj.get("id")
        context["uri"] = f"/buckets/{bid}/collections/{obj.get('id')}"
    return context


def _hooks_owner(event, impacted):
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


def collect_envelopes(event, emailer, digests=None):
    """Every email that ``event`` asks for, one per impacted object and matching hook.

    Digest hooks add their objects to ``digests``, to be composed once the request's events
    are all in; without ``digests``, those of this event are composed at once.
    """
    settings = emailer.settings
    own_digests = digests is None
    if own_digests:
        digests = Digests(settings)
    request = event.request
    finder = selection.HookFinder(request.registry.storage, request.bound_data.get("collections"))
    base = None
    # One budget for the patterns of the whole request: a batch's objects share it.
    budget = request.bound_data.get(BUDGET_KEY)
    if budget is None:
        budget = request.bound_data[BUDGET_KEY] = selection.RegexBudget(settings.regex_timeout)
    envelopes = []
    for impacted in event.impacted_objects:
        hooks, location = finder.hooks(*_hooks_owner(event, impacted))
        if not hooks:
            continue
        # Built only when some hook may fire: most writes have none, and URLs cost.
        base = base or request_context(event, settings)
        context = object_context(event, impacted, base)
        for index, hook in selection.matching_hooks(hooks, context, budget, location):
            where = f"{location}#{index}"
            labels = {"bucket_id": context["bucket_id"], "collection_id": context["collection_id"]}
            try:
                if hook.get("digest") is True:
                    digests.add(hook, context, where, labels)
                    continue
                messages = compose(hook, context, finder, settings, where)
            except Exception:
                # A hook can never break a write: skip it and say why.
                logger.exception("Hook %s: could not build the email", where)
                continue
            envelopes += [Envelope(message, where, labels) for message in messages]
    if budget.skipped > budget.reported:
        logger.warning(
            "%d hook(s) skipped: the request's regular expressions ran out of time",
            budget.skipped - budget.reported,
        )
        budget.reported = budget.skipped
    if own_digests:
        envelopes += digests.envelopes(finder)
    return envelopes


class Outbox:
    """The emails of one request, handed to delivery once its transaction has committed."""

    def __init__(self, emailer, storage):
        self.delivery = emailer.delivery
        self.envelopes = []
        self.seen_events = []
        self.waiting = False
        self.digests = Digests(emailer.settings)
        self.storage = storage
        self.digests_due = None  # The transaction whose commit composes the digests.

    def compose_digests_before_commit(self):
        """Compose the digests at commit time: every event is in, storage is still readable."""
        current = _active_transaction()
        if not self.digests or current is None or self.digests_due is current:
            return
        self.digests_due = current
        current.addBeforeCommitHook(self._before_commit)

    def _before_commit(self):
        self.digests_due = None
        try:
            envelopes = self.digests.envelopes(selection.HookFinder(self.storage))
        except Exception:
            # Raising here would fail the commit: a hook can never break a write.
            logger.exception("Could not build the digests of the request")
            return
        if envelopes:
            self.add(envelopes)

    def add(self, envelopes):
        if self.waiting:
            self.envelopes.extend(envelopes)
            return
        current = _active_transaction()
        if current is None:
            # Events notified after commit (review events): the data is already stored.
            self.delivery.deliver(envelopes)
            return
        self.envelopes.extend(envelopes)
        self.waiting = True
        current.addAfterCommitHook(self._after_commit)

    def _after_commit(self, success):
        envelopes, self.envelopes, self.waiting = self.envelopes, [], False
        if success:
            self.delivery.deliver(envelopes)
        elif envelopes:
            logger.info("Transaction aborted: %d email(s) not sent", len(envelopes))


def _active_transaction():
    try:
        current = transaction.get()
    except Exception:  # An explicit transaction manager outside a transaction.
        return None
    return current if current.status == transaction._transaction.Status.ACTIVE else None


def collect_after_commit(event, emailer):
    """``collect_envelopes`` for an event notified once its transaction has committed.

    On PostgreSQL, storage can't be read in a committed transaction (zope.sqlalchemy refuses
    to join it): the reads run in a thread of their own, in a transaction that is discarded.
    """
    outcome = {}

    def read():
        transaction.begin()
        try:
            outcome["envelopes"] = collect_envelopes(event, emailer)
        except Exception as e:
            outcome["error"] = e
        finally:
            transaction.abort()

    reader = threading.Thread(target=read, name="kinto-emailer-after-commit")
    reader.start()
    reader.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["envelopes"]


def build_notification(event):
    """Build the emails an event asks for and send them once its transaction commits.

    Public: another plugin may subscribe it to its own events. An event that reaches it
    twice is handled once.
    """
    request = event.request
    emailer = request.registry.emailer
    outbox = request.bound_data.get(OUTBOX_KEY)
    if outbox is None:
        outbox = request.bound_data[OUTBOX_KEY] = Outbox(emailer, request.registry.storage)
    if any(seen is event for seen in outbox.seen_events):
        return
    outbox.seen_events.append(event)
    try:
        if _active_transaction() is None:
            envelopes = collect_after_commit(event, emailer)
        else:
            envelopes = collect_envelopes(event, emailer, outbox.digests)
            outbox.compose_digests_before_commit()
    except Exception:
        logger.exception("Could not build emails for %r", event)
        return
    if envelopes:
        outbox.add(envelopes)
