"""Validation of the ``kinto-emailer`` metadata when buckets and collections are saved."""

import pytest

from tests.safety_support import SafetyWebTest
from tests.support import EmailerWebTest, TemporaryDatabase, postgresql_settings


VALID_HOOK = {"template": "Record {record_id} created", "recipients": ["alice@example.com"]}


def metadata(*hooks):
    return {"kinto-emailer": {"hooks": list(hooks)}}


class SchemaTest(EmailerWebTest):
    def setUp(self):
        super().setUp()
        self.create_bucket("b")

    def assert_invalid(self, response, *messages):
        body = response.json
        assert response.status_code == 400
        assert body["errno"] == 107
        assert body["error"] == "Invalid parameters"
        assert body["details"][0]["name"] == "data.kinto-emailer"
        for message in messages:
            assert message in body["message"], body["message"]

    def put_collection(self, data, status=400):
        return self.create_collection("b", "c", data=data, status=status)

    # The messages, on PUT of a collection.

    def test_missing_hooks_is_refused(self):
        response = self.put_collection({"kinto-emailer": {}})
        self.assert_invalid(response, 'Missing "hooks"')

    def test_missing_template_is_refused(self):
        response = self.put_collection(metadata({"recipients": ["alice@example.com"]}))
        self.assert_invalid(response, 'Missing "template"')

    def test_empty_list_of_recipients_is_refused(self):
        response = self.put_collection(metadata({"template": "x", "recipients": []}))
        self.assert_invalid(response, "Empty list of recipients")

    def test_missing_recipients_is_refused(self):
        response = self.put_collection(metadata({"template": "x"}))
        self.assert_invalid(response, 'Missing "recipients"')

    def test_invalid_recipients_are_named_each(self):
        hook = {"template": "x", "recipients": ["alice", "bob@example.com", "Carol <carol>"]}
        response = self.put_collection(metadata(hook))
        self.assert_invalid(response, "Invalid recipients alice, Carol <carol>")
        assert "bob@example.com" not in response.json["message"]

    def test_a_group_of_another_bucket_is_refused(self):
        hook = {"template": "x", "recipients": ["/buckets/other/groups/reviewers"]}
        response = self.put_collection(metadata(hook))
        self.assert_invalid(response, "Invalid bucket for groups /buckets/other/groups/reviewers")

    def test_each_group_of_another_bucket_is_named(self):
        hook = {
            "template": "x",
            "recipients": ["/buckets/o1/groups/g", "/buckets/b/groups/g", "/buckets/o2/groups/g"],
        }
        response = self.put_collection(metadata(hook))
        self.assert_invalid(
            response, "Invalid bucket for groups /buckets/o1/groups/g, /buckets/o2/groups/g"
        )

    def test_the_message_says_which_hook_is_wrong(self):
        response = self.put_collection(metadata(VALID_HOOK, {"recipients": ["a@example.com"]}))
        self.assert_invalid(response, 'hooks.1.template: Missing "template"')

    def test_metadata_that_is_not_an_object_is_refused(self):
        response = self.put_collection({"kinto-emailer": ["hooks"]})
        self.assert_invalid(response, '"kinto-emailer" must be an object')

    def test_hooks_that_are_not_a_list_are_refused(self):
        response = self.put_collection({"kinto-emailer": {"hooks": {"template": "x"}}})
        self.assert_invalid(response)

    def test_an_unknown_placeholder_is_refused(self):
        response = self.put_collection(metadata({**VALID_HOOK, "subject": "{nope}"}))
        self.assert_invalid(response, '"{nope}"')

    def test_a_setting_that_is_not_exposed_is_refused(self):
        response = self.put_collection(
            metadata({**VALID_HOOK, "template": "{settings[userid_hmac_secret]}"})
        )
        self.assert_invalid(response, "settings available are")

    def test_an_invalid_regular_expression_is_refused(self):
        response = self.put_collection(metadata({**VALID_HOOK, "collection_id": "^(unclosed"}))
        self.assert_invalid(response, 'Invalid regular expression in "collection_id"')

    def test_an_invalid_sender_is_refused(self):
        response = self.put_collection(metadata({**VALID_HOOK, "sender": "kinto"}))
        self.assert_invalid(response, "Invalid sender kinto")

    # What is valid.

    def test_an_empty_hooks_list_is_valid(self):
        self.put_collection({"kinto-emailer": {"hooks": []}}, status=201)

    def test_an_empty_template_is_valid(self):
        self.put_collection(metadata({**VALID_HOOK, "template": ""}), status=201)

    def test_every_address_form_and_a_group_of_the_same_bucket_are_valid(self):
        hook = {
            "template": "{user_id} has {action}d a {resource_name} in {bucket_id}.",
            "subject": "{settings[project_name]}: {collection_id}/{record_id}",
            "sender": "Kinto team <team@example.com>",
            "recipients": [
                "alice@example.com",
                "Bob <bob@example.com>",
                "<carol@localhost>",
                "/buckets/b/groups/reviewers",
                "/buckets/b/groups/{collection_id}-reviewers",
            ],
            "resource_name": "record",
            "action": "create",
            "collection_id": "^(?!normandy-recipes$)",
            "event": "kinto.core.events.ResourceChanged",
        }
        self.put_collection(metadata(hook), status=201)

    def test_a_review_event_hook_may_use_review_placeholders(self):
        hook = {
            **VALID_HOOK,
            "event": "kinto_signer.events.ReviewRequested",
            "template": "{comment} ({changes_count} changes)",
        }
        self.put_collection(metadata(hook), status=201)

    def test_metadata_without_the_emailer_key_is_not_checked(self):
        self.put_collection({"hooks": "anything"}, status=201)

    # Every way of saving.

    def test_patch_of_a_collection_is_validated(self):
        self.put_collection(metadata(VALID_HOOK), status=201)
        response = self.app.patch_json(
            "/buckets/b/collections/c",
            {"data": metadata({"template": "x", "recipients": []})},
            headers=self.headers,
            status=400,
        )
        self.assert_invalid(response, "Empty list of recipients")

    def test_post_of_a_collection_is_validated(self):
        response = self.app.post_json(
            "/buckets/b/collections",
            {"data": {"id": "c", "kinto-emailer": {}}},
            headers=self.headers,
            status=400,
        )
        self.assert_invalid(response, 'Missing "hooks"')

    def test_post_of_a_valid_collection_is_accepted(self):
        self.app.post_json(
            "/buckets/b/collections",
            {"data": {"id": "c", **metadata(VALID_HOOK)}},
            headers=self.headers,
            status=201,
        )

    def test_put_of_a_bucket_is_validated(self):
        response = self.app.put_json(
            "/buckets/other",
            {"data": metadata({"recipients": ["a@example.com"]})},
            headers=self.headers,
            status=400,
        )
        self.assert_invalid(response, 'Missing "template"')

    def test_patch_of_a_bucket_is_validated(self):
        response = self.app.patch_json(
            "/buckets/b",
            {"data": metadata({"template": "x", "recipients": ["bad"]})},
            headers=self.headers,
            status=400,
        )
        self.assert_invalid(response, "Invalid recipients bad")

    def test_post_of_a_bucket_is_validated(self):
        hook = {"template": "x", "recipients": ["/buckets/b/groups/g"]}
        response = self.app.post_json(
            "/buckets",
            {"data": {"id": "other", **metadata(hook)}},
            headers=self.headers,
            status=400,
        )
        self.assert_invalid(response, "Invalid bucket for groups /buckets/b/groups/g")

    def test_a_bucket_may_name_its_own_groups(self):
        hook = {"template": "x", "recipients": ["/buckets/other/groups/g"]}
        self.app.post_json(
            "/buckets",
            {"data": {"id": "other", **metadata(hook)}},
            headers=self.headers,
            status=201,
        )

    def test_a_batch_is_validated(self):
        body = {
            "requests": [
                {
                    "method": "PUT",
                    "path": "/buckets/b/collections/good",
                    "body": {"data": metadata(VALID_HOOK)},
                },
                {
                    "method": "POST",
                    "path": "/buckets/b/collections",
                    "body": {"data": {"id": "bad", **metadata({"template": "x"})}},
                },
            ]
        }
        response = self.app.post_json("/batch", body, headers=self.headers, status=400)
        self.assert_invalid(response, 'Missing "recipients"')

    def test_a_valid_batch_is_accepted(self):
        body = {
            "defaults": {"method": "PUT"},
            "requests": [
                {"path": "/buckets/b2", "body": {"data": metadata(VALID_HOOK)}},
                {
                    "path": "/buckets/b2/collections/c",
                    "body": {"data": {"kinto-emailer": {"hooks": []}}},
                },
            ],
        }
        response = self.app.post_json("/batch", body, headers=self.headers)
        assert [r["status"] for r in response.json["responses"]] == [201, 201]


@pytest.fixture(scope="session")
def schema_database():
    with TemporaryDatabase("kinto_emailer_schema") as database:
        RefusedWritesTest.database_url = database.url
        yield database


@pytest.mark.postgresql
@pytest.mark.usefixtures("schema_database")
class RefusedWritesTest(EmailerWebTest):
    """On a transactional backend, a refused write stores nothing.

    The check runs on Kinto's in-transaction event: the memory backend can't roll back,
    so it keeps the refused data, PostgreSQL doesn't.
    """

    database_url = None  # Set by the session's database fixture, before the app starts.

    @classmethod
    def extra_settings(cls):
        return postgresql_settings(cls.database_url)

    def setUp(self):
        super().setUp()
        self.bucket = f"b{self.id().rsplit('_', 1)[-1]}"
        self.create_bucket(self.bucket)

    def test_a_refused_collection_is_not_stored(self):
        self.create_collection(self.bucket, "c", data={"kinto-emailer": {}}, status=400)
        self.app.get(f"/buckets/{self.bucket}/collections/c", headers=self.headers, status=404)

    def test_a_refused_patch_keeps_the_previous_hooks(self):
        self.create_collection(self.bucket, "c", data=metadata(VALID_HOOK))
        self.app.patch_json(
            f"/buckets/{self.bucket}/collections/c",
            {"data": metadata({"template": "x", "recipients": []})},
            headers=self.headers,
            status=400,
        )
        stored = self.app.get(f"/buckets/{self.bucket}/collections/c", headers=self.headers)
        assert stored.json["data"]["kinto-emailer"] == metadata(VALID_HOOK)["kinto-emailer"]

    def test_a_refused_batch_stores_none_of_its_writes(self):
        body = {
            "requests": [
                {
                    "method": "PUT",
                    "path": f"/buckets/{self.bucket}/collections/good",
                    "body": {"data": metadata(VALID_HOOK)},
                },
                {
                    "method": "PUT",
                    "path": f"/buckets/{self.bucket}/collections/bad",
                    "body": {"data": metadata({"template": "x"})},
                },
            ]
        }
        self.app.post_json("/batch", body, headers=self.headers, status=400)
        for cid in ("good", "bad"):
            self.app.get(
                f"/buckets/{self.bucket}/collections/{cid}", headers=self.headers, status=404
            )


def richer(**fields):
    return {"template": "x", "recipients": ["alice@example.com"], **fields}


class RicherHooksSchemaTest(SafetyWebTest):
    """Issue 7: the new fields are refused with a message naming the field and the fault."""

    def accepted(self, *hooks):
        # A collection of its own: the memory backend keeps what a refused PUT wrote.
        self.create_collection(collection_id="accepted", data=self.hooked(*hooks))

    def test_the_new_fields_are_accepted(self):
        self.accepted(
            richer(
                cc=["bob@example.com", "/buckets/b/groups/{collection_id}-cc"],
                bcc=[],
                reply_to=["{new[email]}", "Owner <{new[owner]}@example.com>"],
                html_template="<p>{count} {items} {new[title]}</p>",
                subject="{count} changes",
                template="{items}",
                digest=True,
                item_template="{id} {new[title]}",
                private=False,
            )
        )

    def test_invalid_addresses_are_named_with_their_field(self):
        for field in ("cc", "bcc", "reply_to"):
            message = self.refused(richer(**{field: ["bob", "carol@example.com", "dave@"]}))
            assert f'Invalid recipients in "{field}": bob, dave@' in message

    def test_groups_of_another_bucket_are_named_with_their_field(self):
        message = self.refused(richer(bcc=["/buckets/other/groups/g"]))
        assert 'Invalid bucket for groups in "bcc": /buckets/other/groups/g' in message

    def test_each_field_has_the_recipients_limit(self):
        many = [f"u{n}@example.com" for n in range(101)]
        message = self.refused(richer(cc=many))
        assert 'Too many recipients in "cc": 101 (kinto_emailer.max_recipients is 100)' in message
        self.accepted(richer(cc=many[:100], bcc=many[:100], reply_to=many[:100]))

    def test_address_fields_must_be_lists_of_strings_without_line_breaks(self):
        assert '"cc" must be a list of strings' in self.refused(richer(cc="bob@example.com"))
        assert '"bcc" must be a list of strings' in self.refused(richer(bcc=[1]))
        message = self.refused(richer(reply_to=["a@example.com\r\nBcc: evil@example.com"]))
        assert 'Line break not allowed in "reply_to"' in message

    def test_only_reply_to_takes_placeholders_and_they_are_checked(self):
        message = self.refused(richer(reply_to=["{nope}"]))
        assert 'Invalid placeholder "{nope}" in "reply_to"; available:' in message
        message = self.refused(richer(reply_to=["{new[email]"]))
        assert 'Invalid "reply_to"' in message
        # Record data never chooses who receives an email.
        assert 'Invalid recipients in "cc": {new[email]}' in self.refused(
            richer(cc=["{new[email]}"])
        )

    def test_flags_must_be_booleans(self):
        assert '"digest" must be true or false' in self.refused(richer(digest="yes"))
        assert '"private" must be true or false' in self.refused(richer(private=1))

    def test_html_template_has_the_rules_of_template(self):
        message = self.refused(richer(html_template="<p>{new[title]!r}</p>"))
        assert 'Invalid "html_template"' in message or '"html_template"' in message
        assert "Conversion is not allowed" in message
        message = self.refused(richer(html_template="{nope}"))
        assert 'Invalid placeholder "{nope}" in "html_template"' in message
        message = self.refused(richer(html_template="x" * 65537))
        assert '"html_template" is 65537 characters long' in message
        assert '"html_template" must be a string' in self.refused(richer(html_template=None))

    def test_digest_placeholders_need_digest(self):
        message = self.refused(richer(template="{count} records"))
        assert 'Placeholder "{count}" in "template" needs "digest": true' in message
        message = self.refused(richer(html_template="{items}", digest=False))
        assert 'Placeholder "{items}" in "html_template" needs "digest": true' in message
        message = self.refused(richer(item_template="{id}"))
        assert '"item_template" needs "digest": true' in message

    def test_item_template_takes_the_object_placeholders_only(self):
        message = self.refused(richer(digest=True, item_template="{count}"))
        assert 'Invalid placeholder "{count}" in "item_template"' in message
        message = self.refused(richer(digest=True, item_template="{id:>9}"))
        assert "Format spec is not allowed" in message

    def test_private_refuses_cc_and_bcc(self):
        for field in ("cc", "bcc"):
            message = self.refused(richer(private=True, **{field: ["bob@example.com"]}))
            assert f'"{field}" can\'t be used with "private": true' in message
        self.accepted(richer(private=True, cc=[], reply_to=["bob@example.com"]))
