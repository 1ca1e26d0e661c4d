"""Which hooks apply to a change: the collection's hooks, else its bucket's, then filters."""

import logging

import regex
from kinto.core.storage.exceptions import ObjectNotFoundError


logger = logging.getLogger(__name__)

METADATA_KEY = "kinto-emailer"
FILTERS = ("resource_name", "action", "collection_id", "record_id", "id", "event")
KINTO_EVENT = "kinto.core.events.AfterResourceChanged"
# The name of the in-transaction event, which people write too: it means the same change.
KINTO_EVENT_SYNONYM = "kinto.core.events.ResourceChanged"
KINTO_EVENTS = (KINTO_EVENT, KINTO_EVENT_SYNONYM)


def is_pattern(value):
    return isinstance(value, str) and value.startswith("^")


def compile_pattern(value):
    """Compile a ``^`` filter; raises ``regex.error`` with the reason when it is invalid."""
    # The ``regex`` module speaks ``re`` syntax and can stop a match that runs too long.
    return regex.compile(value, flags=regex.VERSION0)


def _read(storage, resource_name, parent_id, object_id):
    try:
        return storage.get(resource_name=resource_name, parent_id=parent_id, object_id=object_id)
    except ObjectNotFoundError:
        return None


class HookFinder:
    """Finds the hooks of a collection or bucket, reading each one once per request."""

    def __init__(self, storage):
        self.storage = storage
        self._cache = {}

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


def _value_matches(expected, value, timeout):
    if not isinstance(expected, str):
        return False
    if is_pattern(expected):
        # Matched from the start of the value, as ``re.match`` does.
        return compile_pattern(expected).match(value, timeout=timeout) is not None
    return expected == value


def hook_matches(hook, context, timeout):
    """Whether every filter of ``hook`` accepts the change described by ``context``.

    Raises ``TimeoutError`` when a regular expression runs longer than ``timeout``.
    """
    for name in FILTERS:
        if name not in hook:
            continue
        value = context.get(name)
        if value is None:
            # A filter on a field the change doesn't have (record_id on a collection).
            return False
        candidates = KINTO_EVENTS if name == "event" and value == KINTO_EVENT else (value,)
        if not any(_value_matches(hook[name], str(c), timeout) for c in candidates):
            return False
    return True


def matching_hooks(hooks, context, timeout, location):
    """Yield ``(index, hook)`` for each hook whose filters accept the change."""
    for index, hook in enumerate(hooks):
        try:
            matched = hook_matches(hook, context, timeout)
        except TimeoutError:
            logger.warning(
                "Hook %s#%s: a regular expression ran longer than %ss; treated as no match",
                location,
                index,
                timeout,
            )
            continue
        except regex.error as e:
            # Metadata saved before validation existed may hold a broken pattern.
            logger.warning("Hook %s#%s: invalid regular expression (%s)", location, index, e)
            continue
        if matched:
            yield index, hook
