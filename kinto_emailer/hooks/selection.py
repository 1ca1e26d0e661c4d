"""Which hooks apply to a change: the collection's hooks, else its bucket's, then filters."""

import json
import logging
from collections.abc import Callable, Hashable, Iterator
from typing import Any, NamedTuple

from kinto.core.storage import StorageBase
from kinto.core.storage.exceptions import ObjectNotFoundError

from .. import uris
from ..log_values import quoted
from ..trace import NO_TRACE, Trace
from .patterns import BudgetSpent, PatternError, RegexBudget, is_pattern


logger = logging.getLogger("kinto_emailer.selection")

METADATA_KEY = "kinto-emailer"
FILTERS = ("resource_name", "action", "collection_id", "record_id", "id", "event")
KINTO_EVENT = "kinto.core.events.AfterResourceChanged"
# The name of the in-transaction event, which people write too: it means the same change.
KINTO_EVENT_SYNONYM = "kinto.core.events.ResourceChanged"
KINTO_EVENTS = (KINTO_EVENT, KINTO_EVENT_SYNONYM)


def _read(
    storage: StorageBase, resource_name: str, parent_id: str, object_id: str | None
) -> dict[str, Any] | None:
    try:
        return storage.get(resource_name=resource_name, parent_id=parent_id, object_id=object_id)
    except ObjectNotFoundError:
        return None


class HookFinder:
    """Finds the hooks of a collection or bucket, reading each one once per request."""

    def __init__(
        self, storage: StorageBase, fetched_collections: dict[str, dict[str, Any]] | None = None
    ):
        self.storage = storage
        self._cache: dict[Hashable, Any] = {}
        # The collections Kinto's records view already read in this request, by URI.
        self.fetched_collections = fetched_collections or {}

    def metadata(
        self, resource_name: str, bucket_id: str, object_id: str | None = None
    ) -> dict[str, Any] | None:
        parent_id = uris.bucket_uri(bucket_id) if resource_name == "collection" else ""
        key = (resource_name, bucket_id, object_id)
        if key not in self._cache:
            object_id = object_id if resource_name == "collection" else bucket_id
            self._cache[key] = _read(self.storage, resource_name, parent_id, object_id)
        return self._cache[key]

    def remember(self, key: Hashable, read: Callable[[], Any]) -> Any:
        """``read()``, called once per request for ``key``."""
        if key not in self._cache:
            self._cache[key] = read()
        return self._cache[key]

    def group(self, bucket_id: str, group_id: str) -> dict[str, Any] | None:
        key = ("group", bucket_id, group_id)
        if key not in self._cache:
            self._cache[key] = _read(self.storage, "group", uris.bucket_uri(bucket_id), group_id)
        return self._cache[key]

    def hooks(
        self,
        bucket_id: str,
        collection_id: str | None,
        collection: dict[str, Any] | None = None,
        key: str = METADATA_KEY,
    ) -> tuple[list[dict[str, Any]], str]:
        """Return ``(hooks, location)``: the collection's when it has any, else the bucket's.

        ``collection`` is the collection's own data when the change is on the collection
        (the deleted version on delete); otherwise it is read from storage. ``key`` is the
        metadata key of the channel (``kinto-slack``...): each key falls back on its own.
        """
        if collection is None and collection_id is not None:
            uri = uris.collection_uri(bucket_id, collection_id)
            collection = self.fetched_collections.get(uri)
            if collection is None:
                collection = self.metadata("collection", bucket_id, collection_id)
        if collection and key in collection:
            location = uris.collection_uri(bucket_id, str(collection_id))
            return hooks_of(collection, key), location
        bucket = self.metadata("bucket", bucket_id)
        return hooks_of(bucket or {}, key), uris.bucket_uri(bucket_id)


def hooks_of(metadata: dict[str, Any], key: str = METADATA_KEY) -> list[dict[str, Any]]:
    settings = metadata.get(key)
    hooks = settings.get("hooks") if isinstance(settings, dict) else None
    return [h for h in hooks if isinstance(h, dict)] if isinstance(hooks, list) else []


def _value_matches(expected: object, value: str, budget: RegexBudget) -> bool:
    if not isinstance(expected, str):
        return False
    if is_pattern(expected):
        return budget.match(expected, value)
    return expected == value


class Refusal(NamedTuple):
    """The filter of a hook that refused a change: its name, its value, and the change's."""

    name: str
    expected: object
    value: object  # ``None``: the change has no such field.

    def __str__(self) -> str:
        said = f'Filter "{self.name}" is {_quoted(self.expected)}'
        if self.value is None:
            return f"{said}: the change has no {self.name}"
        if not isinstance(self.expected, str):
            return f"{said}, which is not a string: it matches nothing"
        if is_pattern(self.expected):
            return f"{said}: the pattern does not match {_quoted(self.value)}"
        return f"{said}: the change's {self.name} is {_quoted(self.value)}"


def _quoted(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)


def refusal(hook: dict[str, Any], context: dict[str, Any], budget: RegexBudget) -> Refusal | None:
    """The first filter of ``hook`` that refuses the change described by ``context``;
    ``None`` when every filter accepts it.

    Raises ``TimeoutError`` when its regular expressions run out of ``budget``.
    """
    for name in FILTERS:
        if name not in hook:
            continue
        value = context.get(name)
        if value is None:
            # A filter on a field the change doesn't have (record_id on a collection).
            return Refusal(name, hook[name], None)
        candidates = KINTO_EVENTS if name == "event" and value == KINTO_EVENT else (value,)
        if not any(_value_matches(hook[name], str(c), budget) for c in candidates):
            return Refusal(name, hook[name], str(value))
    return None


def hook_matches(hook: dict[str, Any], context: dict[str, Any], budget: RegexBudget) -> bool:
    """Whether every filter of ``hook`` accepts the change described by ``context``.

    Raises ``TimeoutError`` when its regular expressions run out of ``budget``.
    """
    return refusal(hook, context, budget) is None


def matching_hooks(
    hooks: list[dict[str, Any]],
    context: dict[str, Any],
    budget: RegexBudget,
    location: str,
    trace: Trace = NO_TRACE,
    label: str = "",
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(index, hook)`` for each hook whose filters accept the change; each is named
    ``{location}#{label}{index}`` (``label``: ``slack/`` for a ``kinto-slack`` hook...).

    Once ``budget`` is spent, hooks that need a pattern are skipped (counted in ``budget``):
    a request's patterns cost one ``regex_timeout`` together, whatever its hooks and objects.
    ``trace`` is told of every hook, and why its filters refused the change.
    """
    for index, hook in enumerate(hooks):
        where = f"{location}#{label}{index}"
        refused: object | None
        try:
            refused = refusal(hook, context, budget)
        except BudgetSpent:
            budget.skipped += 1
            trace.hook(where, f"Not tried: {_out_of_time(budget)} before it")
            continue
        except TimeoutError:
            logger.warning(
                "Hook %s: regular expressions ran out of the request's %ss "
                "(kinto_emailer.regex_timeout); hooks that need one are skipped from now on",
                quoted(where),
                budget.seconds,
            )
            trace.hook(where, f"No match: {_out_of_time(budget)}")
            continue
        except PatternError as e:
            # Metadata saved before validation existed may hold a broken pattern.
            logger.warning(
                "Hook %s: invalid regular expression: %s",
                quoted(where),
                quoted(e),
                extra={"hook": where, "error": str(e)},
            )
            trace.hook(where, f"Invalid regular expression ({e})")
            continue
        except Exception:
            logger.exception("Hook %s: could not apply its filters", quoted(where))
            trace.hook(where, "Could not apply its filters (the server's log says why)")
            continue
        trace.hook(where, refused)
        if refused is None:
            yield index, hook


def _out_of_time(budget: RegexBudget) -> str:
    return (
        f"regular expressions ran out of the request's {budget.seconds}s "
        "(kinto_emailer.regex_timeout)"
    )
