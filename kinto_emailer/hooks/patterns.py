"""The ``^`` filters of hooks: regular expressions checked for size when saved, compiled
once, and run within the time that one request may spend on them (``RegexBudget``)."""

import functools
import re
import time
from collections.abc import Iterator
from typing import Any

import regex


try:
    from re import _parser as re_parser  # type: ignore[attr-defined]
except ImportError:  # Python 3.10
    import sre_parse as re_parser


def is_pattern(value: object) -> bool:
    return isinstance(value, str) and value.startswith("^")


#: ``regex`` unrolls the minimum count of repeats when compiling: ``a{100000000}`` would take
#: gigabytes. A filter matches ids, so a thousand unrolled items is plenty.
MAX_PATTERN_SIZE = 1000
#: For all the ``^`` filters of one bucket's or collection's hooks: compiled when saved.
MAX_PATTERNS_LENGTH = 20_000
MAX_PATTERNS_SIZE = 5_000
_REPEATS = {re_parser.MAX_REPEAT, re_parser.MIN_REPEAT, getattr(re_parser, "POSSESSIVE_REPEAT", 0)}


class PatternError(regex.error):
    """A ``^`` filter that can't be used; the message says why."""


def _children(value: object) -> Iterator[Any]:
    if isinstance(value, re_parser.SubPattern):
        yield value
    elif isinstance(value, tuple | list):
        for item in value:
            yield from _children(item)


def _unrolled_size(pattern: Any) -> int:
    size = 0
    for op, av in pattern:
        if op in _REPEATS:
            low, _high, item = av
            size += max(low, 1) * _unrolled_size(item)
        else:
            size += 1 + sum(_unrolled_size(child) for child in _children(av))
        if size > MAX_PATTERN_SIZE:
            break
    return size


def pattern_size(value: str) -> int:
    """The size of a ``^`` filter once its repeats are unrolled (counted up to past the limit).

    Raises ``PatternError`` when Python's parser refuses it.
    """
    try:
        # Python's own parser: ``re`` syntax, ``re``'s messages, and the size of the pattern.
        return _unrolled_size(re_parser.parse(value))
    except (re.error, OverflowError) as e:
        raise PatternError(str(e)) from None
    except RecursionError:
        raise PatternError("too deeply nested") from None


@functools.lru_cache(maxsize=256)
def compile_pattern(value: str) -> regex.Pattern:
    """Compile a ``^`` filter; raises ``PatternError`` with the reason when it is invalid."""
    try:
        size = pattern_size(value)
        if size > MAX_PATTERN_SIZE:
            raise PatternError(f"too large once repeats are unrolled (over {MAX_PATTERN_SIZE})")
        # The ``regex`` module speaks ``re`` syntax and can stop a match that runs too long.
        return regex.compile(value, flags=regex.VERSION0, cache_pattern=False)
    except (re.error, regex.error, OverflowError) as e:
        raise PatternError(str(e)) from None
    except RecursionError:
        raise PatternError("too deeply nested") from None


class BudgetSpent(TimeoutError):
    """The request's time for regular expressions is spent: no pattern runs any more."""


class RegexBudget:
    """The time that all the ``^`` filters of one request may take together, compiling too.

    Shared by every hook and object of the request (a batch is one request): once a pattern
    runs out of it, the hooks whose filters need a pattern are skipped, as no match.
    """

    def __init__(self, seconds: float):
        self.seconds = self.remaining = seconds
        self.evaluations = 0  # Patterns run.
        self.timeouts = 0
        self.skipped = 0  # Hooks not tried once the budget was spent.
        self.reported = 0  # Skipped hooks already logged.

    def match(self, expected: str, value: str) -> bool:
        if self.remaining <= 0:
            raise BudgetSpent()
        self.evaluations += 1
        start = time.monotonic()
        try:
            pattern = compile_pattern(expected)
            # Matched from the start of the value, as ``re.match`` does.
            return pattern.match(value, timeout=self.remaining) is not None
        except TimeoutError:
            self.timeouts += 1
            self.remaining = 0
            raise
        finally:
            self.remaining -= time.monotonic() - start
