"""The outbox's table: created and upgraded by ``kinto migrate``, checked at start-up."""

from pathlib import Path

import psycopg2
from kinto.core.storage.postgresql import PostgreSQLPluginMigration
from pyramid.exceptions import ConfigurationError


TABLE = "kinto_emailer_outbox"
CHANNEL = "kinto_emailer_outbox"
SCHEMA_VERSION = 6


class Migration(PostgreSQLPluginMigration):
    """Creates and upgrades the outbox table; run by ``kinto migrate``."""

    name = "kinto_emailer"
    schema_version = SCHEMA_VERSION
    migrations_directory = str(Path(__file__).parent / "migrations")


def dsn(url: str) -> str:
    """A libpq URL from a SQLAlchemy one (``postgresql+psycopg2://...``)."""
    scheme, rest = url.split("://", 1)
    return f"{scheme.split('+', 1)[0]}://{rest}"


def check_schema(url: str) -> None:
    """Stop start-up when the database has no outbox table, or an old one."""
    try:
        connection = psycopg2.connect(dsn(url), connect_timeout=10)
    except psycopg2.Error as e:
        raise ConfigurationError(f"kinto_emailer.outbox: cannot reach the database: {e}")
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT to_regclass('metadata') IS NOT NULL")
            version = None
            if cursor.fetchone()[0]:
                cursor.execute(
                    "SELECT max(value::int) FROM metadata WHERE name = %s",
                    ("kinto_emailer_schema_version",),
                )
                version = cursor.fetchone()[0]
    finally:
        connection.close()
    if version != SCHEMA_VERSION:
        found = "no outbox table" if version is None else f"outbox schema version {version}"
        raise ConfigurationError(
            f"kinto_emailer.outbox = postgresql: the database has {found} "
            f"(version {SCHEMA_VERSION} needed): run 'kinto migrate' with this ini file."
        )
