"""A test-only Kinto plugin: a write whose data holds ``"explode": true`` fails after its event.

Its subscriber runs after kinto_emailer's (include it last), inside the transaction, so the
request answers 500 and the transaction rolls back after the emails were built. With
``"explode": "at commit"`` the commit fails instead (a resource votes no), after
kinto_emailer's before-commit hook has written the emails to a transactional outbox.
"""

import transaction
from kinto.core.events import ResourceChanged


class Explosion(Exception):
    pass


def explode(event):
    for impacted in event.impacted_objects:
        explosion = (impacted.get("new") or {}).get("explode")
        if explosion is True:
            raise Explosion("explode: true in the data")
        if explosion == "at commit":
            transaction.get().join(_VotesNo())


class _VotesNo:
    """Refuses the commit after every before-commit hook ran: the others roll back."""

    transaction_manager = transaction.manager

    def sortKey(self):
        return "!"  # Votes before zope.sqlalchemy's session ("~sqlalchemy:..."), which commits.

    def tpc_vote(self, txn):
        raise Explosion("explode: at commit in the data")

    def abort(self, txn):
        pass

    tpc_begin = commit = tpc_finish = tpc_abort = abort


def includeme(config):
    config.add_subscriber(explode, ResourceChanged)
