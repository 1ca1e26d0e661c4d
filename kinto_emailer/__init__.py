"""Kinto plugin that sends emails when records and collections change."""

import importlib.metadata
import logging

from kinto.core.events import ACTIONS, ResourceChanged
from pyramid.config import Configurator
from pyramid.events import ContextFound, NewRequest

from .compose import drafts, optouts
from .compose.listener import build_notification
from .config import read_settings
from .delivery import shutdown
from .delivery.service import Delivery, Emailer
from .hooks import rollback
from .hooks.events import review_event_classes
from .hooks.validation import validate_metadata
from .outbox.backends import backend as outbox_backend
from .web import health
from .web.preview import PATH as PREVIEW_PATH


__version__ = importlib.metadata.version("kinto-emailer")
__all__ = ("build_notification", "includeme")

logger = logging.getLogger(__name__)


def includeme(config: Configurator) -> None:
    settings = config.get_settings()
    emailer_settings = read_settings(settings)
    storage = getattr(config.registry, "storage", None)
    # Outcomes counted through Kinto's metrics service, if it has one.
    metrics = health.Metrics(config.registry)
    delivery = Delivery(emailer_settings, drafts, storage, count=metrics.count)
    config.registry.emailer = Emailer(emailer_settings, delivery)
    health.setup(config, delivery)
    shutdown.register_process_hooks()
    if delivery.worker is not None:
        # Emails wait in memory (or in our claims): SIGTERM must let the worker finish.
        shutdown.handle_sigterm()

    if emailer_settings.unsubscribe_key is None:
        logger.warning(
            "Private hooks' emails carry no unsubscribe link: set kinto.userid_hmac_secret "
            "or kinto_emailer.unsubscribe_secret"
        )
    config.include("kinto_emailer.web.unsubscribe")
    config.include("kinto_emailer.web.preview")

    config.add_api_capability(
        "emailer",
        description="Send emails when records and collections change.",
        url="https://kinto-emailer.readthedocs.io/",
        version=__version__,
        outbox=emailer_settings.outbox_name,
        preview=PREVIEW_PATH,
    )
    # Its table for ``kinto migrate``, checked at start-up, where the outbox has one.
    outbox_backend(emailer_settings).setup(config, emailer_settings)

    # A refused save is put back as it was: what it changes is copied before it writes.
    config.add_subscriber(rollback.remember_previous, ContextFound)
    config.scan("kinto_emailer.web.emails")
    config.add_subscriber(
        validate_metadata,
        ResourceChanged,
        for_resources=("bucket", "collection"),
        for_actions=(ACTIONS.CREATE, ACTIONS.UPDATE),
    )
    # A bucket's opt-outs go with it (Kinto deletes all below it); a collection's, with it.
    config.add_subscriber(
        optouts.forget_deleted_collections,
        ResourceChanged,
        for_resources=("collection",),
        for_actions=(ACTIONS.DELETE,),
    )
    # Built inside the transaction: storage is readable, and a rollback discards them.
    timed_build = metrics.timed(build_notification)
    config.add_subscriber(timed_build, ResourceChanged, for_resources=("record", "collection"))
    for event_class in review_event_classes():
        config.add_subscriber(timed_build, event_class)

    if delivery.worker is not None and delivery.worker.outbox.durable:
        # Emails may wait in the outbox since a crash: deliver them without waiting for a
        # write. On the first request, so that nothing starts before a pre-forking server forks.
        config.add_subscriber(lambda event: delivery.start(), NewRequest)
