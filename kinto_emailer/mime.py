"""The bytes of an email and its SMTP envelope, with headers folded per RFC 5322."""

import email.policy
import email.utils
import io
from dataclasses import dataclass
from email import charset as charsets
from email.generator import BytesGenerator
from email.header import Header


#: Lines are folded before this length (RFC 5322 recommends 78, and forbids over 998).
MAX_LINE_LENGTH = 78
CRLF = b"\r\n"
_ADDRESS_HEADERS = ("From", "To", "Cc", "Reply-To")
_TEXT_HEADERS = ("Subject",)
#: ASCII values that readers parse (a URL in ``<>``): written as they are, never encoded.
_RAW_HEADERS = ("List-Unsubscribe", "List-Unsubscribe-Post")
_BODY_POLICY = email.policy.compat32.clone(linesep="\r\n", max_line_length=MAX_LINE_LENGTH)
#: RFC 5322 forbids longer lines: a body with one is sent quoted-printable.
MAX_BODY_LINE = 998
MESSAGE_ID_DOMAIN = "kinto-emailer"


@dataclass
class Outgoing:
    """An email ready for SMTP: envelope sender, envelope recipients and the message bytes."""

    sender: str
    recipients: list
    data: bytes
    message_id: str = ""


def identity_headers() -> dict:
    """A new ``Message-ID`` and the ``Date`` of now, which every email carries (RFC 5322)."""
    return {
        "Date": email.utils.formatdate(localtime=True),
        "Message-ID": email.utils.make_msgid(domain=MESSAGE_ID_DOMAIN),
    }


def stamp(message) -> None:
    """Give a pyramid_mailer ``Message`` the identity headers it lacks."""
    present = {name.lower() for name in message.extra_headers}
    for name, value in identity_headers().items():
        if name.lower() not in present:
            message.extra_headers[name] = value


def _readable_body(part, text):
    # 7bit or 8bit keeps the source readable; quoted-printable only for what SMTP can't carry.
    del part["Content-Transfer-Encoding"]
    text = text.replace("\r\n", "\n")
    lines = text.encode("utf-8").split(b"\n")
    plain = all(len(line) <= MAX_BODY_LINE for line in lines) and not any(
        c in text for c in "\0\r"
    )
    charset = charsets.Charset("us-ascii" if text.isascii() else "utf-8")
    charset.body_encoding = None if plain else charsets.QP
    part.set_payload(text, charset)


def seven_bit(data: bytes) -> bytes:
    """The same email with its 8bit text parts quoted-printable, for a server without 8BITMIME."""
    mime = email.message_from_bytes(data, policy=_BODY_POLICY)
    for part in mime.walk():
        if str(part.get("Content-Transfer-Encoding", "")).lower() == "8bit":
            text = part.get_payload(decode=True).decode(part.get_content_charset() or "utf-8")
            charset = charsets.Charset(part.get_content_charset() or "utf-8")
            charset.body_encoding = charsets.QP
            del part["Content-Transfer-Encoding"]
            part.set_payload(text, charset)
    buffer = io.BytesIO()
    BytesGenerator(buffer, mangle_from_=False, policy=_BODY_POLICY).flatten(mime)
    return buffer.getvalue()


def addr_spec(entry):
    return email.utils.parseaddr(entry)[1]


def _format_address(entry):
    name, address = email.utils.parseaddr(entry)
    try:
        # Non-ASCII display names become one encoded word each, never the whole list.
        return email.utils.formataddr((name, address), charset="utf-8")
    except UnicodeError:
        return entry


def fold_addresses(name, entries):
    """``To: a, b, ...`` with a line break between two addresses before the limit."""
    lines, line = [], f"{name}:"
    for index, entry in enumerate(entries):
        token = _format_address(entry) + ("," if index < len(entries) - 1 else "")
        if len(line) + 1 + len(token) > MAX_LINE_LENGTH and line != f"{name}:":
            lines.append(line)
            line = ""
        line = f"{line} {token}"
    lines.append(line)
    return "\r\n".join(lines).encode("ascii", "replace") + CRLF


def fold_text(name, value):
    # A word too long to fold on spaces is encoded, and encoded words split anywhere.
    needs_encoding = not value.isascii() or any(len(w) > 900 for w in value.split())
    header = Header(value, "utf-8" if needs_encoding else "us-ascii", header_name=name)
    folded = header.encode(linesep="\r\n", maxlinelen=MAX_LINE_LENGTH)
    return f"{name}: {folded}".encode("ascii") + CRLF


def render(message, default_sender):
    """Turn a pyramid_mailer ``Message`` into an :class:`Outgoing`."""
    message.sender = message.sender or default_sender
    stamp(message)
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

    recipients, seen = [], set()
    for entry in [*message.recipients, *(message.cc or ()), *(message.bcc or ())]:
        address = addr_spec(entry)
        if address and address.lower() not in seen:
            seen.add(address.lower())
            recipients.append(address)
    return Outgoing(
        sender=addr_spec(message.sender),
        recipients=recipients,
        data=b"".join(head) + buffer.getvalue(),
        message_id=str(message.extra_headers.get("Message-ID", "")),
    )
