"""Validation of the ``kinto-emailer`` metadata when buckets and collections are saved."""

from tests.support import EmailerWebTest, HookWebTest, hook, hooked


VALID_HOOK = {"template": "Record {record_id} created", "recipients": ["alice@example.com"]}


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
        response = self.put_collection(hooked({"recipients": ["alice@example.com"]}))
        self.assert_invalid(response, 'Missing "template"')

    def test_empty_list_of_recipients_is_refused(self):
        response = self.put_collection(hooked({"template": "x", "recipients": []}))
        self.assert_invalid(response, "Empty list of recipients")

    def test_missing_recipients_is_refused(self):
        response = self.put_collection(hooked({"template": "x"}))
        self.assert_invalid(response, 'Missing "recipients"')

    def test_invalid_recipients_are_named_each(self):
        hook = {"template": "x", "recipients": ["alice", "bob@example.com", "Carol <carol>"]}
        response = self.put_collection(hooked(hook))
        self.assert_invalid(response, "Invalid recipients alice, Carol <carol>")
        assert "bob@example.com" not in response.json["message"]

    def test_a_group_of_another_bucket_is_refused(self):
        hook = {"template": "x", "recipients": ["/buckets/other/groups/reviewers"]}
        response = self.put_collection(hooked(hook))
        self.assert_invalid(response, "Invalid bucket for groups /buckets/other/groups/reviewers")

    def test_each_group_of_another_bucket_is_named(self):
        hook = {
            "template": "x",
            "recipients": ["/buckets/o1/groups/g", "/buckets/b/groups/g", "/buckets/o2/groups/g"],
        }
        response = self.put_collection(hooked(hook))
        self.assert_invalid(
            response, "Invalid bucket for groups /buckets/o1/groups/g, /buckets/o2/groups/g"
        )

    def test_the_message_says_which_hook_is_wrong(self):
        response = self.put_collection(hooked(VALID_HOOK, {"recipients": ["a@example.com"]}))
        self.assert_invalid(response, 'hooks.1.template: Missing "template"')

    def test_metadata_that_is_not_an_object_is_refused(self):
        response = self.put_collection({"kinto-emailer": ["hooks"]})
        self.assert_invalid(response, '"kinto-emailer" must be an object')

    def test_hooks_that_are_not_a_list_are_refused(self):
        response = self.put_collection({"kinto-emailer": {"hooks": {"template": "x"}}})
        self.assert_invalid(response)

    def test_an_unknown_placeholder_is_refused(self):
        response = self.put_collection(hooked({**VALID_HOOK, "subject": "{nope}"}))
        self.assert_invalid(response, '"{nope}"')

    def test_a_setting_that_is_not_exposed_is_refused(self):
        response = self.put_collection(
            hooked({**VALID_HOOK, "template": "{settings[userid_hmac_secret]}"})
        )
        self.assert_invalid(response, "settings available are")

    def test_an_invalid_regular_expression_is_refused(self):
        response = self.put_collection(hooked({**VALID_HOOK, "collection_id": "^(unclosed"}))
        self.assert_invalid(response, 'Invalid regular expression in "collection_id"')

    def test_an_invalid_sender_is_refused(self):
        response = self.put_collection(hooked({**VALID_HOOK, "sender": "kinto"}))
        self.assert_invalid(response, "Invalid sender kinto")

    # What is valid.

    def test_an_empty_hooks_list_is_valid(self):
        self.put_collection({"kinto-emailer": {"hooks": []}}, status=201)

    def test_an_empty_template_is_valid(self):
        self.put_collection(hooked({**VALID_HOOK, "template": ""}), status=201)

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
        self.put_collection(hooked(hook), status=201)

    def test_a_review_event_hook_may_use_review_placeholders(self):
        hook = {
            **VALID_HOOK,
            "event": "kinto_signer.events.ReviewRequested",
            "template": "{comment} ({changes_count} changes)",
        }
        self.put_collection(hooked(hook), status=201)

    def test_metadata_without_the_emailer_key_is_not_checked(self):
        self.put_collection({"hooks": "anything"}, status=201)

    # Every way of saving.

    def test_patch_of_a_collection_is_validated(self):
        self.put_collection(hooked(VALID_HOOK), status=201)
        response = self.app.patch_json(
            "/buckets/b/collections/c",
            {"data": hooked({"template": "x", "recipients": []})},
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
            {"data": {"id": "c", **hooked(VALID_HOOK)}},
            headers=self.headers,
            status=201,
        )

    def test_put_of_a_bucket_is_validated(self):
        response = self.app.put_json(
            "/buckets/other",
            {"data": hooked({"recipients": ["a@example.com"]})},
            headers=self.headers,
            status=400,
        )
        self.assert_invalid(response, 'Missing "template"')

    def test_patch_of_a_bucket_is_validated(self):
        response = self.app.patch_json(
            "/buckets/b",
            {"data": hooked({"template": "x", "recipients": ["bad"]})},
            headers=self.headers,
            status=400,
        )
        self.assert_invalid(response, "Invalid recipients bad")

    def test_post_of_a_bucket_is_validated(self):
        hook = {"template": "x", "recipients": ["/buckets/b/groups/g"]}
        response = self.app.post_json(
            "/buckets",
            {"data": {"id": "other", **hooked(hook)}},
            headers=self.headers,
            status=400,
        )
        self.assert_invalid(response, "Invalid bucket for groups /buckets/b/groups/g")

    def test_a_bucket_may_name_its_own_groups(self):
        hook = {"template": "x", "recipients": ["/buckets/other/groups/g"]}
        self.app.post_json(
            "/buckets",
            {"data": {"id": "other", **hooked(hook)}},
            headers=self.headers,
            status=201,
        )

    def test_a_batch_is_validated(self):
        body = {
            "requests": [
                {
                    "method": "PUT",
                    "path": "/buckets/b/collections/good",
                    "body": {"data": hooked(VALID_HOOK)},
                },
                {
                    "method": "POST",
                    "path": "/buckets/b/collections",
                    "body": {"data": {"id": "bad", **hooked({"template": "x"})}},
                },
            ]
        }
        response = self.app.post_json("/batch", body, headers=self.headers, status=400)
        self.assert_invalid(response, 'Missing "recipients"')

    def test_a_valid_batch_is_accepted(self):
        body = {
            "defaults": {"method": "PUT"},
            "requests": [
                {"path": "/buckets/b2", "body": {"data": hooked(VALID_HOOK)}},
                {
                    "path": "/buckets/b2/collections/c",
                    "body": {"data": {"kinto-emailer": {"hooks": []}}},
                },
            ],
        }
        response = self.app.post_json("/batch", body, headers=self.headers)
        assert [r["status"] for r in response.json["responses"]] == [201, 201]


def richer(**fields):
    return {"template": "x", "recipients": ["alice@example.com"], **fields}


class RicherHooksSchemaTest(HookWebTest):
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
        message = self.refused(richer(cc={"bob": "bob@example.com"}))
        assert '"cc" must be a string or a list of strings' in message
        assert '"bcc" must be a string or a list of strings' in self.refused(richer(bcc=[1]))
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


class LoadedPluginEvent:
    """The event of a plugin whose module the server has loaded."""


class TyposTest(HookWebTest):
    """Issue 10, point 2: a typo in a hook is a 400 that names it and suggests the fix."""

    PREFIX = "data.kinto-emailer in body: "

    def setUp(self):
        super().setUp()
        # The saves of the other tests email the collection's creation: none of it here.
        self.drain()
        self.inbox.clear()

    def test_an_unknown_field_is_named_with_the_closest_known_one(self):
        message = self.refused(hook(subjet="hello"))
        assert message == self.PREFIX + 'Unknown field "subjet" in hook 0; did you mean "subject"?'

    def test_every_unknown_field_of_every_hook_is_named(self):
        message = self.refused(hook(), hook(acton="create", colour="red"))
        assert message == self.PREFIX + (
            'Unknown field "acton" in hook 1; did you mean "action"?; '
            'Unknown field "colour" in hook 1'
        )

    def test_a_misspelt_template_is_reported_as_a_typo_not_as_missing(self):
        message = self.refused({"templat": "x", "recipients": ["alice@example.com"]})
        assert message == self.PREFIX + (
            'Unknown field "templat" in hook 0; did you mean "template"?'
        )

    def test_resource_name_and_action_take_their_values_or_a_pattern(self):
        message = self.refused(hook(resource_name="records"))
        assert message == self.PREFIX + (
            'hooks.0.resource_name: Invalid "resource_name" "records": allowed values are '
            'record, collection, or a ^ pattern; did you mean "record"?'
        )
        message = self.refused(hook(action="created"))
        assert message == self.PREFIX + (
            'hooks.0.action: Invalid "action" "created": allowed values are '
            'create, update, delete, or a ^ pattern; did you mean "create"?'
        )
        message = self.refused(hook(action="publish"))
        assert message.endswith("allowed values are create, update, delete, or a ^ pattern")
        self.save_hooks(hook(resource_name="^rec", action="^(create|update)$"))

    def test_a_bare_review_event_name_gets_its_full_name(self):
        message = self.refused(hook(event="ReviewRequested"))
        assert message.startswith(
            self.PREFIX + 'hooks.0.event: Invalid "event" "ReviewRequested": allowed values are '
            "kinto.core.events.AfterResourceChanged, kinto.core.events.ResourceChanged, "
            "kinto_signer.events.ReviewRequested, "
        )
        assert message.endswith(
            "kinto_remote_settings.signer.events.ReviewCanceled, "
            "an event class of a loaded module, a ^ pattern; "
            'did you mean "kinto_signer.events.ReviewRequested"?'
        )

    def test_a_misspelt_event_gets_the_closest_known_name(self):
        message = self.refused(hook(event="kinto.core.events.AfterResourceChange"))
        assert message.endswith('did you mean "kinto.core.events.AfterResourceChanged"?')

    def test_an_event_must_be_a_class_of_a_loaded_module(self):
        for event in ("some_plugin.events.Done", "os.path", "os.sep", "tests", "antigravity.X"):
            message = self.refused(hook(event=event))
            assert f'Invalid "event" "{event}": allowed values are' in message, event
            assert "did you mean" not in message, event
        # Naming a module never imports it: a writer can't make the server run its code.
        assert "antigravity" not in __import__("sys").modules

    def test_known_events_loaded_classes_and_patterns_are_accepted(self):
        self.save_hooks(
            hook(event="kinto.core.events.AfterResourceChanged"),
            hook(event="kinto.core.events.ResourceChanged"),
            hook(event="kinto_signer.events.ReviewApproved"),
            # Known before kinto_remote_settings is installed.
            hook(event="kinto_remote_settings.signer.events.ReviewRequested"),
            hook(event=f"{__name__}.LoadedPluginEvent"),
            hook(event="^kinto_signer"),
        )

    def test_stored_metadata_with_typos_keeps_working_and_stays_editable(self):
        # Saved before these checks existed: a typo'ed filter, so it fires on every change.
        self.create_collection()
        self.store_unchecked(
            self.hooked(hook(subjet="ignored", acton="create", resource_name="record")),
            collection_id="c",
        )
        self.create_record()
        assert self.one_email()["Subject"] == "New message"
        # Changing something else is not saving the hooks: accepted.
        self.app.patch_json(
            "/buckets/b/collections/c", {"data": {"title": "t"}}, headers=self.headers
        )
        # Changing the hooks checks them.
        self.app.patch_json(
            "/buckets/b/collections/c",
            {"data": self.hooked(hook(subjet="x"))},
            headers=self.headers,
            status=400,
        )


# Limits, each a setting, each a 400 naming it (or a log at send time).


MEBIBYTE = 1024 * 1024


def members(count):
    return [f"account:user{i}@example.com" for i in range(count)]


class DefaultLimitsTest(HookWebTest):
    def test_at_most_50_hooks(self):
        self.save_hooks(*[hook(action="delete")] * 50)
        message = self.refused(*[hook()] * 51)
        assert "Too many hooks: 51 (kinto_emailer.max_hooks is 50)" in message

    def test_at_most_100_recipients_per_hook(self):
        addresses = [f"user{i}@example.com" for i in range(101)]
        self.save_hooks(hook(recipients=addresses[:100], action="delete"))
        message = self.refused(hook(recipients=addresses))
        assert "Too many recipients: 101 (kinto_emailer.max_recipients is 100)" in message

    def test_templates_of_at_most_64_kib(self):
        self.save_hooks(hook(template="x" * 65536, subject="s" * 65536, action="delete"))
        for field in ("template", "subject"):
            message = self.refused(hook(**{field: "x" * 65537}))
            assert (
                f'"{field}" is 65537 characters long (kinto_emailer.max_template_length is 65536)'
            ) in message

    def test_at_most_1000_addresses_after_group_expansion(self):
        self.app.put_json(
            "/buckets/b/groups/everyone",
            {"data": {"members": members(1001)}},
            headers=self.headers,
        )
        self.save_hooks(hook(recipients=["/buckets/b/groups/everyone"], resource_name="record"))
        with self.assertLogs("kinto_emailer", "WARNING") as logs:
            self.create_record()
        assert len(self.one_email().envelope_to) == 1000
        assert (
            "Hook /buckets/b/collections/c#0: 1 recipients dropped: "
            "kinto_emailer.max_expanded_recipients is 1000"
        ) in "\n".join(logs.output)

    def test_a_rendered_subject_is_one_line_of_at_most_998_characters(self):
        self.save_hooks(hook(subject="{new[title]}{new[title]}", resource_name="record"))
        self.create_record(data={"title": "line\n" * 300})
        subject = self.one_email()["Subject"]
        assert len(subject) == 998
        assert "\n" not in subject and "\r" not in subject
        assert subject.startswith("line line line")

    def test_a_rendered_body_is_at_most_one_mebibyte(self):
        self.save_hooks(hook(template="{new[big]}{new[big]}", resource_name="record"))
        self.create_record(data={"big": "é" * MEBIBYTE})
        body = self.one_email().get_content().rstrip("\r\n")  # The message's own line break.
        assert len(body.encode("utf-8")) == MEBIBYTE
        assert body == "é" * (MEBIBYTE // 2)


class ConfiguredLimitsTest(HookWebTest):
    """Each setting changes its limit."""

    @classmethod
    def extra_settings(cls):
        return {
            "kinto_emailer.max_hooks": "2",
            "kinto_emailer.max_recipients": "3",
            "kinto_emailer.max_expanded_recipients": "4",
            "kinto_emailer.max_template_length": "10",
        }

    def test_max_hooks(self):
        self.save_hooks(hook(), hook())
        message = self.refused(hook(), hook(), hook())
        assert "Too many hooks: 3 (kinto_emailer.max_hooks is 2)" in message

    def test_max_recipients(self):
        addresses = ["a@example.com", "b@example.com", "c@example.com", "d@example.com"]
        self.save_hooks(hook(recipients=addresses[:3]))
        message = self.refused(hook(recipients=addresses))
        assert "Too many recipients: 4 (kinto_emailer.max_recipients is 3)" in message

    def test_max_template_length(self):
        self.save_hooks(hook(template="x" * 10, subject="y" * 10))
        message = self.refused(hook(subject="y" * 11))
        assert '"subject" is 11 characters long (kinto_emailer.max_template_length is 10)' in (
            message
        )

    def test_max_expanded_recipients_keeps_the_first_ones_in_order(self):
        self.app.put_json(
            "/buckets/b/groups/team", {"data": {"members": members(5)}}, headers=self.headers
        )
        recipients = ["first@example.com", "/buckets/b/groups/team"]
        self.save_hooks(hook(recipients=recipients, resource_name="record"))
        with self.assertLogs("kinto_emailer", "WARNING") as logs:
            self.create_record()
        assert self.one_email().envelope_to == [
            "first@example.com",
            "user0@example.com",
            "user1@example.com",
            "user2@example.com",
        ]
        assert "2 recipients dropped: kinto_emailer.max_expanded_recipients is 4" in (
            "\n".join(logs.output)
        )
