"""Small helpers shared by the test modules (importable because pytest puts tests/ on sys.path)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis
from hypothesis import strategies as st


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Poll ``condition`` until true or ``timeout`` seconds; the test asserts on the result."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


# -- bad numeric input: the property every public method's numeric arguments satisfy ---------

EXTREMES: list[object] = [
    0, 1, -1, 0.5, -0.0, 5e-324, 2**32 - 1, 2**32, 2**34, 2**34 + 1, 2**52, 2**53 - 1, 2**53,
    2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64, 10**400, -(10**400), 1e308, -1e308,
    math.inf, -math.inf, math.nan, True, False,
]  # fmt: skip


def numbers(*extra: object) -> st.SearchStrategy[object]:
    """What a caller might pass as a number: the extremes above (and ``extra``), any int
    (huge ones included), any float (nan and infinities included), bools."""
    return st.sampled_from([*EXTREMES, *extra]) | st.integers() | st.floats()


def is_int(value: object, low: int, high: int) -> bool:
    """An ``int`` (not ``bool``) in ``[low, high]``."""
    return type(value) is int and low <= value <= high


def is_number(value: object, low: float, high: float) -> bool:
    """A finite int or float (not ``bool``) in ``[low, high]``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        as_float = float(value)
    except OverflowError:
        return False
    return math.isfinite(as_float) and low <= as_float <= high


def is_duration(value: object, cap_ms: float, *, allow_zero: bool = False) -> bool:
    """Seconds as ``labkit.checks`` takes them: a finite int or float (not ``bool``), above 0
    (or 0 itself with ``allow_zero``), at most ``cap_ms`` milliseconds."""
    if not is_number(value, 0, math.inf):
        return False
    seconds = float(value)  # type: ignore[arg-type]
    return (allow_zero or seconds > 0) and seconds * 1000 <= cap_ms


def refused_cleanly_or_accepted(
    ns: Any, arg: str, call: Callable[[object], object], valid: bool, value: object
) -> None:
    """A value in the documented range works (Redis included); any other raises TypeError or
    ValueError whose message starts with the argument's name, and no key exists under
    ``ns`` (call it on an empty namespace)."""
    if valid:
        call(value)
        return
    with pytest.raises((TypeError, ValueError)) as caught:
        call(value)
    assert str(caught.value).startswith(arg), caught.value
    assert ns.keys() == []

def bytes_client(r: Any) -> Any:
    """A second client to the same server or cluster as ``r``, with decode_responses=False."""
    if hasattr(r, "get_default_node"):
        node = r.get_default_node()
        return redis.RedisCluster(host=node.host, port=node.port, decode_responses=False)
    kwargs = {**r.connection_pool.connection_kwargs, "decode_responses": False}
    return redis.Redis(connection_pool=redis.ConnectionPool(**kwargs))
