"""The bytes of an email and its SMTP envelope, with headers folded per RFC 5322."""

import email.policy
import email.utils
import io
import random
import sys
from dataclasses import dataclass
from email import charset as charsets
from email.generator import BytesGenerator
from email.message import Message as MIMEPart

from pyramid_mailer.message import Message

from .headers import (
    CRLF,
    MAX_LINE_LENGTH,
    PLAIN_ADDRESS,
    addr_spec,
    fold_addresses,
    fold_text,
    identity_headers,
)


_ADDRESS_HEADERS = ("From", "To", "Cc", "Reply-To")
_TEXT_HEADERS = ("Subject",)
#: ASCII values that readers parse (a URL in ``<>``): written as they are, never encoded.
_RAW_HEADERS = ("List-Unsubscribe", "List-Unsubscribe-Post")
_BODY_POLICY = email.policy.compat32.clone(linesep="\r\n", max_line_length=MAX_LINE_LENGTH)
#: RFC 5322 forbids longer lines: a body with one is sent quoted-printable.
MAX_BODY_LINE = 998
#: The extra headers of the emails that hooks and ``kinto-send-email`` make.
_DIRECT_HEADERS = {"Date": "Date", "Message-ID": "Message-Id", "Reply-To": None}
_BOUNDARY_DIGITS = len(repr(sys.maxsize - 1))


@dataclass
class Outgoing:
    """An email ready for SMTP: envelope sender, envelope recipients and the message bytes."""

    sender: str
    recipients: list[str]
    data: bytes
    message_id: str = ""


def stamp(message: Message) -> None:
    """Give a pyramid_mailer ``Message`` the identity headers it lacks."""
    present = {name.lower() for name in message.extra_headers}
    for name, value in identity_headers().items():
        if name.lower() not in present:
            message.extra_headers[name] = value


def _readable_body(part: MIMEPart, text: str) -> None:
    # 7bit or 8bit keeps the source readable; quoted-printable only for what SMTP can't carry.
    del part["Content-Transfer-Encoding"]
    text = text.replace("\r\n", "\n")
    lines = text.encode("utf-8").split(b"\n")
    plain = all(len(line) <= MAX_BODY_LINE for line in lines) and not any(
        c in text for c in "\0\r"
    )
    charset = charsets.Charset("us-ascii" if text.isascii() else "utf-8")
    # None: no transfer encoding, which typeshed's ``int`` leaves out.
    charset.body_encoding = None if plain else charsets.QP  # type: ignore[assignment]
    part.set_payload(text, charset)


def seven_bit(data: bytes) -> bytes:
    """The same email with its 8bit text parts quoted-printable, for a server without 8BITMIME."""
    mime = email.message_from_bytes(data, policy=_BODY_POLICY)
    for part in mime.walk():
        if str(part.get("Content-Transfer-Encoding", "")).lower() == "8bit":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)  # A leaf part's decoded payload.
            text = payload.decode(part.get_content_charset() or "utf-8")
            charset = charsets.Charset(part.get_content_charset() or "utf-8")
            charset.body_encoding = charsets.QP
            del part["Content-Transfer-Encoding"]
            part.set_payload(text, charset)
    buffer = io.BytesIO()
    BytesGenerator(buffer, mangle_from_=False, policy=_BODY_POLICY).flatten(mime)
    return buffer.getvalue()


def render(message: Message, default_sender: str) -> Outgoing:
    """Turn a pyramid_mailer ``Message`` into an :class:`Outgoing`."""
    message.sender = message.sender or default_sender
    stamp(message)
    # The email package takes about ten times longer: it is kept for what it alone can do.
    data = _direct(message)
    if data is None:
        data = _through_email_package(message)
    recipients: list[str] = []
    seen: set[str] = set()
    for entry in [*message.recipients, *(message.cc or ()), *(message.bcc or ())]:
        address = addr_spec(entry)
        if address and address.lower() not in seen:
            seen.add(address.lower())
            recipients.append(address)
    return Outgoing(
        sender=addr_spec(message.sender),
        recipients=recipients,
        data=data,
        message_id=str(message.extra_headers.get("Message-ID", "")),
    )


def _through_email_package(message: Message) -> bytes:
    # pyramid_mailer refuses an empty body, an empty template is valid: " " stands in for it.
    blank = {}
    if not message.body and not message.attachments:
        blank["text/plain"], message.body = message.body, " "
    if message.html == "":
        blank["text/html"], message.html = message.html, " "
    mime = message.to_message()  # Validates; builds the body and its MIME headers.
    if blank:
        message.body = blank.get("text/plain", message.body)
        message.html = blank.get("text/html", message.html)
    texts = {"text/plain": message.body, "text/html": message.html}
    for part in mime.walk():
        text = texts.get(part.get_content_type())
        if isinstance(text, str) and not part.get_filename():
            _readable_body(part, text)
    head = []
    addresses = {
        "From": [message.sender],
        "To": list(message.recipients),
        "Cc": list(message.cc or ()),
    }
    for name in _ADDRESS_HEADERS:
        value = mime.get(name)
        if value is not None:
            del mime[name]
            entries = addresses.get(name)
            if entries is None:  # Reply-To: one header value, several addresses.
                entries = [email.utils.formataddr(a) for a in email.utils.getaddresses([value])]
            head.append(fold_addresses(name, entries or [str(value)]))
    for name in _TEXT_HEADERS:
        value = mime.get(name)
        if value is not None:
            del mime[name]
            head.append(fold_text(name, str(value)))
    for name in _RAW_HEADERS:
        value = message.extra_headers.get(name)
        if value is not None:
            del mime[name]
            head.append(f"{name}: {value}".encode("ascii", "replace") + CRLF)
    buffer = io.BytesIO()
    BytesGenerator(buffer, mangle_from_=False, policy=_BODY_POLICY).flatten(mime)
    return b"".join(head) + buffer.getvalue()


def _direct_text(text: str, content_type: str) -> tuple[bytes, bytes, bytes] | None:
    """``(headers before the extra ones, headers after them, body)`` of one text part, as
    ``_through_email_package`` writes it; ``None`` when it needs quoted-printable."""
    text = text.replace("\r\n", "\n")
    data = text.encode("utf-8")
    if (
        "\0" in text
        or "\r" in text
        or any(len(line) > MAX_BODY_LINE for line in data.split(b"\n"))
    ):
        return None
    body = data.replace(b"\n", CRLF)
    if text.isascii():
        before = f'Content-Type: {content_type}; charset="us-ascii"\r\nMIME-Version: 1.0\r\n'
        after = "Content-Disposition: inline\r\nContent-Transfer-Encoding: 7bit\r\n"
    else:  # set_charset puts Content-Type back after the others.
        before = "MIME-Version: 1.0\r\n"
        after = (
            f'Content-Disposition: inline\r\nContent-Type: {content_type}; charset="utf-8"\r\n'
            "Content-Transfer-Encoding: 8bit\r\n"
        )
    return before.encode(), after.encode(), body


def _direct(message: Message) -> bytes | None:
    """The bytes of ``_through_email_package`` for the emails hooks make (plain addresses,
    a short ASCII subject, text as written); ``None`` for any other email."""
    subject, html = message.subject, message.html
    if message.attachments or not isinstance(message.body, str) or not message.body:
        return None
    if not isinstance(subject, str) or not subject.isascii() or not subject.isprintable():
        return None
    if not subject.strip() or len(subject) > MAX_LINE_LENGTH - len("Subject: "):
        return None
    extra = message.extra_headers
    if any(name not in _DIRECT_HEADERS for name in extra):
        return None
    reply_to = extra.get("Reply-To")
    addresses = [
        ("From", [message.sender]),
        ("To", list(message.recipients)),
        ("Cc", list(message.cc or ())),
        ("Reply-To", [] if reply_to is None else str(reply_to).split(", ")),
    ]
    entries = [entry for _, group in addresses for entry in group]
    if not all(isinstance(e, str) and PLAIN_ADDRESS.match(e) for e in entries):
        return None
    if not message.recipients or any("\r" in str(v) or "\n" in str(v) for v in extra.values()):
        return None  # pyramid_mailer's checks, with its errors.
    if not all(str(v).isascii() for v in extra.values()):
        return None
    texts = [_direct_text(message.body, "text/plain")]
    if html:
        texts.append(_direct_text(html, "text/html"))
    elif html is not None:
        return None
    parts = [part for part in texts if part is not None]
    if len(parts) < len(texts):
        return None
    head = [fold_addresses(name, group) for name, group in addresses if group]
    head.append(f"Subject: {subject}".encode("ascii") + CRLF)
    identity = b"".join(
        f"{_DIRECT_HEADERS[name]}: {value}".encode("ascii") + CRLF
        for name, value in extra.items()
        if _DIRECT_HEADERS[name]
    )
    if len(parts) == 1:
        before, after, body = parts[0]
        return b"".join([*head, before, identity, after, CRLF, body])
    boundary = _boundary([body for _, _, body in parts])
    data = [*head, b"Content-Type: multipart/alternative;\r\n", b' boundary="%s"\r\n' % boundary]
    data += [b"MIME-Version: 1.0\r\n", identity]
    for before, after, body in parts:
        data += [CRLF, b"--", boundary, CRLF, before, after, CRLF, body]
    data += [CRLF, b"--", boundary, b"--", CRLF]
    return b"".join(data)


def _boundary(bodies: list[bytes]) -> bytes:
    # As the email package draws it; never a line of a part.
    token = b"=" * 15 + b"%0*d" % (_BOUNDARY_DIGITS, random.randrange(sys.maxsize)) + b"=="
    candidate, counter = token, 0
    while any(b"--" + candidate in body for body in bodies):
        candidate, counter = token + b".%d" % counter, counter + 1
    return candidate
