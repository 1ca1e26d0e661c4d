"""The objects that a ``"digest": true`` hook matched: one message per request and hook (an
email or a Slack message), or, with ``"digest_window"``, one email per time window,
gathered in the outbox.

Each object's line is rendered when its event comes (inside the transaction, like any
email); the draft of the email is composed once every event of the request is in.
"""

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .. import addresses
from ..hooks import templates
from ..log_values import quoted
from ..outbox import Email, Window
from ..trace import NO_TRACE, Trace
from .context import origin
from .drafts import DEFAULT_ITEM_TEMPLATE, complete, make_draft
from .slack import CHANNEL as SLACK
from .slack import escape, slack_digest


if TYPE_CHECKING:
    from ..config import EmailerSettings
    from ..hooks.selection import HookFinder
    from .request_bytes import RequestBytes


logger = logging.getLogger("kinto_emailer.digest")

_NOBODY = object()


def window_seconds(hook: dict[str, Any]) -> int | None:
    seconds = hook.get("digest_window")
    # Validation refuses other values; stored metadata may predate it.
    if isinstance(seconds, int) and not isinstance(seconds, bool) and 1 <= seconds <= 86400:
        return seconds
    return None


class Digest:
    """The first object's placeholders, the count of objects and their lines."""

    def __init__(
        self, hook: dict[str, Any], context: dict[str, Any], where: str, channel: str = "email"
    ):
        self.hook, self.first, self.where, self.channel = hook, context, where, channel
        # What all its objects share: a field that differs between two of them is None.
        self.origin = origin(context)
        #: The mailbox of whoever made every change; ``None``: several people, or unknown.
        self.author: object = _NOBODY
        self.lines: list[str] = []
        self.size = 0
        self.count = 0

    def slack_message(self) -> Email:
        lines, count = self.lines, self.count
        return slack_digest(self.hook, self.first, lines, count, self.where, self.origin)

    @property
    def _escape(self) -> Callable[[str], str] | None:
        return escape if self.channel == SLACK else None

    @property
    def known_author(self) -> str | None:
        return self.author if isinstance(self.author, str) else None

    def add(self, context: dict[str, Any], max_items: int, prefixes: tuple[str, ...]) -> None:
        """Add an object; ``prefixes``: those of the user ids that prove their address."""
        self.count += 1
        for name, value in origin(context).items():
            if self.origin[name] != value:
                self.origin[name] = None
        author = addresses.verified_author(context.get("user_id"), prefixes)
        self.author = author if self.author in (_NOBODY, author) else None
        # The lines stop at the limit, or once they fill a body: the rest is "and N more".
        if len(self.lines) >= max_items or self.size >= templates.MAX_BODY_LENGTH:
            return
        item_template = self.hook.get("item_template")
        if not isinstance(item_template, str):
            item_template = DEFAULT_ITEM_TEMPLATE
        line = templates.render_line(item_template, context, self._escape)
        self.lines.append(line)
        self.size += len(line.encode("utf-8")) + 1


class Digests:
    """The digests of one request, by hook; ``windowed``: whether the outbox keeps windows."""

    def __init__(self, settings: "EmailerSettings", windowed: bool = False):
        self.settings = settings
        self.windowed = windowed
        self.by_hook: dict[str, Digest] = {}

    def __bool__(self) -> bool:
        return bool(self.by_hook)

    def add(
        self, hook: dict[str, Any], context: dict[str, Any], where: str, channel: str = "email"
    ) -> None:
        digest = self.by_hook.get(where)
        if digest is None:
            digest = self.by_hook[where] = Digest(hook, context, where, channel)
        settings = self.settings
        digest.add(context, settings.max_digest_items, settings.verified_author_prefixes)

    def take(
        self,
        finder: "HookFinder",
        request_bytes: "RequestBytes | None" = None,
        trace: Trace = NO_TRACE,
    ) -> tuple[list[Email], list[Window]]:
        """One email per digest (one per recipient if private), or its part of a time window,
        within ``request_bytes`` (a ``RequestBytes``) when given; the digests are forgotten.
        ``trace`` is told who is left out, and what could not be built."""
        digests, self.by_hook = self.by_hook, {}
        emails: list[Email] = []
        windows: list[Window] = []
        for where, digest in digests.items():
            if request_bytes is not None and request_bytes.spent:
                request_bytes.skip(where, digest.origin)
                continue
            try:
                if digest.channel == SLACK:  # Per request: Slack hooks have no windows.
                    built = [digest.slack_message()]
                    emails += built if request_bytes is None else request_bytes.admit(built)
                    continue
                draft = make_draft(digest.hook, digest.first, finder, self.settings, where, trace)
                if draft is None:
                    continue
                seconds = window_seconds(digest.hook) if self.windowed else None
                if seconds is not None:
                    windows.append(self._window(digest, draft, seconds))
                    continue
                author = digest.known_author
                messages = complete(draft, digest.lines, digest.count, author, where, trace)
            except Exception as e:
                # A hook can never break a write: skip it and say why.
                logger.exception("Hook %s: could not build the digest", quoted(where))
                trace.dropped(where, f"Could not build the digest: {e}")
                continue
            built = [Email(message, where, **digest.origin) for message in messages]
            emails += built if request_bytes is None else request_bytes.admit(built)
        return emails, windows

    def _window(self, digest: Digest, draft: dict[str, Any], seconds: int) -> Window:
        return Window(
            location=digest.where,
            seconds=seconds,
            draft=draft,
            lines=digest.lines,
            count=digest.count,
            author=digest.known_author,
            max_items=self.settings.max_digest_items,
            **digest.origin,
        )
