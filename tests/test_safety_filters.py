"""Issue 3, filters (points 5 and 6): patterns checked at save, matched under a time limit."""

import time

from kinto_emailer import selection
from tests.support import HookWebTest, hook


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
        compiled = selection.compile_pattern.cache_info().misses
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
        assert selection.compile_pattern.cache_info().misses == compiled
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
