"""A test-only Kinto plugin: a write whose data holds ``"explode": true`` fails after its event.

Its subscriber runs after kinto_emailer's (include it last), inside the transaction, so the
request answers 500 and the transaction rolls back after the emails were built.
"""

from kinto.core.events import ResourceChanged


class Explosion(Exception):
    pass


def explode(event):
    for impacted in event.impacted_objects:
        if (impacted.get("new") or {}).get("explode") is True:
            raise Explosion("explode: true in the data")


def includeme(config):
    config.add_subscriber(explode, ResourceChanged)
