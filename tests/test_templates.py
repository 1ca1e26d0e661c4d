"""templates.py alone: parsing, checking and rendering of subjects and bodies."""

import pytest

from kinto_emailer import templates


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
