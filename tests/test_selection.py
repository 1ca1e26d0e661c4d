"""selection.py alone: which hooks a change selects, and where hooks are looked up."""

import pytest
from kinto.core.storage.memory import Storage

from kinto_emailer import selection


TIMEOUT = 1.0
AFTER = "kinto.core.events.AfterResourceChanged"


def record_change(**overrides):
    context = {
        "resource_name": "record",
        "action": "create",
        "bucket_id": "main",
        "collection_id": "normandy-recipes",
        "record_id": "r1",
        "id": "r1",
        "event": AFTER,
    }
    context.update(overrides)
    return context


def collection_change(**overrides):
    context = {
        "resource_name": "collection",
        "action": "update",
        "bucket_id": "main",
        "collection_id": "addons",
        "id": "addons",
        "event": AFTER,
    }
    context.update(overrides)
    return context


def matches(hook, context):
    return selection.hook_matches(hook, context, selection.RegexBudget(TIMEOUT))


def test_a_hook_without_filters_matches_every_change():
    assert matches({}, record_change())
    assert matches({}, collection_change(action="delete"))


@pytest.mark.parametrize(
    "name, value",
    [
        ("resource_name", "record"),
        ("action", "create"),
        ("collection_id", "normandy-recipes"),
        ("record_id", "r1"),
        ("id", "r1"),
        ("event", AFTER),
    ],
)
def test_each_filter_matches_its_exact_value(name, value):
    assert matches({name: value}, record_change())


@pytest.mark.parametrize(
    "name, value",
    [
        ("resource_name", "collection"),
        ("action", "update"),
        ("collection_id", "normandy"),
        ("record_id", "r2"),
        ("id", "r"),
        ("event", "kinto_signer.events.ReviewRequested"),
    ],
)
def test_each_filter_refuses_another_value(name, value):
    assert not matches({name: value}, record_change())


def test_all_filters_of_a_hook_must_match():
    hook = {"resource_name": "record", "action": "delete"}
    assert not matches(hook, record_change(action="create"))
    assert matches(hook, record_change(action="delete"))


def test_a_filter_on_a_field_the_change_lacks_does_not_match():
    assert not matches({"record_id": "addons"}, collection_change())
    assert not matches({"record_id": "^.*"}, collection_change())


def test_resource_changed_is_accepted_as_the_synonym_of_after_resource_changed():
    hook = {"event": "kinto.core.events.ResourceChanged"}
    assert matches(hook, record_change(event=AFTER))


def test_the_synonym_does_not_select_review_events():
    hook = {"event": "kinto.core.events.ResourceChanged"}
    assert not matches(hook, record_change(event="kinto_signer.events.ReviewRequested"))


def test_a_caret_value_is_a_regular_expression():
    assert matches({"collection_id": "^normandy-.*"}, record_change())
    assert not matches({"collection_id": "^addons.*"}, record_change())


def test_a_regular_expression_is_matched_from_the_start_of_the_value():
    assert not matches({"collection_id": "^recipes"}, record_change())
    # Not anchored at the end: a prefix is enough, as with ``re.match``.
    assert matches({"collection_id": "^normandy"}, record_change())


def test_a_negative_lookahead_matches_every_collection_but_one():
    hook = {"collection_id": "^(?!normandy-recipes$)"}
    assert not matches(hook, record_change(collection_id="normandy-recipes"))
    assert matches(hook, record_change(collection_id="normandy-recipes-preview"))
    assert matches(hook, record_change(collection_id="addons"))


def test_a_value_without_caret_is_compared_literally():
    assert not matches({"collection_id": "normandy-.*"}, record_change())
    assert matches({"collection_id": "normandy-.*"}, record_change(collection_id="normandy-.*"))


def test_a_regular_expression_on_the_event_name():
    hook = {"event": "^kinto_signer\\.events\\.Review(Requested|Approved)$"}
    assert matches(hook, record_change(event="kinto_signer.events.ReviewApproved"))
    assert not matches(hook, record_change(event="kinto_signer.events.ReviewRejected"))


def test_a_non_text_filter_never_matches():
    assert not matches({"action": ["create"]}, record_change())


def test_compile_pattern_raises_on_an_invalid_expression():
    with pytest.raises(selection.regex.error):
        selection.compile_pattern("^(")


def test_matching_hooks_yields_every_matching_hook_with_its_index():
    hooks = [{"action": "create"}, {"action": "delete"}, {}]
    found = list(selection.matching_hooks(hooks, record_change(), budget(), "/buckets/main"))
    assert found == [(0, hooks[0]), (2, hooks[2])]


def test_matching_hooks_skips_a_broken_pattern_and_logs_it(caplog):
    hooks = [{"collection_id": "^("}, {}]
    found = list(selection.matching_hooks(hooks, record_change(), budget(), "/buckets/main"))
    assert found == [(1, hooks[1])]
    assert "/buckets/main#0" in caplog.text
    assert "invalid regular expression" in caplog.text


def budget(seconds=TIMEOUT):
    return selection.RegexBudget(seconds)


RUNAWAY = "^(a|aa)+$"


def test_matching_hooks_stops_a_runaway_expression_and_logs_it(caplog):
    hooks = [{"collection_id": RUNAWAY}]
    context = record_change(collection_id="a" * 60 + "!")
    assert list(selection.matching_hooks(hooks, context, budget(0.05), "/buckets/main")) == []
    assert "Hook /buckets/main#0: regular expressions ran out of the request's 0.05s" in (
        caplog.text
    )


def test_one_budget_for_every_hook_and_every_object_it_is_shared_by():
    shared = budget(0.05)
    runaway = [{"collection_id": RUNAWAY} for _ in range(50)]
    plain = {"action": "create"}
    for record_id in ("r1", "r2", "r3"):
        context = record_change(collection_id="a" * 60 + "!", id=record_id)
        found = list(selection.matching_hooks([*runaway, plain], context, shared, "/b"))
        # A hook without patterns costs nothing: it still matches once the budget is spent.
        assert found == [(50, plain)]
    # One pattern ran out of time; the 149 other tries were never made.
    assert (shared.evaluations, shared.timeouts, shared.skipped) == (1, 1, 149)
    assert shared.remaining <= 0


def test_fast_patterns_spend_the_budget_by_what_they_take():
    shared = budget(TIMEOUT)
    hooks = [{"collection_id": "^normandy"}, {"record_id": "^r"}]
    assert len(list(selection.matching_hooks(hooks, record_change(), shared, "/b"))) == 2
    assert shared.evaluations == 2 and shared.timeouts == 0
    assert 0 < shared.remaining < TIMEOUT


@pytest.fixture
def storage():
    storage = Storage()

    def put(resource_name, parent_id, obj):
        storage.create(resource_name=resource_name, parent_id=parent_id, obj=obj)

    bucket_hooks = {"hooks": [{"template": "bucket", "recipients": ["a@example.com"]}]}
    collection_hooks = {"hooks": [{"template": "collection", "recipients": ["b@example.com"]}]}
    put("bucket", "", {"id": "main", "kinto-emailer": bucket_hooks})
    put("collection", "/buckets/main", {"id": "plain"})
    put("collection", "/buckets/main", {"id": "hooked", "kinto-emailer": collection_hooks})
    put("collection", "/buckets/main", {"id": "silenced", "kinto-emailer": {"hooks": []}})
    put("group", "/buckets/main", {"id": "reviewers", "members": ["ldap:bob@example.com"]})
    return storage


def templates_of(found):
    hooks, location = found
    return [h["template"] for h in hooks], location


def test_a_collection_without_hooks_falls_back_to_its_bucket(storage):
    found = selection.HookFinder(storage).hooks("main", "plain")
    assert templates_of(found) == (["bucket"], "/buckets/main")


def test_a_collections_hooks_replace_the_buckets(storage):
    found = selection.HookFinder(storage).hooks("main", "hooked")
    assert templates_of(found) == (["collection"], "/buckets/main/collections/hooked")


def test_an_empty_hook_list_on_the_collection_silences_the_buckets(storage):
    found = selection.HookFinder(storage).hooks("main", "silenced")
    assert found == ([], "/buckets/main/collections/silenced")


def test_the_collection_data_given_by_the_change_is_used_instead_of_storage(storage):
    deleted = {"id": "gone", "kinto-emailer": {"hooks": [{"template": "old"}]}}
    found = selection.HookFinder(storage).hooks("main", "gone", deleted)
    assert templates_of(found) == (["old"], "/buckets/main/collections/gone")


def test_a_missing_bucket_has_no_hooks(storage):
    assert selection.HookFinder(storage).hooks("nowhere", "c") == ([], "/buckets/nowhere")


def test_malformed_metadata_gives_no_hooks(storage):
    storage.create(
        resource_name="collection",
        parent_id="/buckets/main",
        obj={"id": "odd", "kinto-emailer": {"hooks": ["not a hook", {"template": "ok"}]}},
    )
    found = selection.HookFinder(storage).hooks("main", "odd")
    assert templates_of(found) == (["ok"], "/buckets/main/collections/odd")


def test_the_finder_reads_groups_and_reports_missing_ones(storage):
    finder = selection.HookFinder(storage)
    assert finder.group("main", "reviewers")["members"] == ["ldap:bob@example.com"]
    assert finder.group("main", "nobody") is None
