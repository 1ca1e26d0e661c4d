"""Issue 19, point 3: no log line of the plugin breaks a log formatter.

Kinto's shipped logging (``config/kinto.ini``: ``logging_color_formatter.ColorFormatter``)
calls ``str.format`` on each message; hook text, record data, server replies and paths hold
braces. Each log call of the plugin is walked (``test_every_log_call_...``), and those that
carry such values are triggered through the real app under the shipped set-up, with Kinto's
JSON formatter too.
"""

import ast
import io
import json
import logging
import os
import pathlib
import re
import sys

import pytest
from kinto.core import JsonLogFormatter
from pyramid.paster import setup_logging

import kinto_emailer
from kinto_emailer.log_values import fields, quoted
from tests.support import HookWebTest, free_port


SHIPPED_INI = os.path.join(os.path.dirname(__file__), os.pardir, "config", "kinto.ini")
PACKAGE = pathlib.Path(kinto_emailer.__file__).parent
BRACES = "{new[who]} {0} {"
LOG_METHODS = {"debug", "info", "warning", "error", "exception", "critical", "log"}
#: Arguments of log messages that the plugin makes itself: numbers, its own names.
SAFE_ARGUMENTS = {
    "recovered", "held", "timeout", "left", "outcome", "limit", "field", "budget.seconds",
    "settings.shutdown_timeout", "settings.outbox_name", "budget.skipped", "budget.reported",
    "max_age", "kind.noun",
}  # fmt: skip
SAFE_CALLS = {"quoted", "fields", "len"}
#: ``ColorFormatter``'s colours.
ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.mark.parametrize("value", ["plain", "", "a b", '"q"', "k=v", BRACES, "{", "}}", "é{"])
def test_a_quoted_value_has_no_braces_and_reads_back(value):
    written = quoted(value)
    assert "{" not in written and "}" not in written
    assert written == value or json.loads(written) == value


def test_plain_words_are_written_as_they_are():
    assert fields(hook="/buckets/b/collections/c#0", n=3) == "hook=/buckets/b/collections/c#0 n=3"


def _log_calls():
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in LOG_METHODS
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id.endswith("logger")
            ):
                yield f"{path.relative_to(PACKAGE)}:{node.lineno}", node


def _safe(argument):
    if isinstance(argument, ast.Constant):
        return isinstance(argument.value, int | float) or not {"{", "}"} & set(argument.value)
    if isinstance(argument, ast.BinOp):
        return _safe(argument.left) and _safe(argument.right)
    if isinstance(argument, ast.IfExp):
        return _safe(argument.body) and _safe(argument.orelse)
    if isinstance(argument, ast.JoinedStr):
        return all(_safe(part.value if isinstance(part, ast.FormattedValue) else part)
                   for part in argument.values)  # fmt: skip
    if isinstance(argument, ast.Call):
        name = argument.func
        if isinstance(name, ast.Attribute) and name.attr == "__name__":
            return True
        return isinstance(name, ast.Name) and name.id in SAFE_CALLS
    if isinstance(argument, ast.Attribute) and argument.attr == "__name__":
        return True  # A class name: an identifier.
    return ast.unparse(argument) in SAFE_ARGUMENTS


def test_every_log_call_keeps_outside_values_out_of_its_format_string():
    """A literal message without braces; each argument a number, one of the plugin's own
    names, or ``quoted``: hook text, records, replies and paths go through ``quoted``."""
    calls = list(_log_calls())
    assert len(calls) > 30  # The walk finds them.
    for where, call in calls:
        arguments = call.args[1:] if call.func.attr == "log" else call.args
        message, *values = arguments
        assert isinstance(message, ast.Constant) and isinstance(message.value, str), where
        assert "{" not in message.value and "}" not in message.value, where
        unsafe = [ast.unparse(value) for value in values if not _safe(value)]
        assert not unsafe, f"{where}: {unsafe} may hold braces: pass them through quoted()"


class ShippedLogging:
    """``config/kinto.ini``'s logging, set up as ``kinto start`` (pserve) does, writing to a
    buffer in place of stderr; ``json`` swaps in Kinto's ``JsonLogFormatter``."""

    def __init__(self, json_formatter=False, debug=()):
        self.json_formatter = json_formatter
        self.debug = debug

    def __enter__(self):
        manager = logging.root.manager
        self.loggers = {
            name: (lg.handlers[:], lg.level, lg.propagate, lg.disabled)
            for name, lg in [("", logging.root), *manager.loggerDict.items()]
            if isinstance(lg, logging.Logger)
        }
        self.buffer = io.StringIO()
        self.stderr, sys.stderr = sys.stderr, self.buffer
        setup_logging(SHIPPED_INI)
        # The test's SMTP server (aiosmtpd) logs what it receives: not the plugin's lines.
        logging.getLogger("mail.log").disabled = True
        if self.json_formatter:
            for handler in logging.root.handlers:
                handler.setFormatter(JsonLogFormatter())
        for name in self.debug:
            logging.getLogger(name).setLevel(logging.DEBUG)
        return self

    def output(self):
        return self.buffer.getvalue()

    def __exit__(self, *exc_info):
        sys.stderr = self.stderr
        manager = logging.root.manager
        for name, (handlers, level, propagate, disabled) in self.loggers.items():
            lg = logging.root if name == "" else manager.loggerDict[name]
            lg.handlers[:], lg.level, lg.propagate, lg.disabled = (
                handlers,
                level,
                propagate,
                disabled,
            )


class ColorFormatterTest(HookWebTest):
    """Each log line that can hold outside text, through the real app."""

    json_formatter = False

    @classmethod
    def extra_settings(cls):
        return {"kinto_emailer.retry_max_attempts": "1"}

    def logged(self, scenario, *debug):
        with ShippedLogging(self.json_formatter, debug) as logs:
            scenario()
            self.drain()
        output = logs.output()
        assert "Logging error" not in output, output
        assert "Traceback" not in output, output
        return output

    def line(self, output, words, field, value):
        """The line with ``words`` that shows ``field``'s exact value."""
        lines = [ANSI.sub("", line) for line in output.splitlines() if words in line]
        for line in lines:
            if self.json_formatter:
                if json.loads(line)["Fields"].get(field) == value:
                    return line
            elif f"{field}={value}" in line:
                return line
        raise AssertionError(f"no line with {words!r} and {field}={value!r} in:\n{output}")

    def test_a_reply_to_template_that_renders_to_no_address(self):
        template = "{new[who]}"

        def scenario():
            self.save_hooks(
                {"recipients": ["a@example.com"], "reply_to": [template], "template": "{id}"}
            )
            self.create_record(data={"who": "no {address} here"})

        output = self.logged(scenario, "kinto_emailer.compose")
        self.line(output, "not an address: dropped", "reply_to", template)
        self.line(output, "rendered to", "rendered", "no {address} here")

    def test_an_invalid_pattern_saved_before_validation(self):
        pattern = "^(?<{new})"

        def scenario():
            hooks = [{"recipients": ["a@example.com"], "resource_name": pattern, "template": "-"}]
            self.create_collection()
            self.store_unchecked({"kinto-emailer": {"hooks": hooks}}, "b", "c")
            self.create_record()

        output = self.logged(scenario)
        line = self.line(
            output, "invalid regular expression", "hook", "/buckets/b/collections/c#0"
        )
        assert "error=" in line or self.json_formatter

    def test_a_mail_server_reply_and_the_recipients_of_a_failed_email(self):
        def scenario():
            self.save_hooks({"recipients": ["{x}@example.com"], "template": "{id}"})
            self.inbox.scripted_replies.append("554 5.7.1 {new[who]} refused")
            self.create_record()

        output = self.logged(scenario, "kinto_emailer.outcomes.addresses")
        line = self.line(
            output, "Email failed", "reason", "permanent: 554 5.7.1 {new[who]} refused"
        )
        assert "Email failed" in line
        self.line(output, "failed to:", "recipients", ["{x}@example.com"])

    def test_the_heartbeat_of_a_mail_server_whose_name_has_braces(self):
        app = self.make_app({"mail.host": "{nowhere}.invalid", "mail.port": str(free_port())})
        try:
            output = self.logged(lambda: app.get("/__heartbeat__", status=503))
        finally:
            app.app.registry.emailer.delivery.stop(timeout=1)
        port = app.app.registry.emailer.settings.smtp_port
        self.line(output, "Emailer heartbeat", "mail_server", f"{{nowhere}}.invalid:{port}")


class JsonFormatterTest(ColorFormatterTest):
    """The same lines with Kinto's ``JsonLogFormatter``: the exact values in ``Fields``."""

    json_formatter = True
