"""Issue 7, points 2 to 4: HTML bodies, cc/bcc/reply_to, private recipients, through the
real app and the real SMTP server."""

import functools
import logging

from tests.support import HookWebTest, hooked, record_hook


hook = functools.partial(record_hook, "{action}d {id}", template="Title: {new[title]}")

MEMBERS = [f"account:user{n:02}@example.com" for n in range(30)]


def parts(message):
    return {
        part.get_content_type(): part.get_content()
        for part in message.walk()
        if not part.is_multipart()
    }


class HTMLTest(HookWebTest):
    def test_an_html_template_makes_text_and_html_alternatives(self):
        self.save_hooks(hook(html_template="<p>Title: <b>{new[title]}</b></p>"))
        self.create_record(data={"title": "hello"})
        message = self.one_email()
        assert message.get_content_type() == "multipart/alternative"
        texts = parts(message)
        assert texts["text/plain"].strip() == "Title: hello"
        assert texts["text/html"].strip() == "<p>Title: <b>hello</b></p>"

    def test_values_are_escaped_in_html_and_raw_in_text(self):
        self.save_hooks(hook(html_template="<p>{new[title]} by {user_agent}</p>"))
        title = "<script>alert('x') & \"y\"</script>"
        self.create_record(data={"title": title})
        texts = parts(self.one_email())
        assert texts["text/plain"].strip() == f"Title: {title}"
        assert (
            texts["text/html"]
            .strip()
            .startswith(
                "<p>&lt;script&gt;alert(&#x27;x&#x27;) &amp; &quot;y&quot;&lt;/script&gt; by "
            )
        )
        assert "<script>" not in texts["text/html"]

    def test_an_empty_text_template_still_has_its_text_part(self):
        self.save_hooks(hook(template="", html_template="<p>{id}</p>"))
        self.create_record()
        texts = parts(self.one_email())
        assert texts["text/plain"].strip() == ""
        assert texts["text/html"].startswith("<p>")

    def test_without_html_template_the_email_is_plain_text(self):
        self.save_hooks(hook())
        self.create_record(data={"title": "<b>"})
        message = self.one_email()
        assert message.get_content_type() == "text/plain"
        assert message.get_content().strip() == "Title: <b>"

    def test_a_digest_lists_its_items_escaped_one_per_line_in_html(self):
        self.save_hooks(
            hook(
                digest=True,
                item_template="{new[title]}",
                template="{count}: {items}",
                html_template="<p>{count}</p><p>{items}</p>",
            )
        )
        body = {
            "defaults": {"method": "POST", "path": "/buckets/b/collections/c/records"},
            "requests": [{"body": {"data": {"title": t}}} for t in ("<a>", "b&c")],
        }
        self.app.post_json("/batch", body, headers=self.headers)
        texts = parts(self.one_email())
        assert texts["text/plain"].replace("\r\n", "\n").strip() == "2: <a>\nb&c"
        html = texts["text/html"].replace("\r\n", "\n").strip()
        assert html == "<p>2</p><p>&lt;a&gt;<br>\nb&amp;c</p>"


class CopiesTest(HookWebTest):
    def setUp(self):
        super().setUp()
        self.app.put_json(
            "/buckets/b/groups/auditors",
            {"data": {"members": ["account:audit1@example.com", "audit2@example.com"]}},
            headers=self.headers,
        )

    def test_cc_is_in_the_envelope_and_headers_bcc_only_in_the_envelope(self):
        self.save_hooks(
            hook(
                cc=["Carol <carol@example.com>", "/buckets/b/groups/auditors"],
                bcc=["dave@example.com", "/buckets/b/groups/{collection_id}-nobody"],
            )
        )
        self.create_record()
        message = self.one_email()
        assert sorted(message.envelope_to) == [
            "alice@example.com",
            "audit1@example.com",
            "audit2@example.com",
            "carol@example.com",
            "dave@example.com",
        ]
        assert message["To"] == "alice@example.com"
        assert message["Cc"] == "Carol <carol@example.com>, audit1@example.com, audit2@example.com"
        assert message["Bcc"] is None
        assert b"dave@example.com" not in message.as_bytes()

    def test_an_address_in_several_fields_gets_one_copy_in_the_most_visible(self):
        self.save_hooks(hook(cc=["alice@example.com", "bob@example.com"], bcc=["Bob@example.com"]))
        self.create_record()
        message = self.one_email()
        assert message.envelope_to == ["alice@example.com", "bob@example.com"]
        assert message["Cc"] == "bob@example.com"

    def test_cc_and_bcc_alone_send_nothing_when_recipients_expand_to_nobody(self):
        self.save_hooks(hook(recipients=["/buckets/b/groups/missing"], cc=["bob@example.com"]))
        self.create_record()
        self.no_email()


class ReplyToTest(HookWebTest):
    def test_reply_to_renders_from_a_record_field(self):
        self.save_hooks(hook(reply_to=["{new[email]}", "Team <team@example.com>"]))
        self.create_record(data={"email": "Zoé Author <zoe@example.com>"})
        message = self.one_email()
        assert str(message["Reply-To"]) == "Zoé Author <zoe@example.com>, Team <team@example.com>"
        assert message.envelope_to == ["alice@example.com"]

    def test_reply_to_may_name_a_group(self):
        self.app.put_json(
            "/buckets/b/groups/owners",
            {"data": {"members": ["account:owner@example.com"]}},
            headers=self.headers,
        )
        self.save_hooks(hook(reply_to=["/buckets/b/groups/owners"]))
        self.create_record()
        assert self.one_email()["Reply-To"] == "owner@example.com"

    def test_an_invalid_rendered_reply_to_is_dropped_and_logged_the_email_goes(self):
        self.save_hooks(hook(reply_to=["{new[email]}"]))
        with self.assertLogs("kinto_emailer", logging.WARNING) as logs:
            self.create_record(data={"email": "not an address\r\nBcc: evil@example.com"})
            message = self.one_email()
        assert message["Reply-To"] is None
        assert message.envelope_to == ["alice@example.com"]
        assert "evil" not in str(message["Bcc"]) and b"\nBcc:" not in message.as_bytes()
        [line] = [line for line in logs.output if "reply_to" in line]
        assert "/buckets/b/collections/c#0" in line and "not an address" in line

    def test_a_missing_field_leaves_no_reply_to(self):
        self.save_hooks(hook(reply_to=["{new[email]}"]))
        with self.assertLogs("kinto_emailer", logging.WARNING):
            self.create_record()
            assert self.one_email()["Reply-To"] is None


class SingleStringTest(HookWebTest):
    """Issue 14, point 4: an address field written as one string is a list of one."""

    def test_a_string_reply_to_is_accepted_and_used(self):
        self.save_hooks(hook(reply_to="Team <team@example.com>"))
        self.create_record()
        assert str(self.one_email()["Reply-To"]) == "Team <team@example.com>"

    def test_string_recipients_cc_and_bcc_are_lists_of_one(self):
        self.app.put_json(
            "/buckets/b/groups/copies",
            {"data": {"members": ["account:dave@example.com"]}},
            headers=self.headers,
        )
        fields = {"cc": "carol@example.com", "bcc": "/buckets/b/groups/copies"}
        self.save_hooks(hook(recipients="bob@example.com", **fields))
        self.create_record()
        message = self.one_email()
        assert (message["To"], message["Cc"]) == ("bob@example.com", "carol@example.com")
        assert message.envelope_to == ["bob@example.com", "carol@example.com", "dave@example.com"]

    def test_a_string_is_checked_as_its_list_would_be(self):
        assert 'Invalid recipients in "reply_to": nobody' in self.refused(hook(reply_to="nobody"))
        message = self.refused(hook(cc="/buckets/other/groups/g"))
        assert 'Invalid bucket for groups in "cc": /buckets/other/groups/g' in message


class PrivateTest(HookWebTest):
    def setUp(self):
        super().setUp()
        self.app.put_json(
            "/buckets/b/groups/team",
            {"data": {"members": MEMBERS + ["system.Authenticated"]}},
            headers=self.headers,
        )

    def test_each_member_of_a_group_gets_an_email_of_their_own_over_one_connection(self):
        self.save_hooks(
            hook(private=True, recipients=["/buckets/b/groups/team"], reply_to=["r@example.com"])
        )
        self.create_record(data={"title": "hello"})
        messages = self.emails(30)
        addresses = sorted(m["To"] for m in messages)
        assert addresses == sorted(member.split(":", 1)[1] for member in MEMBERS)
        for message in messages:
            assert message.envelope_to == [message["To"]]
            assert message["Cc"] is None and message["Reply-To"] == "r@example.com"
            assert message.get_content().strip() == "Title: hello"
        assert len({m["Message-ID"] for m in messages}) == 30
        # The worker sends a burst over one SMTP session: one client port for all 30.
        assert len({m.peer for m in messages}) == 1

    def test_a_private_digest_sends_one_digest_to_each(self):
        self.save_hooks(
            hook(private=True, digest=True, recipients=["a@example.com", "b@example.com"])
        )
        body = {
            "defaults": {"method": "POST", "path": "/buckets/b/collections/c/records"},
            "requests": [{"body": {"data": {}}}] * 3,
        }
        self.app.post_json("/batch", body, headers=self.headers)
        assert sorted(m["To"] for m in self.emails(2)) == ["a@example.com", "b@example.com"]

    def test_cc_stored_on_a_private_hook_is_ignored_and_logged(self):
        self.store_unchecked(
            hooked(hook(private=True, cc=["x@example.com"])),
            collection_id="c",
        )
        with self.assertLogs("kinto_emailer", logging.WARNING) as logs:
            self.create_record()
            message = self.one_email()
        assert message.envelope_to == ["alice@example.com"]
        assert any("ignored on a private hook" in line for line in logs.output)


class EmptyHTMLTest(HookWebTest):
    def test_empty_templates_make_empty_parts(self):
        self.save_hooks(hook(template="", html_template=""))
        self.create_record()
        message = self.one_email()
        assert message.get_content_type() == "multipart/alternative"
        assert {k: v.strip() for k, v in parts(message).items()} == {
            "text/plain": "",
            "text/html": "",
        }
