"""The events a hook's ``event`` filter may name, and a suggestion for a name that isn't one."""

import difflib
import importlib
import sys
from typing import Any, Protocol

from pyramid.request import Request

from .selection import KINTO_EVENTS


#: Packages whose review events are emailed when installed (kinto-signer and its successor).
REVIEW_EVENT_MODULES = ("kinto_signer.events", "kinto_remote_settings.signer.events")
#: ``ReviewCanceled``: pending changes rolled back (``to-rollback``), with ``changes_count``.
REVIEW_EVENTS = ("ReviewRequested", "ReviewApproved", "ReviewRejected", "ReviewCanceled")
#: Known whether or not their plugin is installed: metadata may be saved before it is.
KNOWN_EVENTS = KINTO_EVENTS + tuple(
    f"{module}.{name}" for module in REVIEW_EVENT_MODULES for name in REVIEW_EVENTS
)


class ChangeEvent(Protocol):
    """What the plugin reads of an event: Kinto's ``ResourceChanged``, or a review event."""

    request: Request
    #: ``resource_name``, ``action``, ``bucket_id``, ``user_id``, ...
    payload: dict[str, Any]
    #: ``{"new": object, "old": object}`` per object the change touched.
    impacted_objects: list[dict[str, Any]]


def review_event_classes() -> list[type]:
    """The review event classes of the installed review plugins."""
    classes = []
    for module_name in REVIEW_EVENT_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        classes += [getattr(module, name) for name in REVIEW_EVENTS if hasattr(module, name)]
    return classes


def loaded_class(name: str) -> type | None:
    """The class a dotted name designates in a module the server has already loaded.

    Never imports: a writer must not make the server run a module's code by naming it.
    """
    parts = name.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        module = sys.modules.get(".".join(parts[:cut]))
        if module is None:
            continue
        value: object = module
        for attribute in parts[cut:]:
            value = getattr(value, attribute, None)
        return value if isinstance(value, type) else None
    return None


def is_known(name: str) -> bool:
    return name in KNOWN_EVENTS or loaded_class(name) is not None


def suggestion(name: str) -> str | None:
    """The known event name closest to ``name``: a bare class name gets its full name."""
    if "." not in name:
        same_class = [known for known in KNOWN_EVENTS if known.rsplit(".", 1)[1] == name]
        # The installed plugin's name first; kinto-signer's when none is installed.
        installed = [n for n in same_class if n.rsplit(".", 1)[0] in sys.modules]
        if installed or same_class:
            return (installed or same_class)[0]
    close = difflib.get_close_matches(name, KNOWN_EVENTS, n=1)
    return close[0] if close else None
