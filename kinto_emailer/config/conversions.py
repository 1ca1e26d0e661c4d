"""The conversions of the settings table: ``(key, raw text) -> value``, each refusing what it
cannot read with a ``ConfigurationError`` that names the key; ``Number`` says its range in
words, for that message and for the docs."""

import math
import os
import re
from dataclasses import dataclass
from typing import Any

from pyramid.exceptions import ConfigurationError
from pyramid.settings import aslist

from ..addresses import parse_address


_TRUTHY = ("true", "yes", "on", "1", "t", "y")
_FALSY = ("false", "no", "off", "0", "f", "n", "none")


def text(key: str, raw: str) -> str:
    return raw


def optional(key: str, raw: str) -> str | None:
    return raw or None


# ASCII only: ``int`` and ``float`` also read "²", "١" or "1_0", and ``float`` "nan" and "inf".
_WHOLE = re.compile(r"[0-9]{1,30}", re.ASCII)
_DECIMAL = re.compile(
    r"(?:[0-9]{1,30}(?:\.[0-9]{0,30})?|\.[0-9]{1,30})(?:[eE][+-]?[0-9]{1,3})?", re.ASCII
)


@dataclass(frozen=True)
class Number:
    """A conversion that reads a finite number within ``[low, high]`` (``(low, high]`` when
    ``low_open``); its ``range`` says so in words, for the error message and the docs."""

    kind: type[int] | type[float]
    low: float
    high: float
    low_open: bool = False
    unit: str = ""
    optional: bool = False

    @property
    def range(self) -> str:
        what = "a whole number" if self.kind is int else "a number"
        if self.unit:
            what += f" of {self.unit}"
        low, high = _plain(self.low), _plain(self.high)
        if self.low_open:
            return f"{what} greater than {low} and at most {high}"
        return f"{what} from {low} to {high}"

    def __call__(self, key: str, raw: str) -> Any:
        if self.optional and not raw:
            return None
        pattern = _WHOLE if self.kind is int else _DECIMAL
        value = self.kind(raw) if pattern.fullmatch(raw) else None
        if value is None or not math.isfinite(value) or not self._within(value):
            raise ConfigurationError(f"Setting {key!r} must be {self.range}, got {raw!r}.")
        return value

    def _within(self, value: float) -> bool:
        above = value > self.low if self.low_open else value >= self.low
        return above and value <= self.high


def _plain(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else str(number)


# The bounds, chosen so that every use stays finite (a lease added to a date, a back-off
# doubled ``retry_max_attempts`` times, a count compared in SQL) and sensible.
PORT = Number(int, 1, 65535)
COUNT = Number(int, 1, 1_000_000)
BYTES = Number(int, 1, 10**12, unit="bytes")
SECONDS = Number(float, 0, 3600, low_open=True, unit="seconds")
UP_TO_A_DAY = Number(float, 0, 86400, low_open=True, unit="seconds")


def boolean(key: str, raw: str) -> bool:
    if raw.lower() not in _TRUTHY + _FALSY:
        raise ConfigurationError(f"Setting {key!r} must be true or false, got {raw!r}.")
    return raw.lower() in _TRUTHY


def address(key: str, raw: str) -> str:
    if parse_address(raw) is None:
        raise ConfigurationError(
            f"Setting {key!r} must be an email address such as 'Kinto <kinto@example.com>', "
            f"got {raw!r}."
        )
    return raw


def readable_file(key: str, raw: str) -> str | None:
    if raw and not os.access(raw, os.R_OK):
        raise ConfigurationError(f"Setting {key!r} must name a readable PEM file, got {raw!r}.")
    return raw or None


_DOMAIN = re.compile(r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*$")


def domains(key: str, raw: str) -> tuple[str, ...]:
    found = []
    for entry in aslist(raw, flatten=True):
        try:
            domain = entry.strip(",").lower().encode("idna").decode("ascii")
        except UnicodeError:
            domain = ""
        if not _DOMAIN.match(domain):
            raise ConfigurationError(f"Setting {key!r} must list domain names, got {entry!r}.")
        found.append(domain)
    return tuple(found)


def words(key: str, raw: str) -> tuple[str, ...]:
    return tuple(aslist(raw))


_PRINCIPAL_PREFIX = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*:$")


def principal_prefixes(key: str, raw: str) -> tuple[str, ...]:
    found = []
    for entry in aslist(raw, flatten=True):
        if not _PRINCIPAL_PREFIX.match(entry):
            raise ConfigurationError(
                f"Setting {key!r} must list user id prefixes, each an authentication "
                f"policy's name and a colon such as 'ldap:', got {entry!r}."
            )
        found.append(entry)
    return tuple(found)


OUTBOXES = ("memory", "postgresql")


def outbox_choice(key: str, raw: str) -> str:
    if raw not in OUTBOXES:
        raise ConfigurationError(
            f"Setting {key!r} must be one of {', '.join(OUTBOXES)}, got {raw!r}."
        )
    return raw
