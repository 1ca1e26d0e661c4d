"""The durable queue: a Maildir that repoze.sendmail's ``qp`` can read, and that several
processes can deliver from without sending a message twice.

Layout under ``mail.queue_path``::

    tmp/ new/ cur/                  the Maildir: written to tmp/, renamed into new/
    claimed/<host>.<pid>.<token>/   messages a process is delivering: moved there by rename
    claimed/<host>.<pid>.<token>.lock
                                    locked (flock) for as long as that process lives
    failed/                         messages given up: refused with 5xx or out of attempts

A rename succeeds for one process only, so one message is delivered by one process. When a
process dies, even with SIGKILL, the kernel releases its lock: the next process that finds
the lock free moves the dead one's messages back into new/.
"""

import fcntl
import logging
import os
import random
import socket
import time
import uuid
from email.header import Header, decode_header
from email.parser import BytesHeaderParser

from .mime import CRLF, Outgoing


logger = logging.getLogger(__name__)

FROM_HEADER = "X-Actually-From"
TO_HEADER = "X-Actually-To"
#: Where an email came from, for the logs and metrics of the process that delivers it.
HOOK_HEADER = "X-Kinto-Emailer-Hook"
LABELS_HEADER = "X-Kinto-Emailer-Labels"
_STRIPPED_HEADERS = (b"x-actually-from", b"x-actually-to", b"x-kinto-emailer-hook")
_STRIPPED_HEADERS += (b"x-kinto-emailer-labels",)
_CRLF = CRLF.decode()


def _unique_name():
    # The name repoze.sendmail gives its messages: time, pid, host, random.
    return f"{time.time()}.{os.getpid()}.{socket.gethostname()}.{random.randrange(2**31)}"


def _ensure_maildir(path):
    for sub in ("tmp", "new", "cur"):
        os.makedirs(os.path.join(path, sub), exist_ok=True)


def _write_atomically(data, tmp_path, final_path):
    with open(tmp_path, "xb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp_path, final_path)


def serialize(outgoing, location="", labels=None):
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


def write(path, outgoing, location="", labels=None):
    """Put an email in the Maildir's new/: readers never see half a message. Returns its path."""
    _ensure_maildir(path)
    name = _unique_name()
    final_path = os.path.join(path, "new", name)
    data = serialize(outgoing, location, labels)
    _write_atomically(data, os.path.join(path, "tmp", name), final_path)
    return final_path


def _decoded(value):
    return "".join(
        part.decode(charset or "ascii", "replace") if isinstance(part, bytes) else part
        for part, charset in decode_header(value or "")
    )


def read(filename):
    """The :class:`Outgoing` stored in a Maildir file, without its ``X-Actually-*`` headers."""
    return load(filename)[0]


def load(filename):
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


class MaildirQueue:
    """This process's claims on a Maildir shared with others."""

    def __init__(self, path):
        self.path = path
        self.claims_root = os.path.join(path, "claimed")
        self.failed_dir = os.path.join(path, "failed")
        self.claim_dir = None
        self._lock_file = None

    def open(self):
        _ensure_maildir(self.path)
        os.makedirs(self.claims_root, exist_ok=True)
        name = f"{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
        # Locked before the directory exists: a claim directory is never seen unlocked.
        self._lock_file = open(os.path.join(self.claims_root, name + ".lock"), "w")
        fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self.claim_dir = os.path.join(self.claims_root, name)
        os.mkdir(self.claim_dir)

    def _unclaimed(self):
        names = []
        for sub in ("new", "cur"):
            directory = os.path.join(self.path, sub)
            names += [(n, directory) for n in os.listdir(directory) if not n.startswith(".")]
        return sorted(names)  # Names start with their time: oldest first.

    def claim(self, limit):
        """Move up to ``limit`` waiting messages into our claim directory; their new paths."""
        claimed = []
        for name, directory in self._unclaimed():
            if len(claimed) >= limit:
                break
            target = os.path.join(self.claim_dir, name)
            try:
                os.rename(os.path.join(directory, name), target)
            except FileNotFoundError:
                continue  # Another process claimed it first.
            claimed.append(target)
        return claimed

    def recover(self):
        """Give the messages of dead processes back to new/; how many were recovered."""
        recovered = 0
        for entry in os.listdir(self.claims_root):
            if not entry.endswith(".lock") or entry[: -len(".lock")] == os.path.basename(
                self.claim_dir
            ):
                continue
            lock_path = os.path.join(self.claims_root, entry)
            try:
                lock = open(lock_path)
            except FileNotFoundError:
                continue
            with lock:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # Its process is alive.
                directory = lock_path[: -len(".lock")]
                recovered += self._move_all(directory, os.path.join(self.path, "new"))
                for path in (directory, lock_path):
                    try:
                        os.rmdir(path) if path == directory else os.unlink(path)
                    except FileNotFoundError:
                        pass
        if recovered:
            logger.warning("Recovered %d email(s) claimed by a process that died", recovered)
        return recovered

    def _move_all(self, directory, target):
        moved = 0
        try:
            names = os.listdir(directory)
        except FileNotFoundError:
            return 0
        for name in names:
            try:
                os.rename(os.path.join(directory, name), os.path.join(target, name))
                moved += 1
            except FileNotFoundError:
                pass
        return moved

    def give_back(self, filename):
        """Return one claimed message to new/, for another process or the next start."""
        os.rename(filename, os.path.join(self.path, "new", os.path.basename(filename)))

    def done(self, filename):
        os.unlink(filename)

    def fail(self, filename):
        os.makedirs(self.failed_dir, exist_ok=True)
        os.rename(filename, os.path.join(self.failed_dir, os.path.basename(filename)))

    def narrow(self, filename, outgoing, location="", labels=None):
        """Keep only the recipients still to be tried, in place."""
        data = serialize(outgoing, location, labels)
        _write_atomically(data, filename + ".narrowing", filename)

    def waiting(self):
        """Messages not yet delivered nor given up: unclaimed ones and ours."""
        return len(self._unclaimed()) + len(os.listdir(self.claim_dir))

    def forget(self):
        """In a forked child: drop our copy of the parent's lock, which stays the parent's."""
        if self._lock_file is not None:
            self._lock_file.close()
        self.claim_dir = self._lock_file = None

    def close(self):
        """Hand what we still hold back to new/, for the next process."""
        if self.claim_dir is None:
            return 0
        left = self._move_all(self.claim_dir, os.path.join(self.path, "new"))
        os.rmdir(self.claim_dir)
        os.unlink(self._lock_file.name)
        self._lock_file.close()
        self.claim_dir = None
        return left
