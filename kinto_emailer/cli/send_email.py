"""``kinto-send-email CONFIG RECIPIENT``: check a deployment's mail settings with a test email."""

import argparse
import configparser
import smtplib
import sys
from typing import Any

import kinto
import kinto.core
from kinto.core.initialization import load_default_settings
from pyramid.config import Configurator
from pyramid.exceptions import ConfigurationError
from pyramid.paster import get_appsettings
from pyramid_mailer.message import Message

from .. import addresses
from ..compose import drafts
from ..config import read_settings
from ..delivery.service import Delivery
from ..smtp import mime


SUBJECT = "[kinto-emailer] Test email"
BODY = "If you can read this, the mail settings of this Kinto server work."


def _fail(message: str) -> int:
    # One line: configparser and SMTP errors span several.
    print(f"kinto-send-email: {' '.join(message.split())}", file=sys.stderr)
    return 1


def kinto_settings(ini_settings: dict[str, Any]) -> dict[str, Any]:
    """An ini's app settings as ``kinto start`` reads them: Kinto's defaults, then the
    environment's overrides (``MAIL_PORT``, ``KINTO_MAIL_PASSWORD``...)."""
    config = Configurator(settings=ini_settings)
    settings = config.get_settings()
    # As ``kinto.main`` and ``kinto.core.initialize`` do before reading the environment.
    settings.pop("kinto.settings_prefix", None)
    settings["settings_prefix"] = "kinto"
    load_default_settings(config, {**kinto.core.DEFAULT_SETTINGS, **kinto.DEFAULT_SETTINGS})
    return dict(config.get_settings())


def _reply(code: int, text: object) -> str:
    text = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
    return f"{code} {text}"


def _reason(error: Exception) -> str:
    """What went wrong, in words: smtplib's exceptions print as tuples and dicts."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        refusals = "; ".join(
            f"{rcpt}: {_reply(code, text)}" for rcpt, (code, text) in error.recipients.items()
        )
        return f"the mail server refused the recipient {refusals}"
    if isinstance(error, smtplib.SMTPSenderRefused):
        return (
            f"the mail server refused the sender {error.sender}: "
            f"{_reply(error.smtp_code, error.smtp_error)}"
        )
    if isinstance(error, smtplib.SMTPAuthenticationError):
        return f"the mail server refused the login: {_reply(error.smtp_code, error.smtp_error)}"
    if isinstance(error, smtplib.SMTPResponseException):
        return f"the mail server refused the email: {_reply(error.smtp_code, error.smtp_error)}"
    return str(error) or type(error).__name__


def _where(delivery: Delivery) -> str:
    if delivery.settings.debug_directory:
        return f"debug files in {delivery.settings.debug_directory}"
    return delivery.transport.address


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="kinto-send-email", description="Send a test email with a Kinto ini's mail settings."
    )
    parser.add_argument("config", help="the Kinto ini file, e.g. config/kinto.ini")
    parser.add_argument("recipient", help="the address to send the test email to")
    args = parser.parse_args(argv)
    if addresses.parse_address(args.recipient) is None:
        parser.error(f"invalid recipient address {args.recipient!r}")

    try:
        ini_settings = dict(get_appsettings(args.config))
    except (OSError, LookupError, ValueError, configparser.Error) as e:
        return _fail(f"cannot read {args.config}: {e}")
    try:
        emailer_settings = read_settings(kinto_settings(ini_settings))
        delivery = Delivery(emailer_settings, drafts)
    except (ConfigurationError, ValueError) as e:
        return _fail(f"invalid mail settings in {args.config}: {e}")

    message = Message(
        subject=SUBJECT,
        recipients=[args.recipient],
        body=BODY,
        extra_headers=mime.identity_headers(),
    )
    where = _where(delivery)
    try:
        delivery.send_now(message)
    except Exception as e:
        return _fail(f"could not send to {args.recipient} through {where}: {_reason(e)}")
    print(f"Test email sent to {args.recipient} through {where}.")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
