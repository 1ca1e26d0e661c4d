"""The time windows of the memory outbox: each hook's open window in this process, its
bytes counted in ``queue_bytes`` with the emails that wait, its emails put when it closes."""

import threading
import time
from typing import TYPE_CHECKING

from . import WINDOW_ORIGIN, DraftCompleter, Email, Outbox, Window
from .limits import Usage


if TYPE_CHECKING:
    from ..config import EmailerSettings


class MemoryWindows(Outbox):
    """The windows part of ``MemoryOutbox``, under its condition."""

    settings: "EmailerSettings"
    drafts: DraftCompleter
    _condition: threading.Condition
    _windows: dict[str, tuple[float, Window]]
    _closed: list[Window]
    _bytes: Usage
    _woken: bool

    def _drop_empty(self, bucket_id: str | None) -> None:
        raise NotImplementedError

    def gather(self, windows: list[Window]) -> list[tuple[Window, str]]:
        refused: list[tuple[Window, str]] = []
        with self._condition:
            now = time.monotonic()
            for part in windows:
                closes, window = self._windows.pop(part.location, (now, None))
                if window is not None and closes > now:
                    # One draft per window: a later part brings its count and lines only.
                    self._bytes[window.bucket_id] += window.join(part, self._room())
                    self._windows[part.location] = (closes, window)
                    continue
                if window is not None:  # Closed, not yet sent: this part opens the next.
                    self._closed.append(window)
                if part.open() > self._room():
                    reason = (
                        f"queue full (kinto_emailer.queue_bytes = {self.settings.queue_bytes})"
                    )
                    refused.append((part, f"{reason}: time window not opened"))
                    continue
                self._bytes[part.bucket_id] += part.size
                self._windows[part.location] = (now + part.seconds, part)
            self._woken = True
            self._condition.notify_all()
        return refused

    def _room(self) -> float:
        """The bytes still free in the queue, which open windows share with waiting emails."""
        if not self.settings.queue_bytes:
            return float("inf")
        return self.settings.queue_bytes - sum(self._bytes.values())

    def close_windows(self) -> list[tuple[Email, str]]:
        with self._condition:
            now = time.monotonic()
            closed = [key for key, (closes, _) in self._windows.items() if closes <= now]
            windows = [self._windows.pop(key)[1] for key in closed] + self._closed
            self._closed = []
            for window in windows:  # Their emails are counted instead, as they are put.
                self._bytes[window.bucket_id] -= window.size
                self._drop_empty(window.bucket_id)
        return [
            refused for window in windows for refused in self.put(_emails_of(self.drafts, window))
        ]

    def next_window(self) -> float | None:
        with self._condition:
            closes = [closes for closes, _ in self._windows.values()]
            closes += [0.0] if self._closed else []
        return max(0.0, min(closes) - time.monotonic()) if closes else None


def _emails_of(drafts: DraftCompleter, window: Window) -> list[Email]:
    """The emails of a closed window."""
    messages = drafts.complete(window.draft, window.lines, window.count, window.author)
    origin = {name: getattr(window, name) for name in WINDOW_ORIGIN}
    return [Email(message, window.location, **origin) for message in messages]
