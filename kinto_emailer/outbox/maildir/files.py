"""The durable queue's files: a Maildir that repoze.sendmail's ``qp`` can read.

Messages are written to ``tmp/`` and renamed into ``new/``: readers never see half a message.
The envelope travels in ``X-Actually-*`` headers, as repoze.sendmail writes it. How processes
share the Maildir to deliver it is ``queue``.
"""

import os
import random
import socket
import time
from email.header import Header, decode_header
from email.parser import BytesHeaderParser

from ...smtp.mime import CRLF, Outgoing


FROM_HEADER = "X-Actually-From"
TO_HEADER = "X-Actually-To"
#: Where an email came from, for the logs and metrics of the process that delivers it.
HOOK_HEADER = "X-Kinto-Emailer-Hook"
LABELS_HEADER = "X-Kinto-Emailer-Labels"
_STRIPPED_HEADERS = (
    b"x-actually-from",
    b"x-actually-to",
    b"x-kinto-emailer-hook",
    b"x-kinto-emailer-labels",
)
_CRLF = CRLF.decode()


#: Where an email came from, as ``Email.labels`` has it: ``bucket_id``, ``collection_id``.
Labels = dict[str, str | None]


def _unique_name() -> str:
    # The name repoze.sendmail gives its messages: time, pid, host, random.
    return f"{time.time()}.{os.getpid()}.{socket.gethostname()}.{random.randrange(2**31)}"


def ensure_maildir(path: str) -> None:
    for sub in ("tmp", "new", "cur"):
        os.makedirs(os.path.join(path, sub), exist_ok=True)


def write_atomically(data: bytes, tmp_path: str, final_path: str) -> None:
    with open(tmp_path, "xb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp_path, final_path)


def serialize(outgoing: Outgoing, location: str = "", labels: Labels | None = None) -> bytes:
    """The message with the envelope in ``X-Actually-*`` headers, as repoze.sendmail does,
    and where it came from in ``X-Kinto-Emailer-*`` headers."""
    envelope = [
        (FROM_HEADER, outgoing.sender),
        (TO_HEADER, ",".join(outgoing.recipients)),
    ]
    if location:
        envelope.append((HOOK_HEADER, location))
    if labels:
        envelope.append((LABELS_HEADER, " ".join(f"{k}={v or ''}" for k, v in labels.items())))
    head = b"".join(
        f"{name}: {Header(value, 'utf-8', header_name=name).encode(linesep=_CRLF)}".encode() + CRLF
        for name, value in envelope
    )
    return head + outgoing.data


def write(path: str, outgoing: Outgoing, location: str = "", labels: Labels | None = None) -> str:
    """Put an email in the Maildir's new/: readers never see half a message. Returns its path."""
    ensure_maildir(path)
    name = _unique_name()
    final_path = os.path.join(path, "new", name)
    data = serialize(outgoing, location, labels)
    write_atomically(data, os.path.join(path, "tmp", name), final_path)
    return final_path


def _decoded(value: str | None) -> str:
    return "".join(
        part.decode(charset or "ascii", "replace") if isinstance(part, bytes) else part
        for part, charset in decode_header(value or "")
    )


def load(filename: str) -> tuple[Outgoing, str, dict[str, str]]:
    """``(outgoing, location, labels)``: the email without the headers added by ``serialize``."""
    with open(filename, "rb") as f:
        raw = f.read()
    headers = BytesHeaderParser().parsebytes(raw)
    lines = iter(raw.splitlines(keepends=True))
    kept, skipping = [], False
    for line in lines:
        if not line.strip():
            kept.append(line)
            break  # The end of the headers.
        if line[:1] not in (b" ", b"\t"):  # Not the folded rest of the previous header.
            skipping = line.split(b":", 1)[0].strip().lower() in _STRIPPED_HEADERS
        if not skipping:
            kept.append(line)
    kept.extend(lines)
    recipients = [a.strip() for a in _decoded(headers[TO_HEADER]).split(",") if a.strip()]
    outgoing = Outgoing(
        sender=_decoded(headers[FROM_HEADER]),
        recipients=recipients,
        data=b"".join(kept),
        message_id=str(headers["Message-Id"] or ""),
    )
    labels = dict(
        part.partition("=")[::2] for part in _decoded(headers[LABELS_HEADER]).split() if part
    )
    return outgoing, _decoded(headers[HOOK_HEADER]), labels
