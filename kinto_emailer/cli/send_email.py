"""``kinto-send-email CONFIG RECIPIENT``: check a deployment's mail settings with a test email."""

import argparse
import configparser
import sys

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
        settings = dict(get_appsettings(args.config))
    except (OSError, LookupError, ValueError, configparser.Error) as e:
        return _fail(f"cannot read {args.config}: {e}")
    try:
        emailer_settings = read_settings(settings)
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
        reason = str(e) or type(e).__name__
        return _fail(f"could not send to {args.recipient} through {where}: {reason}")
    print(f"Test email sent to {args.recipient} through {where}.")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
