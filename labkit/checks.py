"""Argument checks and conversions: the one place where bad input stops.

Every public method of every pattern checks its arguments here before the first command is
sent, so a bad value gives a ``TypeError`` or ``ValueError`` that names the argument and the
accepted range, and never a partial write, a ``ResponseError`` from Redis half-way through an
operation, or a silently wrong answer. The ranges are what Redis and the algorithms accept:

- integers Redis stores or returns fit a signed 64-bit integer (``MAX_INT``);
- numbers that pass through a Lua script or a sorted-set score are doubles, exact up to
  ``2**53`` (``MAX_EXACT``);
- durations are converted to whole milliseconds (PX/PEXPIRE) or microseconds (script clocks)
  and capped (``MAX_MS``, ``MAX_US``) so any deadline ``now + duration`` still fits;
- timestamps in seconds since the epoch are refused beyond ``MAX_EPOCH`` so a value in ms,
  µs or ns (``time.time_ns()``) is caught instead of being read as the far future.

``bool`` is refused wherever a number is expected (``True`` is an ``int`` in Python).
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Mapping
from typing import Any

MAX_INT = 2**63 - 1
MAX_EXACT = 2**53
MAX_MS = 2**46  # ~2,230 years: a deadline in ms since the epoch plus this still fits 2**53
MAX_US = 2**52  # ~142 years in µs: now_us (~2**51 today) + MAX_US stays below 2**53
MAX_EPOCH = 2**34  # seconds: the year 2514; time.time_ns() or ms/µs timestamps exceed it
MAX_TEXT = 512 * 1024 * 1024  # Redis' largest string (proto-max-bulk-len default)


def _type_name(value: object) -> str:
    return type(value).__name__


def _shown(value: object) -> str:
    """``value`` for an error message: an int too long to print (str() of one past 4300
    digits raises, naming no argument) is described by its size."""
    if isinstance(value, int) and value.bit_length() > 256:
        return f"an int of {value.bit_length()} bits"
    return str(value)


def integer(arg: str, value: object, *, low: int | None = None, high: int = MAX_INT) -> int:
    """An ``int`` (not ``bool``) in ``[low, high]``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{arg} must be an int, not {_type_name(value)}")
    number = int(value)
    if low is not None and number < low:
        raise ValueError(f"{arg} must be between {low} and {high}, got {_shown(number)}")
    if number > high:
        lower = "" if low is None else f"between {low} and "
        raise ValueError(f"{arg} must be {lower or 'at most '}{high}, got {_shown(number)}")
    return number


def number(
    arg: str,
    value: object,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
) -> float:
    """A finite real number (not ``bool``) in ``[low, high]`` (``(low, high]`` if ``low_open``)."""
    # plain int and float skip the ABC check: this runs per member in bulk loads
    if type(value) is not float and type(value) is not int:  # noqa: SIM102
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"{arg} must be a number, not {_type_name(value)}")
    try:
        result = float(value)
    except OverflowError:
        raise ValueError(f"{arg} is too large to be a float, got {_shown(value)}") from None
    if not math.isfinite(result):
        raise ValueError(f"{arg} must be finite, got {value}")
    too_low = low is not None and (result <= low if low_open else result < low)
    if too_low or (high is not None and result > high):
        left = "(" if low_open else "["
        lo = "-inf" if low is None else _bound(low)
        hi = "inf" if high is None else _bound(high)
        raise ValueError(f"{arg} must be in {left}{lo}, {hi}], got {value}")
    return result


def _bound(limit: float) -> str:
    """A range limit for a message: exact when it is a whole number (2**53 - 1, not 9.0072e+15)."""
    if float(limit).is_integer() and abs(limit) < 2**63:
        return str(int(limit))
    return f"{limit:g}"


def _duration(arg: str, seconds: object, unit: int, cap: int, allow_zero: bool) -> int:
    name = {1_000: "ms", 1_000_000: "µs"}[unit]
    if isinstance(seconds, bool) or not isinstance(seconds, numbers.Real):
        raise TypeError(f"{arg} must be a number of seconds, not {_type_name(seconds)}")
    try:
        value = float(seconds)
    except OverflowError:
        value = math.inf
    if math.isnan(value):
        raise ValueError(f"{arg} must be a number of seconds, got {seconds}")
    most = f"{cap / unit:.0f} s (2**{cap.bit_length() - 1} {name})"
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{arg} must be {bound} and at most {most}, got {_shown(seconds)}")
    if value * unit > cap:
        raise ValueError(f"{arg} must be at most {most}, got {_shown(seconds)}")
    product = value * unit
    nearest = round(product)
    # Round up, but not past float noise: 2.007 * 1000 is 2007.0000000000002, which is 2007 ms.
    whole = nearest if math.isclose(product, nearest, rel_tol=1e-12) else math.ceil(product)
    if whole == 0 and not allow_zero:  # a positive value below float noise of 0 units
        whole = 1
    return whole


def to_ms(arg: str, seconds: object, *, allow_zero: bool = False, cap: int = MAX_MS) -> int:
    """Seconds -> whole milliseconds, rounded up (so 0.0001 s is 1 ms, never 0), <= ``cap``."""
    return _duration(arg, seconds, 1_000, cap, allow_zero)


def to_us(arg: str, seconds: object, *, allow_zero: bool = False, cap: int = MAX_US) -> int:
    """Seconds -> whole microseconds, rounded up, at most ``cap``."""
    return _duration(arg, seconds, 1_000_000, cap, allow_zero)


def seconds(arg: str, value: object, *, allow_zero: bool = False, cap_ms: int = MAX_MS) -> float:
    """A duration in seconds, checked as :func:`to_ms` checks it, returned as a float."""
    to_ms(arg, value, allow_zero=allow_zero, cap=cap_ms)
    return float(value)  # type: ignore[arg-type]  # checked to be a finite real above


def epoch_seconds(arg: str, value: object) -> float:
    """Seconds since the epoch in ``[0, MAX_EPOCH]``: catches ms, µs and ns timestamps."""
    result = number(arg, value)
    if not 0 <= result <= MAX_EPOCH:
        raise ValueError(
            f"{arg} must be seconds since the epoch in [0, {MAX_EPOCH}] "
            f"(a value in ms, µs or ns, such as time.time_ns(), is too large), got {value}"
        )
    return result


def text(arg: str, value: object, *, max_len: int = MAX_TEXT) -> str:
    """A non-empty ``str`` of at most ``max_len`` characters."""
    if not isinstance(value, str):
        raise TypeError(f"{arg} must be a str, not {_type_name(value)}")
    if not value:
        raise ValueError(f"{arg} must be a non-empty string")
    if len(value) > max_len:
        raise ValueError(f"{arg} must be at most {max_len} characters, got {len(value)}")
    return value


def tag_safe(arg: str, value: object, *, max_len: int = MAX_TEXT) -> str:
    """A non-empty ``str`` without ``{`` or ``}``: it goes inside (or before) a ``{hash tag}``."""
    result = text(arg, value, max_len=max_len)
    if "{" in result or "}" in result:
        raise ValueError(
            f"{arg} must not contain '{{' or '}}' (labkit puts it in a hash tag), got {result!r}"
        )
    return result


def prefix(value: object) -> str:
    """A key prefix for a pattern that adds its own ``{hash tag}``: a str without braces.

    The convention (see ``labkit``'s docstring): a prefix ends with ``:`` or is empty, and
    the pattern appends ``{<tag>}:<part>``. An empty prefix is allowed.
    """
    if not isinstance(value, str):
        raise TypeError(f"prefix must be a str, not {_type_name(value)}")
    if "{" in value or "}" in value:
        raise ValueError(
            f"prefix must not contain '{{' or '}}' (the pattern adds its own hash tag), got {value!r}"
        )
    return value


def user_id(arg: str, value: object, *, max_len: int = 1024) -> str:
    """A user id: a ``str`` with visible characters or an ``int`` (not ``bool``), as text."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise TypeError(f"{arg} must be a str or int, not {_type_name(value)}")
    if isinstance(value, int) and not -MAX_INT - 1 <= value <= MAX_INT:
        # str() of a huge int is slow, and past 4300 digits raises an error naming no argument
        raise ValueError(
            f"{arg} as an int must fit in 64 bits (between {-MAX_INT - 1} and {MAX_INT}), "
            f"got an int of {value.bit_length()} bits"
        )
    result = str(value)
    if not result.strip():
        raise ValueError(f"{arg} must not be empty or blank")
    if len(result) > max_len:
        raise ValueError(f"{arg} must be at most {max_len} characters, got {len(result)}")
    return result


def non_empty(arg: str, value: object) -> object:
    """``value``, unless it is ``None`` or an empty str, bytes, list, tuple or mapping
    (a message or payload that carries nothing)."""
    if value is None or (isinstance(value, str | bytes | list | tuple | Mapping) and not value):
        raise ValueError(f"{arg} must not be empty, got {value!r}")
    return value


def json_text(arg: str, value: object) -> str:
    """Compact JSON of ``value``; NaN/Infinity and unserialisable values are refused."""
    try:
        return json.dumps(value, separators=(",", ":"), allow_nan=False)
    except TypeError as exc:
        raise TypeError(f"{arg} is not JSON-serialisable: {exc}") from None
    except (ValueError, RecursionError) as exc:
        raise ValueError(f"{arg} cannot be stored as JSON: {exc}") from None


def choice(arg: str, value: object, options: tuple[str, ...]) -> str:
    """One of ``options``."""
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"{arg} must be one of {', '.join(map(repr, options))}, got {value!r}")
    return value


def as_text(value: Any) -> str:
    """A reply as ``str``, whether or not the client decodes responses (bytes are UTF-8)."""
    return value.decode() if isinstance(value, bytes) else str(value)
