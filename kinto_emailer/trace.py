"""What the path from a change to its emails says of each hook on the way, for a preview.

The listener passes ``NO_TRACE``, which keeps nothing; the preview passes a trace of its own,
so that it shows what the very same path decided, never a second reading of the rules.
"""


class Trace:
    """Told, per hook (``where``: its location, ``/buckets/b/collections/c#0``), what happened."""

    def hook(self, where: str, refusal: object | None) -> None:
        """A hook's filters were tried: ``refusal`` (read with ``str``) says why they refused
        the change, ``None`` when they accepted it."""

    def left_out(self, where: str, field: str, address: str, reason: str) -> None:
        """An address of ``field`` (``recipients``, ``cc``...) that the hook's emails miss."""

    def dropped(self, where: str, reason: str) -> None:
        """An email of the hook built, or about to be, and dropped: ``reason`` says why."""


NO_TRACE = Trace()
