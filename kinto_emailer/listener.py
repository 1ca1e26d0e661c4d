"""From events to messages, and their hand-off once the transaction has committed."""

import logging
import threading
from email.utils import make_msgid

import transaction
from pyramid_mailer.message import Message

from . import recipients, selection, templates
from .delivery import Envelope


logger = logging.getLogger(__name__)

DEFAULT_SUBJECT = "New message"
OUTBOX_KEY = "kinto_emailer.outbox"
TIMED_OUT_KEY = "kinto_emailer.timed_out_hooks"


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


def compose(hook, context, finder, settings, where=""):
    """One email for a hook, or ``None`` when nobody is left to receive it."""
    bucket_id = context["bucket_id"]
    entries = hook.get("recipients")
    if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
        # Validation refuses these; storage may hold metadata saved before it existed.
        logger.warning("Hook %s: recipients must be a list of strings", where)
        entries = [e for e in entries if isinstance(e, str)] if isinstance(entries, list) else []
    entries = [
        templates.render(entry, context) if recipients.is_group_uri(entry) else entry
        for entry in entries
    ]
    to = recipients.expand(entries, bucket_id, finder.group)
    if len(to) > settings.max_expanded_recipients:
        logger.warning(
            "Hook %s: %d recipients dropped: kinto_emailer.max_expanded_recipients is %d",
            where,
            len(to) - settings.max_expanded_recipients,
            settings.max_expanded_recipients,
        )
        to = to[: settings.max_expanded_recipients]
    if not to:
        return None
    sender = recipients.format_address(hook.get("sender") or "") or settings.default_sender
    return Message(
        subject=templates.render_subject(hook.get("subject", DEFAULT_SUBJECT), context),
        sender=sender,
        recipients=to,
        body=templates.render(hook.get("template", ""), context),
        extra_headers={"Message-ID": make_msgid(domain="kinto-emailer")},
    )


def collect_envelopes(event, emailer):
    """Every email that ``event`` asks for, one per impacted object and matching hook."""
    settings = emailer.settings
    finder = selection.HookFinder(event.request.registry.storage)
    base = request_context(event, settings)
    # Hooks whose patterns ran out of time sit out the rest of the request.
    timed_out = event.request.bound_data.setdefault(TIMED_OUT_KEY, set())
    envelopes = []
    for impacted in event.impacted_objects:
        context = object_context(event, impacted, base)
        collection = None
        if context["resource_name"] == "collection":
            collection = impacted.get("new") or {}
            if collection.get("deleted"):
                collection = impacted.get("old") or {}
        hooks, location = finder.hooks(context["bucket_id"], context["collection_id"], collection)
        for index, hook in selection.matching_hooks(
            hooks, context, settings.regex_timeout, location, timed_out
        ):
            where = f"{location}#{index}"
            try:
                message = compose(hook, context, finder, settings, where)
            except Exception:
                # A hook can never break a write: skip it and say why.
                logger.exception("Hook %s: could not build the email", where)
                continue
            if message is not None:
                labels = {
                    "bucket_id": context["bucket_id"],
                    "collection_id": context["collection_id"],
                }
                envelopes.append(Envelope(message, where, labels))
    return envelopes


class Outbox:
    """The emails of one request, handed to delivery once its transaction has committed."""

    def __init__(self, delivery):
        self.delivery = delivery
        self.envelopes = []
        self.seen_events = []
        self.waiting = False

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
    outbox = request.bound_data.setdefault(OUTBOX_KEY, Outbox(emailer.delivery))
    if any(seen is event for seen in outbox.seen_events):
        return
    outbox.seen_events.append(event)
    try:
        if _active_transaction() is None:
            envelopes = collect_after_commit(event, emailer)
        else:
            envelopes = collect_envelopes(event, emailer)
    except Exception:
        logger.exception("Could not build emails for %r", event)
        return
    if envelopes:
        outbox.add(envelopes)
