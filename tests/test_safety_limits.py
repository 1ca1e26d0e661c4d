"""Issue 3, point 4: limits, each a setting, each a 400 naming it (or a log at send time)."""

from tests.support import HookWebTest, hook


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
