"""One email per request and hook: the objects that a ``"digest": true`` hook matched.

Each object's line is rendered when its event comes (inside the transaction, like any
email); the email itself is composed once every event of the request is in.
"""

import logging

from . import templates
from .compose import compose
from .delivery import Envelope


logger = logging.getLogger(__name__)

DEFAULT_ITEM_TEMPLATE = "{resource_name} {id} {action}d"


class Digest:
    """The first object's placeholders, the count of objects and their lines."""

    def __init__(self, hook, context, where, labels):
        self.hook, self.first, self.where, self.labels = hook, context, where, labels
        self.lines = []
        self.size = 0
        self.count = 0

    def add(self, context, max_items):
        self.count += 1
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

    def add(self, hook, context, where, labels):
        digest = self.by_hook.get(where)
        if digest is None:
            digest = self.by_hook[where] = Digest(hook, context, where, labels)
        digest.add(context, self.settings.max_digest_items)

    def envelopes(self, finder):
        """Compose one email per digest (one per recipient if private), and forget them."""
        digests, self.by_hook = self.by_hook, {}
        envelopes = []
        for where, digest in digests.items():
            try:
                messages = compose(digest.hook, digest.context(), finder, self.settings, where)
            except Exception:
                # A hook can never break a write: skip it and say why.
                logger.exception("Hook %s: could not build the digest", where)
                continue
            envelopes += [Envelope(message, where, digest.labels) for message in messages]
        return envelopes
