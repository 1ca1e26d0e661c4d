"""The bytes of an email and its SMTP envelope, with headers folded per RFC 5322."""

import email.policy
import email.utils
import io
from dataclasses import dataclass
from email.generator import BytesGenerator
from email.header import Header


#: Lines are folded before this length (RFC 5322 recommends 78, and forbids over 998).
MAX_LINE_LENGTH = 78
CRLF = b"\r\n"
_ADDRESS_HEADERS = ("From", "To", "Cc", "Reply-To")
_TEXT_HEADERS = ("Subject",)
_BODY_POLICY = email.policy.compat32.clone(linesep="\r\n", max_line_length=MAX_LINE_LENGTH)


@dataclass
class Outgoing:
    """An email ready for SMTP: envelope sender, envelope recipients and the message bytes."""

    sender: str
    recipients: list
    data: bytes
    message_id: str = ""


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
        for part in mime.walk():
            if part.get_content_type() in blank:
                part.set_payload("")
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
