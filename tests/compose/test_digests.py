"""Issue 7, point 1: ``"digest": true``, one email per request and hook, through the real app."""

from tests.support import HookWebTest


RECORDS = "/buckets/b/collections/c/records"


def digest_hook(**fields):
    return {
        "resource_name": "record",
        "digest": True,
        "subject": "{count} changes by {user_id} in {bucket_id}/{collection_id}",
        "template": "{count} records:\n{items}",
        "recipients": ["alice@example.com"],
        **fields,
    }


class DigestWebTest(HookWebTest):
    __test__ = False

    @classmethod
    def extra_settings(cls):
        return {"batch_max_requests": "200"}

    def batch(self, requests, status=200):
        body = {"defaults": {"method": "POST", "path": RECORDS}, "requests": requests}
        return self.app.post_json("/batch", body, headers=self.headers, status=status)

    def create_records(self, count):
        responses = self.batch([{"body": {"data": {"n": n}}} for n in range(count)])
        return [r["body"]["data"]["id"] for r in responses.json["responses"]]

    def lines(self, message):
        return message.get_content().replace("\r\n", "\n").rstrip("\n").split("\n")


class DigestTest(DigestWebTest):
    __test__ = True

    def test_a_batch_of_200_records_sends_one_email_listing_them_all(self):
        self.save_hooks(digest_hook())
        ids = self.create_records(200)
        message = self.one_email()
        assert message["Subject"].startswith("200 changes by basicauth:")
        assert message["Subject"].endswith(" in b/c")
        first, *items = self.lines(message)
        assert first == "200 records:"
        assert items == [f"record {rid} created" for rid in ids]

    def test_item_template_renders_each_object_with_its_own_fields(self):
        self.save_hooks(digest_hook(item_template="- {new[n]} at {uri}", template="{items}"))
        ids = self.create_records(3)
        assert self.lines(self.one_email()) == [
            f"- {n} at {RECORDS}/{rid}" for n, rid in enumerate(ids)
        ]

    def test_several_events_of_one_request_make_one_email(self):
        # A create and an update in one batch are two events; a digest gathers both.
        self.save_hooks(digest_hook(template="{items}"))
        rid = self.create_record().json["data"]["id"]
        self.emails(1)
        self.inbox.clear()
        update = {"method": "PATCH", "path": f"{RECORDS}/{rid}", "body": {"data": {"x": 1}}}
        responses = self.batch([{"body": {"data": {}}}, update]).json["responses"]
        assert [r["status"] for r in responses] == [201, 200]
        items = self.lines(self.one_email())
        assert len(items) == 2
        assert f"record {rid} updated" in items

    def test_a_bucket_hook_gathers_the_collections_of_a_request(self):
        self.app.patch_json(
            "/buckets/b",
            {"data": self.hooked(digest_hook(template="{items}"))},
            headers=self.headers,
        )
        self.create_collection("b", "c")
        self.create_collection("b", "d")
        self.emails(0)
        body = {
            "defaults": {"method": "POST", "body": {"data": {}}},
            "requests": [
                {"path": RECORDS},
                {"path": "/buckets/b/collections/d/records"},
                {"path": RECORDS},
            ],
        }
        self.app.post_json("/batch", body, headers=self.headers)
        assert len(self.lines(self.one_email())) == 3

    def test_each_digest_hook_sends_its_own_email(self):
        plain = {"resource_name": "record", "template": "{id}", "recipients": ["bob@example.com"]}
        self.save_hooks(digest_hook(), digest_hook(recipients=["carol@example.com"]), plain)
        self.create_records(5)
        messages = self.emails(2 + 5)  # Two digests; the hook without digest sends one each.
        targets = sorted(m["To"] for m in messages)
        assert targets == ["alice@example.com"] + ["bob@example.com"] * 5 + ["carol@example.com"]

    def test_a_digest_hook_on_collections_lists_them(self):
        self.app.patch_json(
            "/buckets/b",
            {"data": self.hooked(digest_hook(resource_name="collection", template="{items}"))},
            headers=self.headers,
        )
        self.app.post_json(
            "/batch",
            {
                "defaults": {"method": "PUT", "body": {"data": {}}},
                "requests": [
                    {"path": "/buckets/b/collections/x"},
                    {"path": "/buckets/b/collections/y"},
                ],
            },
            headers=self.headers,
        )
        assert sorted(self.lines(self.one_email())) == [
            "collection x created",
            "collection y created",
        ]


class ItemsAppendedTest(DigestWebTest):
    """Issue 14, point 5: a digest whose templates lack ``{items}`` still lists its items."""

    __test__ = True

    def test_a_template_without_items_gets_them_after_a_blank_line(self):
        self.save_hooks(digest_hook(template="{count} records changed.\n"))
        ids = self.create_records(2)
        assert self.lines(self.one_email()) == [
            "2 records changed.",
            "",
            *[f"record {rid} created" for rid in ids],
        ]

    def test_an_empty_template_is_the_list(self):
        self.save_hooks(digest_hook(template=""))
        ids = self.create_records(2)
        assert self.lines(self.one_email()) == [f"record {rid} created" for rid in ids]

    def test_an_html_template_without_items_gets_an_html_list(self):
        html = "<p>{count} changes</p>"
        self.save_hooks(digest_hook(template="{items}", html_template=html))
        ids = self.create_records(2)
        message = self.one_email()
        html_part = message.get_body(("html",)).get_content().replace("\r\n", "\n")
        items = "".join(f"<li>record {rid} created</li>\n" for rid in ids)
        assert html_part.rstrip("\n") == f"<p>2 changes</p>\n<ul>\n{items}</ul>"
        text = message.get_body(("plain",)).get_content().replace("\r\n", "\n")
        assert text.rstrip("\n").split("\n") == [f"record {rid} created" for rid in ids]

    def test_with_items_nothing_changes(self):
        self.save_hooks(digest_hook(template="{items}\n-- end", html_template="<p>{items}</p>"))
        ids = self.create_records(2)
        message = self.one_email()
        assert self.lines(message.get_body(("plain",))) == [
            *[f"record {rid} created" for rid in ids],
            "-- end",
        ]
        html_lines = message.get_body(("html",)).get_content().splitlines()
        assert [line.rstrip() for line in html_lines] == [
            f"<p>record {ids[0]} created<br>",
            f"record {ids[1]} created</p>",
        ]


class DigestCapTest(DigestWebTest):
    __test__ = True

    @classmethod
    def extra_settings(cls):
        return {"batch_max_requests": "200", "kinto_emailer.max_digest_items": "10"}

    def test_items_stop_at_max_digest_items_then_say_how_many_more(self):
        self.save_hooks(digest_hook(template="{count}\n{items}"))
        ids = self.create_records(25)
        count, *items = self.lines(self.one_email())
        assert count == "25"
        assert items == [f"record {rid} created" for rid in ids[:10]] + ["and 15 more"]

    def test_no_more_line_when_the_items_fit(self):
        self.save_hooks(digest_hook(template="{items}"))
        self.create_records(10)
        assert "more" not in self.one_email().get_content()


class DigestRollbackTest(HookWebTest):
    @classmethod
    def extra_settings(cls):
        return {"includes": "kinto_emailer tests.failing_plugin"}

    def test_a_request_that_fails_after_its_event_sends_no_digest(self):
        self.save_hooks(digest_hook())
        self.create_record(data={"explode": True}, status=500)
        self.no_email()
        self.create_record()
        assert self.one_email()["Subject"].startswith("1 changes")
