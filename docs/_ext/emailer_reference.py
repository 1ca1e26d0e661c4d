"""Reference tables generated from the code that defines them, so that they cannot drift.

``.. emailer-settings::`` lists every ``mail.*`` and ``kinto_emailer.*`` setting of the table
in ``kinto_emailer/config/table.py`` (key, default, value); ``.. emailer-hook-fields::`` every
field of the hook schema (kind, required). The directive's content gives the description
of each key, a name on a line of its own, its text indented below it. A key of the code
that has no description, or a description of a key the code doesn't have, is a warning:
``make docs`` (``-W``) fails on it.
"""

import importlib

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective


logger = logging.getLogger(__name__)

#: What each conversion of kinto_emailer/config/conversions.py accepts, in words.
VALUES = {
    "text": "text",
    "optional": "text",
    "whole_number": "whole number",
    "boolean": "``true`` or ``false``",
    "address": "email address",
    "readable_file": "path of a readable PEM file",
    "domains": "domain names",
    "words": "principals",
    "principal_prefixes": "user id prefixes, each a name and a colon (``ldap:``)",
    "outbox_choice": "``memory`` or ``postgresql``",
}


def plugin_settings():
    """``(key, default, value in words)`` of every setting of the plugin, in table order."""
    config = importlib.import_module("kinto_emailer.config")
    rows = []
    for row in config.ROWS.values():
        key, default, convert = (row.metadata[k] for k in ("key", "default", "convert"))
        if not key.startswith(("mail.", "kinto_emailer.")):
            continue  # Kinto's own settings, which the plugin reads: Kinto documents them.
        # A numeric setting's conversion keeps its range in words ("a whole number from 1
        # to 65535"), the one its error message gives; the others are plain functions.
        value = row.metadata.get("range")
        if value is not None:
            value = value.removeprefix("a ")
            if getattr(convert, "optional", False):
                value += "; or empty"
        else:
            name = getattr(convert, "__name__", type(convert).__name__)
            value = VALUES.get(name)
            if value is None:
                logger.warning("emailer-settings: no words for the conversion %r of %s", name, key)
                value = name
        rows.append((key, default, value))
    return rows


def hook_fields():
    """``(field, kind, required)`` of every field of a hook, in schema order."""
    schema = importlib.import_module("kinto_emailer.hooks.schema")
    kinds = {
        "Text": "string",
        "StringList": "list of strings, or one string",
        "Flag": "``true`` or ``false``",
        "Seconds": "whole number of seconds",
    }
    rows = []
    for child in schema.Hook().children:
        kind = kinds.get(type(child.typ).__name__)
        if kind is None:
            logger.warning("emailer-hook-fields: no words for the type of %r", child.name)
            kind = type(child.typ).__name__
        rows.append((child.name, kind, "yes" if child.required else "no"))
    return rows


def descriptions(lines):
    """``{key: [lines]}`` from the directive's content: a key, then its indented text."""
    found, key = {}, None
    for line in lines:
        if line and not line[0].isspace():
            key = line.strip()
            found[key] = []
        elif key is not None:
            found[key].append(line[3:] if line.startswith("   ") else line.strip())
    return found


class ReferenceTable(SphinxDirective):
    has_content = True
    header: tuple[str, ...] = ()
    widths = ""

    def rows(self):
        raise NotImplementedError

    def run(self):
        described = descriptions(list(self.content))
        rows = self.rows()
        keys = [row[0] for row in rows]
        for key in keys:
            if not described.get(key):
                logger.warning(
                    "%s: %s has no description", self.name, key, location=self.get_location()
                )
        for key in described:
            if key not in keys:
                logger.warning(
                    "%s: %s is described but the code has no such key",
                    self.name,
                    key,
                    location=self.get_location(),
                )
        table = [".. list-table::", "   :header-rows: 1", f"   :widths: {self.widths}", ""]
        table.append("   * - " + "\n     - ".join(self.header))
        for row in rows:
            key, *columns = row
            cells = [f"``{key}``", *[c if c else "(empty)" for c in self.cells(columns)]]
            table.append("   * - " + "\n     - ".join(cells))
            text = described.get(key) or ["\\-"]
            table.append("     - " + text[0])
            table.extend(f"       {line}" if line else "" for line in text[1:])
        container = nodes.container()
        lines = "\n".join(table).splitlines()
        self.state.nested_parse(StringList(lines, source="emailer-reference"), 0, container)
        return container.children

    def cells(self, columns):
        return columns


class SettingsTable(ReferenceTable):
    header = ("setting", "default", "value", "what it does")
    widths = "28 10 20 42"

    def rows(self):
        return plugin_settings()

    def cells(self, columns):
        default, value = columns
        return [f"``{default}``" if default else "", value]


class HookFieldsTable(ReferenceTable):
    header = ("field", "value", "required", "what it does")
    widths = "18 16 8 58"

    def rows(self):
        return hook_fields()


def setup(app):
    app.add_directive("emailer-settings", SettingsTable)
    app.add_directive("emailer-hook-fields", HookFieldsTable)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
