"""Every ``mail.*`` and ``kinto_emailer.*`` setting, read and checked once at start-up.

``EmailerSettings`` is the table (``table``): one line per setting gives its attribute, its
key, its default as it would be written in the ini file, and its conversion
(``conversions``). Adding a setting is adding a line; its key is then known, and any other
``kinto_emailer.*`` key is refused (``reading``, which also checks the settings that only
make sense together).
"""

from .conversions import (
    BYTES,
    COUNT,
    OUTBOXES,
    PORT,
    SECONDS,
    UP_TO_A_DAY,
    Number,
    address,
    boolean,
    domains,
    optional,
    outbox_choice,
    principal_prefixes,
    readable_file,
    text,
    words,
)
from .reading import (
    KINTO_PREFIX,
    PLUGIN_PREFIX,
    POSTGRESQL_STORAGE,
    read_settings,
    unknown_setting,
)
from .table import DEFAULT_SENDER, EXPOSED_SETTINGS, ROWS, EmailerSettings, setting


__all__ = [
    "BYTES",
    "COUNT",
    "DEFAULT_SENDER",
    "EXPOSED_SETTINGS",
    "KINTO_PREFIX",
    "OUTBOXES",
    "PLUGIN_PREFIX",
    "PORT",
    "POSTGRESQL_STORAGE",
    "ROWS",
    "SECONDS",
    "UP_TO_A_DAY",
    "EmailerSettings",
    "Number",
    "address",
    "boolean",
    "domains",
    "optional",
    "outbox_choice",
    "principal_prefixes",
    "read_settings",
    "readable_file",
    "setting",
    "text",
    "unknown_setting",
    "words",
]
