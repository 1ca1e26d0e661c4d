"""Issue 3, point 8: whatever hook metadata storage holds, writes succeed and problems are logged.

Validation keeps bad hooks out from now on, but storage may hold metadata saved before it
existed, or written by another tool: these tests put it there directly.
"""

from tests.support import HookWebTest, hook


GOOD = hook(subject="good", template="good body")
WHERE = "/buckets/b/collections/c#0"

#: Hooks that validation refuses, each logged with its location when a record is written.
BROKEN_HOOKS = {
    "attribute access": hook(template="{user_agent.__class__}"),
    "attribute after a key": hook(template="{new[title].__class__}"),
    "conversion": hook(template="{bucket_id!r}"),
    "huge format spec": hook(template="{bucket_id:>300000000}"),
    "unbalanced brace": hook(subject="Hello {bucket_id"),
    "positional placeholder": hook(template="{0}"),
    "subject not a string": hook(subject=None),
    "template not a string": hook(template=42),
    "template a list": hook(template=["{bucket_id}"]),
    "recipients an object": hook(recipients={"to": "alice@example.com"}),
    "recipients a number": hook(recipients=7),
    "non-string recipients": hook(recipients=[42, None, {"a": 1}, ["x"]]),
    "broken group URI template": hook(recipients=["/buckets/b/groups/{x!r}"]),
    "invalid regular expression": hook(record_id="^("),
    "pattern too large to compile": hook(record_id="^a{1000000000}"),
    "pattern nested too deeply": hook(record_id="^" + "(" * 5000 + ")" * 5000),
}

#: Metadata of the wrong shape: nothing to send, nothing to break.
BROKEN_METADATA = {
    "settings not an object": {"kinto-emailer": "hooks"},
    "hooks not a list": {"kinto-emailer": {"hooks": {"0": GOOD}}},
    "hooks of the wrong type": {"kinto-emailer": {"hooks": [42, "hook", None, []]}},
    "no hooks": {"kinto-emailer": {}},
    "filters of the wrong type": {"kinto-emailer": {"hooks": [hook(record_id={"$ne": 1})]}},
}


class NeverA500Test(HookWebTest):
    def setUp(self):
        super().setUp()
        self.create_collection()

    def write_record(self, record_id="r1"):
        return self.app.put_json(
            f"/buckets/b/collections/c/records/{record_id}",
            {"data": {"title": "x"}},
            headers=self.headers,
            status=[200, 201],
        )

    def test_a_broken_hook_is_skipped_and_logged_and_the_others_still_send(self):
        for problem, broken in BROKEN_HOOKS.items():
            with self.subTest(problem):
                self.inbox.clear()
                self.store_unchecked(self.hooked(broken, GOOD), collection_id="c")
                with self.assertLogs("kinto_emailer", "WARNING") as logs:
                    self.write_record()
                assert WHERE in "\n".join(logs.output), logs.output
                assert [m["Subject"] for m in self.emails(1)] == ["good"]

    def test_metadata_of_the_wrong_shape_sends_nothing(self):
        for problem, metadata in BROKEN_METADATA.items():
            with self.subTest(problem):
                self.store_unchecked(metadata, collection_id="c")
                self.write_record()
                self.no_email()

    def test_a_broken_bucket_hook_is_skipped_and_logged(self):
        self.store_unchecked(self.hooked(hook(template="{a.b}"), GOOD))
        self.create_collection(collection_id="other")
        with self.assertLogs("kinto_emailer", "WARNING") as logs:
            self.create_record(collection_id="other")
        assert "/buckets/b#0" in "\n".join(logs.output)
        # The bucket's good hook: the collection's creation and its record.
        assert [m["Subject"] for m in self.emails(2)] == ["good", "good"]

    def test_other_writes_succeed_under_broken_hooks(self):
        self.store_unchecked(self.hooked(*BROKEN_HOOKS.values()), collection_id="c")
        self.write_record()
        self.app.patch_json(
            "/buckets/b/collections/c/records/r1", {"data": {"n": 1}}, headers=self.headers
        )
        self.app.delete("/buckets/b/collections/c/records/r1", headers=self.headers)
        # The metadata is not saved again: the rest of the collection stays writable.
        self.app.patch_json(
            "/buckets/b/collections/c", {"data": {"title": "t"}}, headers=self.headers
        )
        self.app.delete("/buckets/b/collections/c", headers=self.headers)
        self.no_email()

    def test_a_batch_under_broken_hooks_succeeds(self):
        self.store_unchecked(self.hooked(*BROKEN_HOOKS.values(), GOOD), collection_id="c")
        requests = [
            {"method": "PUT", "path": f"/buckets/b/collections/c/records/r{i}"} for i in range(5)
        ]
        response = self.app.post_json(
            "/batch",
            {"defaults": {"body": {"data": {}}}, "requests": requests},
            headers=self.headers,
        )
        assert [r["status"] for r in response.json["responses"]] == [201] * 5
        assert [m["Subject"] for m in self.emails(5)] == ["good"] * 5

    def test_a_huge_stored_template_renders_at_most_one_mebibyte(self):
        big = hook(template="{bucket_id}" * 200_000 + "x" * 2_000_000, subject="s" * 5000)
        self.store_unchecked(self.hooked(big), collection_id="c")
        self.write_record()
        message = self.one_email()
        # The message ends with a line break of its own.
        assert len(message.get_content().rstrip("\r\n").encode("utf-8")) == 1024 * 1024
        assert len(message["Subject"]) == 998
