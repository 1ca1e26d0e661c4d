"""What a heartbeat checks of a directory that emails are written to (a Maildir, the debug
mailer's): that it takes a file now."""

import logging
import os
import tempfile

from ..log_values import quoted


# The heartbeat's lines, wherever the directory is checked from.
logger = logging.getLogger("kinto_emailer.health")


def writable(directory: str) -> bool:
    """Whether a file can be created in ``directory`` (made if missing); logs why not."""
    try:
        os.makedirs(directory, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory):
            return True
    except OSError as e:
        logger.warning(
            "Emailer heartbeat: %s is not writable: %s",
            quoted(directory),
            quoted(e),
            extra={"directory": directory, "error": str(e)},
        )
        return False
