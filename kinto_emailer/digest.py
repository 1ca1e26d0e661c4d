"""One email per request and hook: the objects that a ``"digest": true`` hook matched.

Each object's line is rendered when its event comes (inside the transaction, like any
email); the email itself is composed once every event of the request is in.
"""

import logging

from . import templates
from .compose import compose
from .outbox import Email


logger = logging.getLogger(__name__)

DEFAULT_ITEM_TEMPLATE = "{resource_name} {id} {action}d"
#: What an email says of the change that asked for it, in the outbox and its status views.
ORIGIN = ("bucket_id", "collection_id", "uri", "action", "event")


def origin(context: dict) -> dict:
    return {name: context.get(name) for name in ORIGIN}


class Digest:
    """The first object's placeholders, the count of objects and their lines."""

    def __init__(self, hook, context, where):
        self.hook, self.first, self.where = hook, context, where
        # What all its objects share: a field that differs between two of them is None.
        self.origin = origin(context)
        self.lines = []
        self.size = 0
        self.count = 0

    def add(self, context, max_items):
        self.count += 1
        for name, value in origin(context).items():
            if self.origin[name] != value:
                self.origin[name] = None
        # The lines stop at the limit, or once they fill a body: the rest is "and N more".
        if len(self.lines) >= max_items or self.size >= templates.MAX_BODY_LENGTH:
            return
        item_template = self.hook.get("item_template")
        if not isinstance(item_template, str):
            item_template = DEFAULT_ITEM_TEMPLATE
        line = templates.render_line(item_template, context)
        self.lines.append(line)
        self.size += len(line.encode("utf-8")) + 1

    def context(self):
        more = self.count - len(self.lines)
        items = (self.lines + [f"and {more} more"]) if more else self.lines
        return {**self.first, "count": self.count, "items": templates.Lines(items)}


class Digests:
    """The digests of one request, by hook."""

    def __init__(self, settings):
        self.settings = settings
        self.by_hook = {}

    def __bool__(self):
        return bool(self.by_hook)

    def add(self, hook, context, where):
        digest = self.by_hook.get(where)
        if digest is None:
            digest = self.by_hook[where] = Digest(hook, context, where)
        digest.add(context, self.settings.max_digest_items)

    def emails(self, finder, request_bytes=None):
        """Compose one email per digest (one per recipient if private), and forget them;
        within ``request_bytes`` (a ``RequestBytes``) when given."""
        digests, self.by_hook = self.by_hook, {}
        emails = []
        for where, digest in digests.items():
            if request_bytes is not None and request_bytes.spent:
                request_bytes.skip(where, digest.origin)
                continue
            try:
                messages = compose(digest.hook, digest.context(), finder, self.settings, where)
            except Exception:
                # A hook can never break a write: skip it and say why.
                logger.exception("Hook %s: could not build the digest", where)
                continue
            built = [Email(message, where, **digest.origin) for message in messages]
            emails += built if request_bytes is None else request_bytes.admit(built)
        return emails
