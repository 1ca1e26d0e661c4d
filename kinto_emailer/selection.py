"""Which hooks apply to a change: the collection's hooks, else its bucket's, then filters."""

import functools
import logging
import re
import time

import regex
from kinto.core.storage.exceptions import ObjectNotFoundError


try:
    from re import _parser as re_parser
except ImportError:  # Python 3.10
    import sre_parse as re_parser


logger = logging.getLogger(__name__)

METADATA_KEY = "kinto-emailer"
FILTERS = ("resource_name", "action", "collection_id", "record_id", "id", "event")
KINTO_EVENT = "kinto.core.events.AfterResourceChanged"
# The name of the in-transaction event, which people write too: it means the same change.
KINTO_EVENT_SYNONYM = "kinto.core.events.ResourceChanged"
KINTO_EVENTS = (KINTO_EVENT, KINTO_EVENT_SYNONYM)


def is_pattern(value):
    return isinstance(value, str) and value.startswith("^")


#: ``regex`` unrolls the minimum count of repeats when compiling: ``a{100000000}`` would take
#: gigabytes. A filter matches ids, so a thousand unrolled items is plenty.
MAX_PATTERN_SIZE = 1000
_REPEATS = {re_parser.MAX_REPEAT, re_parser.MIN_REPEAT, getattr(re_parser, "POSSESSIVE_REPEAT", 0)}


class PatternError(regex.error):
    """A ``^`` filter that can't be used; the message says why."""


def _children(value):
    if isinstance(value, re_parser.SubPattern):
        yield value
    elif isinstance(value, tuple | list):
        for item in value:
            yield from _children(item)


def _unrolled_size(pattern):
    size = 0
    for op, av in pattern:
        if op in _REPEATS:
            low, _high, item = av
            size += max(low, 1) * _unrolled_size(item)
        else:
            size += 1 + sum(_unrolled_size(child) for child in _children(av))
        if size > MAX_PATTERN_SIZE:
            break
    return size


@functools.lru_cache(maxsize=256)
def compile_pattern(value):
    """Compile a ``^`` filter; raises ``PatternError`` with the reason when it is invalid."""
    try:
        # Python's own parser: ``re`` syntax, ``re``'s messages, and the size of the pattern.
        size = _unrolled_size(re_parser.parse(value))
        if size > MAX_PATTERN_SIZE:
            raise PatternError(f"too large once repeats are unrolled (over {MAX_PATTERN_SIZE})")
        # The ``regex`` module speaks ``re`` syntax and can stop a match that runs too long.
        return regex.compile(value, flags=regex.VERSION0, cache_pattern=False)
    except (re.error, regex.error, OverflowError) as e:
        raise PatternError(str(e)) from None
    except RecursionError:
        raise PatternError("too deeply nested") from None


def _read(storage, resource_name, parent_id, object_id):
    try:
        return storage.get(resource_name=resource_name, parent_id=parent_id, object_id=object_id)
    except ObjectNotFoundError:
        return None


class HookFinder:
    """Finds the hooks of a collection or bucket, reading each one once per request."""

    def __init__(self, storage, fetched_collections=None):
        self.storage = storage
        self._cache = {}
        # The collections Kinto's records view already read in this request, by URI.
        self.fetched_collections = fetched_collections or {}

    def metadata(self, resource_name, bucket_id, object_id=None):
        parent_id = f"/buckets/{bucket_id}" if resource_name == "collection" else ""
        key = (resource_name, bucket_id, object_id)
        if key not in self._cache:
            object_id = object_id if resource_name == "collection" else bucket_id
            self._cache[key] = _read(self.storage, resource_name, parent_id, object_id)
        return self._cache[key]

    def group(self, bucket_id, group_id):
        key = ("group", bucket_id, group_id)
        if key not in self._cache:
            self._cache[key] = _read(self.storage, "group", f"/buckets/{bucket_id}", group_id)
        return self._cache[key]

    def hooks(self, bucket_id, collection_id, collection=None):
        """Return ``(hooks, location)``: the collection's when it has any, else the bucket's.

        ``collection`` is the collection's own data when the change is on the collection
        (the deleted version on delete); otherwise it is read from storage.
        """
        if collection is None and collection_id is not None:
            uri = f"/buckets/{bucket_id}/collections/{collection_id}"
            collection = self.fetched_collections.get(uri)
            if collection is None:
                collection = self.metadata("collection", bucket_id, collection_id)
        if collection and METADATA_KEY in collection:
            location = f"/buckets/{bucket_id}/collections/{collection_id}"
            return _hooks_of(collection), location
        bucket = self.metadata("bucket", bucket_id)
        return _hooks_of(bucket or {}), f"/buckets/{bucket_id}"


def _hooks_of(metadata):
    settings = metadata.get(METADATA_KEY)
    hooks = settings.get("hooks") if isinstance(settings, dict) else None
    return [h for h in hooks if isinstance(h, dict)] if isinstance(hooks, list) else []


def _value_matches(expected, value, deadline):
    if not isinstance(expected, str):
        return False
    if is_pattern(expected):
        pattern = compile_pattern(expected)
        # Matched from the start of the value, as ``re.match`` does.
        return pattern.match(value, timeout=max(deadline - time.monotonic(), 1e-6)) is not None
    return expected == value


def hook_matches(hook, context, timeout):
    """Whether every filter of ``hook`` accepts the change described by ``context``.

    Raises ``TimeoutError`` when its regular expressions together run longer than ``timeout``.
    """
    deadline = time.monotonic() + timeout
    for name in FILTERS:
        if name not in hook:
            continue
        value = context.get(name)
        if value is None:
            # A filter on a field the change doesn't have (record_id on a collection).
            return False
        candidates = KINTO_EVENTS if name == "event" and value == KINTO_EVENT else (value,)
        if not any(_value_matches(hook[name], str(c), deadline) for c in candidates):
            return False
    return True


def matching_hooks(hooks, context, timeout, location, timed_out=None):
    """Yield ``(index, hook)`` for each hook whose filters accept the change.

    A hook whose expressions ran out of time is added to ``timed_out`` (its location) and
    skipped from then on: shared by all the objects of a request, it keeps a catastrophic
    pattern to one ``timeout`` per hook, however many objects the request changes.
    """
    timed_out = set() if timed_out is None else timed_out
    for index, hook in enumerate(hooks):
        where = f"{location}#{index}"
        if where in timed_out:
            continue
        try:
            matched = hook_matches(hook, context, timeout)
        except TimeoutError:
            timed_out.add(where)
            logger.warning(
                "Hook %s: its regular expressions ran longer than %ss; treated as no match",
                where,
                timeout,
            )
            continue
        except PatternError as e:
            # Metadata saved before validation existed may hold a broken pattern.
            logger.warning("Hook %s: invalid regular expression (%s)", where, e)
            continue
        except Exception:
            logger.exception("Hook %s: could not apply its filters", where)
            continue
        if matched:
            yield index, hook
