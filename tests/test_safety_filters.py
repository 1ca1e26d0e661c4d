"""Issue 3, filters (points 5 and 6): patterns checked at save, matched under a time limit."""

import time

from tests.safety_support import SafetyWebTest, hook


#: Takes the ``regex`` package minutes without a time limit on this record id.
CATASTROPHIC = "^(a|aa)+$"
#: The issue's example: ``re`` backtracks for minutes on it; ``regex`` must stay fast too.
NESTED_PLUS = "^(a+)+$"
ATTACK_ID = "a" * 32 + "-"
#: Long enough to outlast a one-second limit.
LONGER_ATTACK_ID = "a" * 50 + "-"
#: Generous against a slow machine, far below the minutes of an unbounded match.
BOUND = 2.0


class InvalidPatternsTest(SafetyWebTest):
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
            start = time.monotonic()
            message = self.refused(hook(record_id=pattern))
            assert time.monotonic() - start < BOUND
            assert "too large once repeats are unrolled" in message, pattern

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


class TimeLimitTest(SafetyWebTest):
    """Point 6: matching runs under ``kinto_emailer.regex_timeout``; out of time is no match."""

    def timed_write(self, record_id=ATTACK_ID):
        start = time.monotonic()
        self.app.put_json(
            f"/buckets/b/collections/c/records/{record_id}",
            {"data": {}},
            headers=self.headers,
            status=201,
        )
        return time.monotonic() - start

    def test_the_issue_pattern_does_not_hang_a_write(self):
        self.save_hooks(hook(record_id=NESTED_PLUS))
        assert self.timed_write() < BOUND
        self.no_email()

    def test_a_catastrophic_pattern_is_stopped_logged_and_treated_as_no_match(self):
        self.save_hooks(hook(record_id=CATASTROPHIC), hook(resource_name="record"))
        with self.assertLogs("kinto_emailer.selection", "WARNING") as logs:
            elapsed = self.timed_write()
        assert elapsed < BOUND
        output = "\n".join(logs.output)
        assert "Hook /buckets/b/collections/c#0" in output
        assert "ran longer than 0.1s; treated as no match" in output
        # The other hook of the collection still sends.
        assert self.one_email().envelope_to == ["alice@example.com"]

    def test_each_hook_is_stopped_and_logged(self):
        self.save_hooks(*[hook(record_id=CATASTROPHIC, id=CATASTROPHIC) for _ in range(5)])
        with self.assertLogs("kinto_emailer.selection", "WARNING") as logs:
            elapsed = self.timed_write()
        assert elapsed < BOUND
        assert len(logs.output) == 5
        for index in range(5):
            assert f"/buckets/b/collections/c#{index}" in logs.output[index]

    def test_a_batch_pays_the_limit_once_per_hook(self):
        self.save_hooks(hook(record_id=CATASTROPHIC))
        requests = [
            {"method": "PUT", "path": f"/buckets/b/collections/c/records/{ATTACK_ID}{i}"}
            for i in range(20)
        ]
        start = time.monotonic()
        with self.assertLogs("kinto_emailer.selection", "WARNING") as logs:
            response = self.app.post_json(
                "/batch",
                {"defaults": {"body": {"data": {}}}, "requests": requests},
                headers=self.headers,
            )
        assert time.monotonic() - start < BOUND
        assert [r["status"] for r in response.json["responses"]] == [201] * 20
        assert len(logs.output) == 1
        self.no_email()

    def test_a_fast_pattern_still_matches_after_another_hook_timed_out(self):
        self.save_hooks(hook(record_id=CATASTROPHIC), hook(record_id="^a+-$"))
        with self.assertLogs("kinto_emailer.selection", "WARNING"):
            self.timed_write()
        self.one_email()


class ConfiguredTimeLimitTest(SafetyWebTest):
    """Point 6: the setting changes the limit, which holds for a hook as a whole.

    The ``regex`` package counts the limit in CPU time: on a busy machine a match takes
    longer on the clock, so these tests compare CPU time with the limit.
    """

    @classmethod
    def extra_settings(cls):
        return {"kinto_emailer.regex_timeout": "0.5"}

    def timed_write(self, collection_id="c"):
        start, cpu_start = time.monotonic(), time.process_time()
        with self.assertLogs("kinto_emailer.selection", "WARNING") as logs:
            self.app.put_json(
                f"/buckets/b/collections/{collection_id}/records/{LONGER_ATTACK_ID}",
                {"data": {}},
                headers=self.headers,
            )
        cpu = time.process_time() - cpu_start
        assert time.monotonic() - start < 0.5 + BOUND
        return cpu, logs.output

    def test_the_setting_sets_the_limit(self):
        self.save_hooks(hook(record_id=CATASTROPHIC))
        cpu, logs = self.timed_write()
        assert 0.5 <= cpu < 0.5 + BOUND
        assert "ran longer than 0.5s" in logs[0]

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
