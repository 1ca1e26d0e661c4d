"""Several processes delivering from one Maildir: each message by one process, across crashes.

Layout under ``mail.queue_path``::

    tmp/ new/ cur/                  the Maildir: written to tmp/, renamed into new/
    claimed/<host>.<pid>.<token>/   messages a process is delivering: moved there by rename
    claimed/<host>.<pid>.<token>.lock
                                    locked (flock) for as long as that process lives
    failed/                         messages given up: refused with 5xx or out of attempts

A rename succeeds for one process only, so one message is delivered by one process. When a
process dies, even with SIGKILL, the kernel releases its lock: the next process that finds
the lock free moves the dead one's messages back into new/, then deletes the lock file.

A lock counts only while its path still names the file that was locked: a process whose
lock file was deleted by a recoverer in the meantime takes another. So a claim directory
always has its lock file, and the claims of a dead process are always found.
"""

import fcntl
import logging
import os
import socket
import time
import uuid
from contextlib import suppress
from typing import IO, TYPE_CHECKING

from ...log_values import quoted
from .files import Labels, ensure_maildir, serialize, write_atomically


if TYPE_CHECKING:
    from ...smtp.mime import Outgoing


logger = logging.getLogger("kinto_emailer.maildir_queue")

#: Seconds after which a file in tmp/ is deleted: maildir(5) deletes them after 36 hours, and
#: gives up a delivery after 24. Our writer holds one for a write and an fsync, repoze.sendmail
#: for a transaction: no live writer comes near.
TMP_MAX_AGE = 36 * 3600
#: Seconds between two sweeps of tmp/ by one process.
SWEEP_INTERVAL = 3600.0
#: A rewrite under way (``narrow``): the original is still beside it.
PARTIAL_SUFFIX = ".narrowing"


def _hold_lock(lock_file: IO, path: str) -> bool:
    """Lock ``lock_file``; True if ``path`` still names it (a recoverer may have deleted it)."""
    try:
        fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    try:
        on_disk = os.stat(path)
    except FileNotFoundError:
        return False
    locked = os.fstat(lock_file.fileno())
    return (on_disk.st_dev, on_disk.st_ino) == (locked.st_dev, locked.st_ino)


class MaildirQueue:
    """This process's claims on a Maildir shared with others."""

    def __init__(self, path: str):
        self.path = path
        self.claims_root = os.path.join(path, "claimed")
        self.failed_dir = os.path.join(path, "failed")
        self.claim_dir: str | None = None
        self._lock_file: IO | None = None
        self._next_sweep = 0.0

    def open(self) -> None:
        ensure_maildir(self.path)
        os.makedirs(self.claims_root, exist_ok=True)
        while True:
            name = f"{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
            lock_path = os.path.join(self.claims_root, name + ".lock")
            lock_file = open(lock_path, "x")
            # Locked before the directory exists: a claim directory is never seen unlocked.
            if _hold_lock(lock_file, lock_path):
                break
            # Taken for a dead process's by a recoverer, which deletes it: another name.
            lock_file.close()
        self._lock_file = lock_file
        self.claim_dir = os.path.join(self.claims_root, name)
        os.mkdir(self.claim_dir)

    def _unclaimed(self) -> list[tuple[str, str]]:
        names = []
        for sub in ("new", "cur"):
            directory = os.path.join(self.path, sub)
            names += [(n, directory) for n in os.listdir(directory) if not n.startswith(".")]
        return sorted(names)  # Names start with their time: oldest first.

    def claim(self, limit: int) -> list[str]:
        """Move up to ``limit`` waiting messages into our claim directory; their new paths."""
        assert self.claim_dir is not None, "open() first"
        claimed: list[str] = []
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

    def recover(self) -> int:
        """Give the messages of dead processes back to new/; how many were recovered."""
        if time.monotonic() >= self._next_sweep:
            self.sweep_tmp()
            self._next_sweep = time.monotonic() + SWEEP_INTERVAL
        assert self.claim_dir is not None, "open() first"
        own = os.path.basename(self.claim_dir)
        entries = set(os.listdir(self.claims_root))
        recovered = 0
        for entry in sorted(entries - {own, own + ".lock"}):
            if entry.endswith(".lock"):
                recovered += self._recover_locked(entry.removesuffix(".lock"))
            elif entry + ".lock" not in entries and self._orphan(entry):
                # Left without its lock file by a version that could lose it.
                recovered += self._give_back(entry)
        if recovered:
            logger.warning("Recovered %d email(s) claimed by a process that died", recovered)
        return recovered

    def _orphan(self, entry: str) -> bool:
        # Listed after its lock was made but before the listing reached it: look again.
        path = os.path.join(self.claims_root, entry)
        return os.path.isdir(path) and not os.path.exists(path + ".lock")

    def _recover_locked(self, name: str) -> int:
        lock_path = os.path.join(self.claims_root, name + ".lock")
        try:
            lock = open(lock_path)
        except FileNotFoundError:
            return 0
        with lock:
            if not _hold_lock(lock, lock_path):
                return 0  # Its process is alive, or another one recovered it first.
            recovered = self._give_back(name)
            with suppress(FileNotFoundError):
                os.unlink(lock_path)
        return recovered

    def _give_back(self, name: str) -> int:
        directory = os.path.join(self.claims_root, name)
        moved = self._move_all(directory, os.path.join(self.path, "new"))
        with suppress(FileNotFoundError):
            os.rmdir(directory)
        return moved

    def _move_all(self, directory: str, target: str) -> int:
        moved = 0
        try:
            names = os.listdir(directory)
        except FileNotFoundError:
            return 0
        for name in names:
            source = os.path.join(directory, name)
            try:
                if name.endswith(PARTIAL_SUFFIX):
                    os.unlink(source)  # Half a rewrite: its original goes back instead.
                    continue
                os.rename(source, os.path.join(target, name))
                moved += 1
            except FileNotFoundError:
                pass
        return moved

    def sweep_tmp(self, max_age: float = TMP_MAX_AGE) -> list[str]:
        """Delete the files of tmp/ untouched for ``max_age`` seconds: their writer died."""
        tmp = os.path.join(self.path, "tmp")
        cutoff = time.time() - max_age
        swept = []
        for name in os.listdir(tmp):
            path = os.path.join(tmp, name)
            try:
                if os.stat(path).st_mtime < cutoff:
                    os.unlink(path)
                    swept.append(name)
            except FileNotFoundError:
                continue  # Renamed into new/, or swept by another process.
        for name in swept:
            logger.warning(
                "Deleted %s from %s: unchanged for over %gs, its writer died before queueing it",
                quoted(name),
                quoted(tmp),
                max_age,
                extra={"file": name, "directory": tmp},
            )
        return swept

    def give_back(self, filename: str) -> None:
        """Return one claimed message to new/, for another process or the next start."""
        os.rename(filename, os.path.join(self.path, "new", os.path.basename(filename)))

    def done(self, filename: str) -> None:
        os.unlink(filename)

    def fail(self, filename: str) -> None:
        os.makedirs(self.failed_dir, exist_ok=True)
        os.rename(filename, os.path.join(self.failed_dir, os.path.basename(filename)))

    def narrow(
        self,
        filename: str,
        outgoing: "Outgoing",
        location: str = "",
        labels: Labels | None = None,
    ) -> None:
        """Keep only the recipients still to be tried, in place."""
        data = serialize(outgoing, location, labels)
        write_atomically(data, filename + PARTIAL_SUFFIX, filename)

    def waiting(self) -> int:
        """Messages not yet delivered nor given up: unclaimed ones and ours."""
        return len(self._unclaimed()) + len(os.listdir(self.claim_dir))

    def forget(self) -> None:
        """In a forked child: drop our copy of the parent's lock, which stays the parent's."""
        if self._lock_file is not None:
            self._lock_file.close()
        self.claim_dir = self._lock_file = None

    def close(self) -> int:
        """Hand what we still hold back to new/, for the next process."""
        if self.claim_dir is None:
            return 0
        left = self._move_all(self.claim_dir, os.path.join(self.path, "new"))
        os.rmdir(self.claim_dir)
        assert self._lock_file is not None  # Opened with the claim directory.
        os.unlink(self._lock_file.name)
        self._lock_file.close()
        self.claim_dir = None
        return left
