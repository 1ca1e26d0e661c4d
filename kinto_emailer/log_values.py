"""How values the plugin does not write itself (hook text, records, server replies, paths)
go into a log message, so that no log formatter chokes on them.

Kinto's ``logging_color_formatter.ColorFormatter`` calls ``str.format`` on each message: a
``{`` in it is a placeholder, and ``{new[who]}`` raises ``KeyError``. Such a value is written
as a JSON string whose braces are ``\\u007b`` and ``\\u007d`` (``json.loads`` gives it back);
the exact value also goes in the record's ``extra``, which Kinto's formatters print as it is
(``ColorFormatter`` as ``key=value`` after the message, ``JsonLogFormatter`` in ``Fields``).
"""

import json
import re


#: Written as they are: no space, quote, equals sign or brace.
_PLAIN = re.compile(r"^[^\s\"={}]+$")


def quoted(value: object) -> str:
    """``value`` as it is when it is one plain word, else a JSON string without braces."""
    text = str(value)
    if _PLAIN.match(text):
        return text
    return json.dumps(text).replace("{", "\\u007b").replace("}", "\\u007d")


def fields(**values: object) -> str:
    """``name=value`` pairs, each value ``quoted``."""
    return " ".join(f"{name}={quoted(value)}" for name, value in values.items())
