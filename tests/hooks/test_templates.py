"""templates.py: parsing, checking and rendering of subjects and bodies, alone and in the app."""

import pytest

from kinto_emailer.hooks import templates
from tests.support import HookWebTest, hook


CONTEXT = {
    "bucket_id": "staging",
    "collection_id": "addons",
    "record_id": "r1",
    "id": "r1",
    "user_id": "account:alice",
    "resource_name": "record",
    "uri": "/buckets/staging/collections/addons/records/r1",
    "action": "create",
    "timestamp": 1500000000000,
    "root_url": "http://localhost/v1/",
    "client_address": "127.0.0.1",
    "user_agent": "tests",
    "event": "kinto.core.events.AfterResourceChanged",
    "settings": {"project_name": "kinto", "project_version": "1.2", "url": "http://x/"},
    "new": {"id": "r1", "title": "Hello"},
    "old": {},
}


def test_parse_splits_literals_and_placeholders_with_their_keys():
    pieces = templates.parse("Hi {user_id}, see {new[title]}!")
    assert pieces == [
        "Hi ",
        ("user_id", (), "{user_id}"),
        ", see ",
        ("new", ("title",), "{new[title]}"),
        "!",
    ]


def test_parse_turns_doubled_braces_into_literal_braces():
    assert "".join(p for p in templates.parse("{{x}}") if isinstance(p, str)) == "{x}"


@pytest.mark.parametrize("template", ["{", "}", "a {b", "a } b"])
def test_parse_refuses_unbalanced_braces_and_says_how_to_escape(template):
    with pytest.raises(templates.TemplateError, match=r"write \{\{ and \}\}"):
        templates.parse(template)


@pytest.mark.parametrize(
    "template, reason",
    [
        ("{user_id!r}", "Conversion is not allowed"),
        ("{user_id:>1000000}", "Format spec is not allowed"),
        ("{user_id.__class__}", "use a name"),
        ("{0}", "use a name"),
        ("{}", "use a name"),
    ],
)
def test_parse_refuses_conversions_specs_attributes_and_positional_fields(template, reason):
    with pytest.raises(templates.TemplateError, match=reason):
        templates.parse(template)


@pytest.mark.parametrize("name", templates.RESOURCE_PLACEHOLDERS + ("comment", "changes_count"))
def test_check_accepts_every_documented_placeholder(name):
    templates.check("{" + name + "}", "template")


@pytest.mark.parametrize("key", ["project_name", "project_version", "url"])
def test_check_accepts_the_three_exposed_settings(key):
    templates.check("{settings[" + key + "]}", "template")


@pytest.mark.parametrize("key", ["storage_url", "userid_hmac_secret", "mail.password"])
def test_check_refuses_any_other_setting(key):
    with pytest.raises(templates.TemplateError, match="settings available are"):
        templates.check("{settings[" + key + "]}", "subject")


def test_check_refuses_settings_without_a_key():
    with pytest.raises(templates.TemplateError, match="settings needs a key"):
        templates.check("{settings}", "template")


def test_check_refuses_an_unknown_placeholder_naming_it_and_the_field():
    with pytest.raises(templates.TemplateError) as error:
        templates.check("Hi {usr_id}", "subject")
    assert '"{usr_id}"' in str(error.value)
    assert '"subject"' in str(error.value)


def test_check_accepts_unknown_names_when_not_strict():
    templates.check("{plugin_field}", "template", strict=False)


def test_check_refuses_a_key_on_a_plain_placeholder():
    with pytest.raises(templates.TemplateError, match="takes no"):
        templates.check("{id[x]}", "template")


def test_check_names_the_field_of_an_unparsable_template():
    with pytest.raises(templates.TemplateError, match='Invalid "template"'):
        templates.check("{", "template")


def test_check_accepts_an_empty_template():
    templates.check("", "template")


def test_render_fills_every_placeholder_of_the_issue_example():
    rendered = templates.render(
        "{user_id} has {action}d a {resource_name} in {bucket_id}.", CONTEXT
    )
    assert rendered == "account:alice has created a record in staging."


def test_render_fills_exposed_settings_and_object_fields():
    rendered = templates.render(
        "{settings[project_name]} {settings[project_version]} {new[title]}", CONTEXT
    )
    assert rendered == "kinto 1.2 Hello"


def test_render_never_exposes_a_setting_missing_from_the_context():
    context = {**CONTEXT, "settings": {"project_name": "kinto"}}
    assert templates.render("{settings[secret]}", context) == "{settings[secret]}"


def test_render_writes_numbers_as_text():
    assert templates.render("{timestamp}", CONTEXT) == "1500000000000"


def test_render_leaves_absent_placeholders_as_written():
    context = {k: v for k, v in CONTEXT.items() if k != "record_id"}
    assert templates.render("record {record_id}", context) == "record {record_id}"


def test_render_reads_a_missing_object_field_as_empty():
    assert templates.render("[{new[nothing]}]", CONTEXT) == "[]"


def test_render_of_an_empty_template_is_empty():
    assert templates.render("", CONTEXT) == ""


def test_render_keeps_literal_braces():
    assert templates.render("{{{id}}}", CONTEXT) == "{r1}"


def test_render_stops_at_the_limit():
    context = {**CONTEXT, "new": {"big": "x" * 10_000}}
    assert templates.render("{new[big]}{new[big]}", context, limit=50) == "x" * 50


def test_render_line_folds_line_breaks_into_one_line():
    context = {**CONTEXT, "new": {"title": "a\r\nb\nc"}}
    assert templates.render_line("T: {new[title]}", context) == "T: a b c"


def test_render_line_is_at_most_998_characters():
    context = {**CONTEXT, "new": {"title": "y" * 5000}}
    assert len(templates.render_line("{new[title]}", context)) == 998


def test_render_as_html_escapes_values_never_the_template():
    context = {"new": {"title": "<b>&</b>"}, "id": "r'1\""}
    rendered = templates.render("<p>{new[title]} {id}</p>", context, as_html=True)
    assert rendered == "<p>&lt;b&gt;&amp;&lt;/b&gt; r&#x27;1&quot;</p>"
    assert templates.render("<p>{new[title]}</p>", context) == "<p><b>&</b></p>"


def test_render_as_html_escapes_a_placeholder_rendered_as_written():
    assert templates.render("{comment}", {}, as_html=True) == "{comment}"
    assert templates.render("{x[<i>]}", {}, as_html=True) == "{x[&lt;i&gt;]}"


def test_lines_render_one_per_line_and_with_br_in_html():
    context = {"items": templates.Lines(["<a>", "b"])}
    assert templates.render("{items}", context) == "<a>\nb"
    assert templates.render("{items}", context, as_html=True) == "&lt;a&gt;<br>\nb"


def test_digest_placeholders_are_accepted_only_when_asked():
    with pytest.raises(templates.TemplateError, match='Invalid placeholder "{count}"'):
        templates.check("{count}", "template")
    templates.check("{count} {items}", "template", extra=templates.DIGEST_PLACEHOLDERS)
    with pytest.raises(templates.TemplateError, match="takes no"):
        templates.check("{items[0]}", "template", extra=templates.DIGEST_PLACEHOLDERS)


def test_names_lists_the_placeholders_of_a_template():
    assert templates.names("{id} {new[a]} {{x}}") == {"id", "new"}
    assert templates.names("{unbalanced") == set()


# Through the real app: what a hook author may write, and what it renders.


SECRET = "do-not-leak-this-hmac-secret"


class PluginEvent:
    """Another plugin's event: hooks may name it since its module is loaded."""


PLUGIN_EVENT = f"{__name__}.PluginEvent"


class SafetyTest(HookWebTest):
    @classmethod
    def extra_settings(cls):
        return {"userid_hmac_secret": SECRET, "project_name": "Kinto test"}

    def body(self, message):
        return message.get_content()

    def record_email(self, template, data=None, record_id="r1", **fields):
        """The body of the email sent when a record is created under a hook of ``template``."""
        self.save_hooks(hook(template=template, resource_name="record", **fields))
        self.app.put_json(
            f"/buckets/b/collections/c/records/{record_id}",
            {"data": data or {}},
            headers=self.headers,
        )
        return self.body(self.one_email())


class RefusedPlaceholdersTest(SafetyTest):
    """Point 1: a template that could misbehave is a 400 naming the placeholder."""

    def test_an_unknown_placeholder_is_refused_and_the_available_ones_are_listed(self):
        message = self.refused(hook(template="Hello {nope}"))
        assert 'Invalid placeholder "{nope}" in "template"; available: bucket_id, ' in message
        for name in ("collection_id", "record_id", "user_agent", "new[...]", "old[...]"):
            assert name in message

    def test_an_unknown_placeholder_in_the_subject_is_refused(self):
        message = self.refused(hook(subject="{nope}"))
        assert 'Invalid placeholder "{nope}" in "subject"' in message

    def test_attribute_access_is_refused(self):
        message = self.refused(hook(template="{user_agent.__class__}"))
        assert '"{user_agent.__class__}"' in message

    def test_attribute_access_after_a_key_is_refused(self):
        message = self.refused(hook(template="{new[title].__class__.__mro__}"))
        assert '"{new[title].__class__.__mro__}"' in message

    def test_a_conversion_is_refused(self):
        message = self.refused(hook(template="{bucket_id!r}"))
        assert 'Conversion is not allowed in placeholder "{bucket_id!r}"' in message

    def test_a_format_spec_is_refused(self):
        message = self.refused(hook(template="{bucket_id:>300000000}"))
        assert 'Format spec is not allowed in placeholder "{bucket_id:>300000000}"' in message

    def test_a_nested_format_spec_is_refused(self):
        message = self.refused(hook(subject="{bucket_id:{collection_id}}"))
        assert "Format spec is not allowed" in message

    def test_unbalanced_braces_are_refused(self):
        for template in ("Hello {bucket_id", "Hello }", "{", "{new[title}"):
            message = self.refused(hook(template=template))
            assert 'Invalid "template"' in message, template
            assert "{{ and }}" in message, template

    def test_positional_and_empty_placeholders_are_refused(self):
        for template in ("{}", "{0}", "{ bucket_id }"):
            assert "Invalid placeholder" in self.refused(hook(template=template)), template

    def test_a_setting_other_than_the_exposed_ones_is_refused(self):
        message = self.refused(hook(template="{settings[userid_hmac_secret]}"))
        assert '"{settings[userid_hmac_secret]}"' in message
        assert "settings available are project_name, project_version, url" in message

    def test_a_key_on_a_plain_placeholder_is_refused(self):
        message = self.refused(hook(template="{bucket_id[0]}"))
        assert "bucket_id takes no [key]" in message

    def test_record_fields_need_a_key(self):
        assert "new needs a key" in self.refused(hook(template="{new}"))

    def test_the_message_names_the_hook(self):
        message = self.refused(hook(template="fine"), hook(template="{nope}"))
        assert message.startswith("data.kinto-emailer in body: hooks.1")


class AcceptedPlaceholdersTest(SafetyTest):
    """Point 1: what is accepted at save, including names only a plugin's event knows."""

    def test_review_fields_record_fields_and_exposed_settings_are_accepted(self):
        template = (
            "{comment} {changes_count} {changes_size_bytes} {new[title]} {old[a][b]} "
            "{settings[project_name]} {settings[project_version]} {settings[url]} {{literal}}"
        )
        self.save_hooks(hook(template=template, subject=template))

    def test_unknown_names_are_accepted_for_a_plugin_event(self):
        self.save_hooks(hook(template="{signer_field} {x[y]}", event=PLUGIN_EVENT))

    def test_unknown_names_are_refused_for_kinto_resource_events(self):
        for event in (
            "kinto.core.events.AfterResourceChanged",
            "kinto.core.events.ResourceChanged",
        ):
            message = self.refused(hook(template="{nope}", event=event))
            assert 'Invalid placeholder "{nope}"' in message, event

    def test_a_plugin_event_still_refuses_attributes_conversions_and_specs(self):
        for template in ("{a.b}", "{a!s}", "{a:>9}", "{"):
            self.refused(hook(template=template, event=PLUGIN_EVENT))


class RenderingTest(SafetyTest):
    """Points 2 and 3: nothing raises at send time; record fields render."""

    def test_a_review_field_on_an_ordinary_change_renders_as_written(self):
        body = self.record_email("Comment: {comment}; changes: {changes_count}")
        assert body.strip() == "Comment: {comment}; changes: {changes_count}"

    def test_escaped_braces_render_as_single_braces(self):
        assert self.record_email("{{bucket_id}} is {bucket_id}").strip() == "{bucket_id} is b"

    def test_exposed_settings_render(self):
        assert self.record_email("{settings[project_name]}").strip() == "Kinto test"

    def test_a_record_field_of_the_new_version_renders(self):
        assert self.record_email("Title: {new[title]}", {"title": "Hello"}).strip() == (
            "Title: Hello"
        )

    def test_nested_fields_render(self):
        data = {"author": {"name": "Ada", "address": {"city": "London"}}}
        body = self.record_email("{new[author][name]} from {new[author][address][city]}", data)
        assert body.strip() == "Ada from London"

    def test_list_items_render_by_index(self):
        assert self.record_email("{new[tags][1]}", {"tags": ["a", "b"]}).strip() == "b"

    def test_a_missing_field_renders_empty(self):
        body = self.record_email("[{new[missing]}][{new[title][deeper]}][{old[title]}]", {})
        assert body.strip() == "[][][]"

    def test_non_strings_render_as_json(self):
        data = {"n": 3, "f": 1.5, "yes": True, "no": None, "tags": ["a", "é"], "obj": {"k": 1}}
        template = "{new[n]}|{new[f]}|{new[yes]}|{new[no]}|{new[tags]}|{new[obj]}"
        body = self.record_email(template, data)
        assert body.strip() == '3|1.5|true||["a", "é"]|{"k": 1}'

    def test_old_is_empty_on_create(self):
        assert self.record_email("[{old[title]}][{old[id]}]", {"title": "x"}).strip() == "[][]"

    def test_old_and_new_on_update(self):
        self.save_hooks(hook(template="{old[title]} -> {new[title]}", action="update"))
        url = "/buckets/b/collections/c/records/r1"
        self.app.put_json(url, {"data": {"title": "before"}}, headers=self.headers)
        self.app.put_json(url, {"data": {"title": "after"}}, headers=self.headers)
        assert self.body(self.one_email()).strip() == "before -> after"

    def test_new_holds_only_the_tombstone_on_delete(self):
        self.save_hooks(
            hook(template="{old[title]} [{new[title]}] {new[deleted]} {new[id]}", action="delete")
        )
        url = "/buckets/b/collections/c/records/r1"
        self.app.put_json(url, {"data": {"title": "gone"}}, headers=self.headers)
        self.app.delete(url, headers=self.headers)
        assert self.body(self.one_email()).strip() == "gone [] true r1"

    def test_collection_fields_render_on_a_collection_change(self):
        template = "[{old[title]}] -> {new[title]}, {new[kinto-emailer][hooks][0][action]}"
        self.save_hooks(hook(template=template, action="update"))
        self.app.patch_json(
            "/buckets/b/collections/c", {"data": {"title": "v2"}}, headers=self.headers
        )
        assert self.body(self.one_email()).strip() == "[] -> v2, update"

    def test_a_secret_setting_stored_without_validation_renders_as_written(self):
        self.create_collection()
        secret = "{settings[userid_hmac_secret]}"
        self.store_unchecked(self.hooked(hook(subject=secret, template=secret)), collection_id="c")
        self.create_record()
        message = self.one_email()
        assert SECRET not in message.as_string()
        assert message["Subject"] == "{settings[userid_hmac_secret]}"
        assert self.body(message).strip() == "{settings[userid_hmac_secret]}"

    def test_a_format_spec_stored_without_validation_sends_nothing_and_is_logged(self):
        self.create_collection()
        metadata = self.hooked(hook(template="{bucket_id:>300000000}"))
        self.store_unchecked(metadata, collection_id="c")
        with self.assertLogs("kinto_emailer", "WARNING") as logs:
            self.create_record()
        self.no_email()
        assert "/buckets/b/collections/c#0" in "\n".join(logs.output)
