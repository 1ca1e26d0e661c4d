"""selection.py: which hooks a change selects, where they are looked up, regex time limits."""

import time

import pytest
from kinto.core.storage.memory import Storage

from kinto_emailer.hooks import patterns, selection
from tests.support import HookWebTest, hook


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
    return selection.hook_matches(hook, context, patterns.RegexBudget(TIMEOUT))


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
    with pytest.raises(patterns.regex.error):
        patterns.compile_pattern("^(")


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
    return patterns.RegexBudget(seconds)


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


# Through the real app: patterns checked at save, matched under a time limit.


#: Takes the ``regex`` package minutes without a time limit on this record id.
CATASTROPHIC = "^(a|aa)+$"
#: The issue's example: ``re`` backtracks for minutes on it; ``regex`` must stay fast too.
NESTED_PLUS = "^(a+)+$"
ATTACK_ID = "a" * 32 + "-"
#: Long enough to outlast a one-second limit.
LONGER_ATTACK_ID = "a" * 50 + "-"
#: Generous against a slow machine, far below the minutes of an unbounded match.
BOUND = 2.0


class InvalidPatternsTest(HookWebTest):
    """Point 5: an invalid regular expression is a 400 naming the filter and the error."""

    def test_an_unterminated_group_is_refused_with_the_reason(self):
        message = self.refused(hook(record_id="^("))
        assert (
            'Invalid regular expression in "record_id": '
            "missing ), unterminated subpattern at position 1"
        ) in message

    def test_every_filter_is_checked(self):
        for name in ("resource_name", "action", "collection_id", "record_id", "id", "event"):
            message = self.refused(hook(**{name: "^[a-"}))
            assert f'Invalid regular expression in "{name}": unterminated character set' in (
                message
            )

    def test_a_pattern_that_would_exhaust_memory_when_compiled_is_refused_at_once(self):
        # regex unrolls repeats when compiling: this one would take gigabytes.
        for pattern in ("^a{1000000000}", "^(a{1000}){1000}", "^((ab|c){100}){100}"):
            message = self.refused(hook(record_id=pattern))
            assert "too large once repeats are unrolled" in message, pattern

    def test_hundreds_of_large_patterns_are_refused_before_any_is_compiled(self):
        names = ("collection_id", "record_id", "id")
        # 150 patterns, each under the limit of one: seconds of compiling together.
        long_ones = [hook(**{k: "^" + "(a|b)" * 190 + f"{n}" for k in names}) for n in range(50)]
        # Short, but large once their repeats are unrolled.
        unrolled = [hook(**{k: f"^(a|bc){{190}}{n}" for k in names}) for n in range(50)]
        compiled = patterns.compile_pattern.cache_info().misses
        message = self.refused(*long_ones)
        assert message.endswith(
            "Regular expressions too long together: 142920 characters "
            "(at most 20000 for all the hooks of a bucket or collection)"
        )
        message = self.refused(*unrolled)
        assert message.endswith(
            "Regular expressions too large together once repeats are unrolled: "
            "over 5000 for all the hooks of a bucket or collection"
        )
        assert patterns.compile_pattern.cache_info().misses == compiled
        # A few are fine.
        self.save_hooks(*long_ones[:3])

    def test_a_deeply_nested_pattern_is_refused(self):
        message = self.refused(hook(record_id="^" + "(" * 5000 + ")" * 5000))
        assert 'Invalid regular expression in "record_id": too deeply nested' in message

    def test_a_value_without_caret_is_a_plain_string_not_a_pattern(self):
        self.save_hooks(hook(record_id="(", resource_name="record"))
        self.app.put_json("/buckets/b/collections/c/records/x", {"data": {}}, headers=self.headers)
        self.no_email()

    def test_python_re_syntax_works_lookaheads_included(self):
        self.save_hooks(hook(collection_id="^(?!normandy-recipes$)", template="{collection_id}"))
        self.create_collection(collection_id="normandy-recipes")
        self.create_record(collection_id="normandy-recipes")
        self.create_record()
        bodies = sorted(m.get_content().strip() for m in self.emails(2))
        # The hooked collection's own creation and its record; nothing from the other one.
        assert bodies == ["c", "c"]


class TimeLimitTest(HookWebTest):
    """Point 6, and issue 11 point 8: the patterns of one request share one
    ``kinto_emailer.regex_timeout``; out of time is no match, and the rest are not tried."""

    TIMED_OUT = "regular expressions ran out of the request's 0.1s (kinto_emailer.regex_timeout)"

    def write(self, record_id=ATTACK_ID):
        with self.assertLogs("kinto_emailer", "WARNING") as logs:
            self.app.put_json(
                f"/buckets/b/collections/c/records/{record_id}",
                {"data": {}},
                headers=self.headers,
                status=201,
            )
        return logs.output

    def test_the_issue_pattern_does_not_hang_a_write(self):
        self.save_hooks(hook(record_id=NESTED_PLUS))
        # Python's re would backtrack for minutes; regex answers within the budget.
        self.app.put_json(
            f"/buckets/b/collections/c/records/{ATTACK_ID}", {"data": {}}, headers=self.headers
        )
        self.no_email()

    def test_a_catastrophic_pattern_is_stopped_logged_and_treated_as_no_match(self):
        self.save_hooks(hook(record_id=CATASTROPHIC), hook(resource_name="record"))
        (timed_out,) = self.write()
        assert "Hook /buckets/b/collections/c#0: " + self.TIMED_OUT in timed_out
        # The other hook of the collection still sends.
        assert self.one_email().envelope_to == ["alice@example.com"]

    def test_fifty_catastrophic_patterns_cost_one_budget_per_write(self):
        self.save_hooks(*[hook(record_id=CATASTROPHIC, id=CATASTROPHIC)] * 50)
        for write in range(2):
            logs = self.write(f"{ATTACK_ID}{write}")
            # One pattern ran out of the write's time; the 49 other hooks were not tried.
            assert len(logs) == 2, logs
            assert "Hook /buckets/b/collections/c#0: " + self.TIMED_OUT in logs[0]
            assert logs[1].endswith(
                "49 hook(s) skipped: the request's regular expressions ran out of time"
            )
        self.no_email()

    def test_a_batch_pays_the_limit_once(self):
        self.save_hooks(hook(record_id=CATASTROPHIC), hook(id=CATASTROPHIC))
        requests = [
            {"method": "PUT", "path": f"/buckets/b/collections/c/records/{ATTACK_ID}{i}"}
            for i in range(20)
        ]
        with self.assertLogs("kinto_emailer", "WARNING") as logs:
            response = self.app.post_json(
                "/batch",
                {"defaults": {"body": {"data": {}}}, "requests": requests},
                headers=self.headers,
            )
        assert [r["status"] for r in response.json["responses"]] == [201] * 20
        assert len(logs.output) == 2, logs.output
        assert self.TIMED_OUT in logs.output[0]
        # The first object's second hook, then both hooks of the 19 others.
        assert "39 hook(s) skipped" in logs.output[1]
        self.no_email()

    def test_once_the_time_is_spent_only_hooks_without_patterns_are_tried(self):
        self.save_hooks(
            hook(record_id=CATASTROPHIC, subject="catastrophic"),
            hook(record_id="^a+-$", subject="fast pattern"),
            hook(resource_name="record", subject="no pattern"),
        )
        logs = self.write()
        assert logs[1].endswith(
            "1 hook(s) skipped: the request's regular expressions ran out of time"
        )
        assert self.one_email()["Subject"] == "no pattern"

    def test_the_next_request_has_a_budget_of_its_own(self):
        self.save_hooks(hook(record_id=CATASTROPHIC), hook(record_id="^fine-$", subject="fast"))
        self.write()
        self.app.put_json(
            "/buckets/b/collections/c/records/fine-", {"data": {}}, headers=self.headers
        )
        assert self.one_email()["Subject"] == "fast"


class ConfiguredTimeLimitTest(HookWebTest):
    """Point 6: the setting changes the limit, which holds for a hook as a whole.

    The ``regex`` package counts the limit in CPU time: on a busy machine a match takes
    longer on the clock, so these tests compare CPU time with the limit.
    """

    @classmethod
    def extra_settings(cls):
        return {"kinto_emailer.regex_timeout": "0.5"}

    def timed_write(self, collection_id="c"):
        cpu_start = time.process_time()
        with self.assertLogs("kinto_emailer.selection", "WARNING") as logs:
            self.app.put_json(
                f"/buckets/b/collections/{collection_id}/records/{LONGER_ATTACK_ID}",
                {"data": {}},
                headers=self.headers,
            )
        cpu = time.process_time() - cpu_start
        return cpu, logs.output

    def test_the_setting_sets_the_limit(self):
        self.save_hooks(hook(record_id=CATASTROPHIC))
        cpu, logs = self.timed_write()
        assert 0.5 <= cpu < 0.5 + BOUND
        assert "ran out of the request's 0.5s" in logs[0]

    def test_the_limit_is_for_all_the_filters_of_a_hook_together(self):
        # Three filters on the attacker's ids: the limit once for the hook, not per filter.
        attack = {name: CATASTROPHIC for name in ("collection_id", "record_id", "id")}
        self.create_collection(
            collection_id=LONGER_ATTACK_ID,
            data=self.hooked(hook(resource_name="record", **attack)),
        )
        cpu, logs = self.timed_write(collection_id=LONGER_ATTACK_ID)
        assert 0.5 <= cpu < 1.2
        assert len(logs) == 1
