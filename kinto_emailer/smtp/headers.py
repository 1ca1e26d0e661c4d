"""Headers: the identity every email carries, and addresses and text folded per RFC 5322."""

import email.utils
import re
import time
from email.header import Header


#: Lines are folded before this length (RFC 5322 recommends 78, and forbids over 998).
MAX_LINE_LENGTH = 78
CRLF = b"\r\n"
MESSAGE_ID_DOMAIN = "kinto-emailer"
#: An address that formats, and parses, to itself: ``parseaddr`` is not needed.
_BARE = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*@[A-Za-z0-9.-]+"
PLAIN_ADDRESS = re.compile(rf"(?:{_BARE}|[A-Za-z0-9]+(?: [A-Za-z0-9]+)* <{_BARE}>)\Z")
_BARE_ADDRESS = re.compile(rf"{_BARE}\Z")
_date = (0, "")  # The second, and its Date: formatting it costs more than the email.


def _now() -> str:
    global _date
    second, text = _date
    if second != (now := int(time.time())):
        _date = second, text = now, email.utils.formatdate(now, localtime=True)
    return text


def identity_headers() -> dict[str, str]:
    """A new ``Message-ID`` and the ``Date`` of now, which every email carries (RFC 5322)."""
    return {
        "Date": _now(),
        "Message-ID": email.utils.make_msgid(domain=MESSAGE_ID_DOMAIN),
    }


def addr_spec(entry: str) -> str:
    if _BARE_ADDRESS.match(entry):
        return entry
    return email.utils.parseaddr(entry)[1]


def _encoded_address(entry: str) -> str:
    """``entry`` as a header carries it: its display name encoded where it is not ASCII (not
    ``addresses.format_address``, which checks and normalises an address of a hook)."""
    if PLAIN_ADDRESS.match(entry):
        return entry
    name, address = email.utils.parseaddr(entry)
    try:
        # Non-ASCII display names become one encoded word each, never the whole list.
        return email.utils.formataddr((name, address), charset="utf-8")
    except UnicodeError:
        return entry


def fold_addresses(name: str, entries: list[str]) -> bytes:
    """``To: a, b, ...`` with a line break between two addresses before the limit."""
    lines, line = [], f"{name}:"
    for index, entry in enumerate(entries):
        token = _encoded_address(entry) + ("," if index < len(entries) - 1 else "")
        if len(line) + 1 + len(token) > MAX_LINE_LENGTH and line != f"{name}:":
            lines.append(line)
            line = ""
        line = f"{line} {token}"
    lines.append(line)
    return "\r\n".join(lines).encode("ascii", "replace") + CRLF


def fold_text(name: str, value: str) -> bytes:
    # A word too long to fold on spaces is encoded, and encoded words split anywhere.
    needs_encoding = not value.isascii() or any(len(w) > 900 for w in value.split(" "))
    if needs_encoding:
        header = Header(value, "utf-8", header_name=name)
        folded = header.encode(linesep="\r\n", maxlinelen=MAX_LINE_LENGTH)
        return f"{name}: {folded}".encode("ascii") + CRLF
    # Plain text folds at its spaces, each kept as the fold's blank: unfolding gives the
    # value back. Never before the first word: a reader would see a leading blank.
    lines, line = [], f"{name}: "
    for word in value.split(" "):
        if len(line) + len(word) > MAX_LINE_LENGTH and line.strip() != f"{name}:":
            lines.append(line.rstrip(" "))
            line = " "
        line += word + " "
    lines.append(line[:-1])
    return "\r\n".join(lines).encode("ascii") + CRLF
