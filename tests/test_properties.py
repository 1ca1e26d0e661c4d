"""Issue 3, point 9: whatever hook metadata and record data, writes succeed and emails stay small.

Hypothesis generates hook metadata (random strings, braces, format specs, regular
expressions, nested objects, huge sizes) and record data, then drives the real Kinto app
and reads what the real SMTP server received.
"""

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from kinto.core.testing import get_user_headers

from tests.support import EmailerWebTest


MEBIBYTE = 1024 * 1024
SECRET = "property-test-hmac-secret"

GOOD_PLACEHOLDERS = [
    "{bucket_id}",
    "{collection_id}",
    "{record_id}",
    "{id}",
    "{user_id}",
    "{uri}",
    "{action}",
    "{user_agent}",
    "{comment}",
    "{new[title]}",
    "{new[big]}",
    "{new[nested][deep][er]}",
    "{new[tags][0]}",
    "{old[title]}",
    "{settings[project_name]}",
    "{{",
    "}}",
    "\r\n",
    "\u2028",
]
BAD_PLACEHOLDERS = [
    "{settings[userid_hmac_secret]}",
    "{nope}",
    "{x!r}",
    "{bucket_id:>300000000}",
    "{user_agent.__class__}",
    "{new[title].__class__}",
    "{0}",
    "{}",
    "{",
    "}",
    "{new[",
]
PLACEHOLDERS = GOOD_PLACEHOLDERS + BAD_PLACEHOLDERS
VALID_PATTERNS = [
    "^(a|aa)+$",
    "^(a+)+$",
    "^[a-z0-9_-]+$",
    "^(?!normandy-recipes$)",
    "^.*",
    "^r",
]
PATTERNS = VALID_PATTERNS + [
    "^(",
    "^[a-",
    "^a{1000000000}",
    "^(a{1000}){1000}",
    "^" + "(" * 3000 + ")" * 3000,
]
ADDRESSES = [
    "alice@example.com",
    "Bob <bob@example.com>",
    "<carol@example.com>",
    "not an address",
    "eve@example.com\r\nBcc: evil@example.com",
    "/buckets/b/groups/team",
    "/buckets/b/groups/{new[title]}",
    "/buckets/other/groups/team",
    "/buckets/b/groups/{x!r}",
]
REPLY_TO = ["{new[title]}", "Author <{new[title]}>", "{new[nested][deep][er]}"]
RECORD_IDS = ["r1", "a" * 32 + "-", "rec-2", "x"]
SIZES = [0, 1, 1000, 70_000, MEBIBYTE + 10]

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)
small_text = st.text(alphabet=st.sampled_from("ab{}[]!:.^()|+*?\\-_ \r\n\u2028é東0"), max_size=30)
huge_text = st.builds(
    lambda piece, n: piece * n, st.sampled_from(PLACEHOLDERS + ["x"]), st.sampled_from(SIZES)
)
# Long templates of placeholders that each render long values.
long_template = st.builds(
    lambda piece, n: piece * n,
    st.sampled_from(["{new[big]}", "{new[title]}{user_agent}", "x"]),
    st.sampled_from([100, 1000, 2700]),  # Up to 64 KiB, the longest template allowed.
)
template_text = (
    st.lists(st.sampled_from(PLACEHOLDERS) | small_text, max_size=6).map("".join) | huge_text
)
any_text = template_text | st.sampled_from(PATTERNS + ADDRESSES)
any_value = any_text | json_values

safe_text = st.text(alphabet=st.sampled_from("ab ()|+*?\\-_:.!é東0"), max_size=20)
good_template = st.lists(st.sampled_from(GOOD_PLACEHOLDERS) | safe_text, max_size=6).map("".join)
good_filters = {
    "resource_name": st.sampled_from(["record", "collection"]),
    "action": st.sampled_from(["create", "update", "delete"]),
    "record_id": st.sampled_from(VALID_PATTERNS + RECORD_IDS),
    "collection_id": st.sampled_from(["c", "^c", "^(a|aa)+$"]),
    "event": st.sampled_from(["kinto.core.events.ResourceChanged", "^kinto"]),
}
# Hooks much like people write, so that many examples send emails.
usual_hooks = st.fixed_dictionaries(
    {
        "template": good_template | long_template,
        "recipients": st.lists(
            st.sampled_from(ADDRESSES[:3] + ADDRESSES[5:7]), min_size=1, max_size=3
        ),
    },
    optional={
        "subject": good_template | long_template,
        "sender": st.sampled_from(ADDRESSES[:3]),
        **good_filters,
        # Issue 7's richer hooks.
        "html_template": good_template | long_template,
        "cc": st.lists(st.sampled_from(ADDRESSES[:3] + ADDRESSES[5:7]), max_size=2),
        "bcc": st.lists(st.sampled_from(ADDRESSES[:3] + ADDRESSES[5:7]), max_size=2),
        "reply_to": st.lists(st.sampled_from(ADDRESSES[:3] + REPLY_TO), max_size=2),
        "digest": st.booleans(),
        "item_template": good_template,
        "private": st.booleans(),
    },
)
# Anything at all in any field.
wild_hooks = st.fixed_dictionaries(
    {},
    optional={
        name: any_value
        for name in (
            "template",
            "subject",
            "sender",
            "recipients",
            "resource_name",
            "action",
            "record_id",
            "collection_id",
            "id",
            "event",
            "html_template",
            "cc",
            "bcc",
            "reply_to",
            "digest",
            "item_template",
            "private",
        )
    },
)
usual_metadata = st.fixed_dictionaries({"hooks": st.lists(usual_hooks, min_size=1, max_size=3)})
wild_metadata = (
    st.fixed_dictionaries({"hooks": st.lists(usual_hooks | wild_hooks | any_value, max_size=3)})
    | st.fixed_dictionaries({"hooks": any_value})
    | json_values
)
metadata = st.one_of(usual_metadata, usual_metadata, usual_metadata, wild_metadata)

records = st.fixed_dictionaries(
    {},
    optional={
        "title": small_text | any_value,
        "big": st.builds(lambda n: "é\r\n" * n, st.sampled_from(SIZES)),
        "nested": json_values,
        "tags": st.lists(small_text, max_size=3),
    },
)
writes = st.lists(
    st.tuples(st.sampled_from(["PUT", "PATCH", "DELETE"]), st.sampled_from(RECORD_IDS), records),
    min_size=1,
    max_size=3,
)


class App(EmailerWebTest):
    """Only to build the app and reach the SMTP server: no test of its own."""

    __test__ = False

    @classmethod
    def extra_settings(cls):
        # Three hooks of 1 MiB bodies in emoji cost 30 MB (see ``message_size``): every
        # email must arrive here, these tests are about rendering.
        return {
            "userid_hmac_secret": SECRET,
            "kinto_emailer.max_request_bytes": "100000000",
            "kinto_emailer.queue_bytes": "200000000",
        }


@pytest.fixture(scope="module")
def app():
    App.setUpClass()
    return App.app


def is_2xx(response):
    return 200 <= response.status_int < 300


def run(app, data, writes, user_agent, group):
    """Save ``data`` as hooks, make ``writes``; returns the save's response and the emails."""
    registry = app.app.registry
    registry.storage.flush()
    registry.permission.flush()
    inbox = App.smtp.inbox
    inbox.clear()
    headers = {"Content-Type": "application/json", **get_user_headers("alice")}
    app.put_json("/buckets/b", {"data": {}}, headers=headers)
    app.put_json(
        "/buckets/b/groups/team", {"data": {"members": group}}, headers=headers, status="*"
    )

    saved = app.put_json(
        "/buckets/b/collections/c",
        {"data": {"kinto-emailer": data}},
        headers=headers,
        status="*",
    )
    assert is_2xx(saved) or (saved.status_int == 400 and saved.json["message"]), saved
    # Whatever validation said, storage may hold such metadata (saved before it existed).
    registry.storage.update(
        resource_name="collection",
        parent_id="/buckets/b",
        object_id="c",
        obj={"id": "c", "kinto-emailer": data},
    )

    environ = {"HTTP_USER_AGENT": user_agent}
    for method, record_id, record in writes:
        url = f"/buckets/b/collections/c/records/{record_id}"
        if method == "DELETE":
            response = app.delete(url, headers=headers, extra_environ=environ, status="*")
            assert is_2xx(response) or response.status_int == 404, response
        else:
            request = app.put_json if method == "PUT" else app.patch_json
            body = {"data": record}
            response = request(url, body, headers=headers, extra_environ=environ, status="*")
            assert is_2xx(response) or (method == "PATCH" and response.status_int == 404)

    assert registry.emailer.delivery.drain(timeout=30)
    messages = list(inbox.messages)
    for message in messages:
        subject = message["Subject"] or ""
        assert "\n" not in subject and "\r" not in subject
        assert len(subject) <= 998
        for part in message.walk():
            if part.is_multipart():
                continue
            # Lines end with CRLF in transit: count them as rendered, plus the message's own.
            body = part.get_content().replace("\r\n", "\n").removesuffix("\n")
            assert len(body.encode("utf-8")) <= MEBIBYTE
        assert message["Bcc"] is None
        assert SECRET not in message.as_string()
    # Shown by --hypothesis-show-statistics.
    event(f"saved: {saved.status_int}")
    event(f"emails: {'none' if not messages else 'some'}")
    return saved, messages


groups = st.lists(st.sampled_from(ADDRESSES) | small_text, max_size=4)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=metadata, writes=writes, user_agent=small_text, group=groups)
def test_no_hook_breaks_a_write_or_sends_too_much(app, data, writes, user_agent, group):
    run(app, data, writes, user_agent, group)


# Hooks that validation accepts and that fire on every write: every example sends.
sending_hooks = st.fixed_dictionaries(
    {
        "template": good_template | long_template,
        "subject": good_template.map(lambda t: t.replace("\r\n", "").replace("\u2028", ""))
        | long_template,
        "recipients": st.lists(st.sampled_from(ADDRESSES[:3]), min_size=1, max_size=3),
    },
    optional={"html_template": good_template | long_template},
)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    hooks=st.lists(sending_hooks, min_size=1, max_size=3),
    record=records,
    user_agent=small_text,
)
def test_every_rendered_email_stays_within_the_limits(app, hooks, record, user_agent):
    saved, messages = run(app, {"hooks": hooks}, [("PUT", "r1", record)], user_agent, [])
    assert saved.status_int == 201, saved.json
    # The collection's creation and the record's, for each hook.
    assert len(messages) == 2 * len(hooks)
