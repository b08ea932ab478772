"""Bad input for property tests: what a numeric argument must refuse, and how.

Each strategy draws only values outside the accepted range (or of the wrong type), extremes
included, so a property test can assert that every draw raises the error :func:`refused`
describes and that nothing was written.
"""

from __future__ import annotations

import math
import re
import time

import pytest
from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

from labkit.checks import MAX_EPOCH


def refused(arg: str) -> pytest.RaisesContext[Exception]:
    """The error every bad value must give: ValueError or TypeError, its message naming ``arg``
    first (then the accepted range)."""
    return pytest.raises((ValueError, TypeError), match=rf"^{re.escape(arg)}(\W|$)")


NON_FINITE = st.sampled_from([math.nan, math.inf, -math.inf])
HUGE_INTS = st.sampled_from([2**63, 2**64, 10**400, -(2**63), -(10**400)])
NOT_NUMBERS = st.sampled_from(["5", b"5", [5], 5j, object()])  # None is a valid `now`
BOOLS = st.booleans()  # True is an int in Python, never a count or a duration here


def bad_counts(high: int) -> SearchStrategy[object]:
    """Anything but an ``int`` in ``[1, high]``: 0, negatives, above ``high``, floats, bools."""
    return st.one_of(
        st.integers(max_value=0),
        st.integers(min_value=high + 1),
        st.just(high + 1),
        HUGE_INTS,
        st.floats(allow_nan=True, allow_infinity=True),
        BOOLS,
        NOT_NUMBERS,
        st.none(),
    )


def bad_positive(most: float) -> SearchStrategy[object]:
    """Anything but a real number in ``(0, most]``: a duration in seconds, a rate."""
    return st.one_of(
        st.just(0),
        st.just(0.0),
        st.floats(max_value=-1e-300),
        st.integers(max_value=-1),
        st.floats(min_value=most * 1.001, allow_infinity=False),
        st.integers(min_value=math.ceil(most * 1.001)),
        HUGE_INTS,
        NON_FINITE,
        BOOLS,
        NOT_NUMBERS,
        st.none(),
    )


def bad_epochs() -> SearchStrategy[object]:
    """Anything but seconds since the epoch in ``[0, MAX_EPOCH]``: ms, µs and ns stamps too."""
    now = time.time()
    return st.one_of(
        st.floats(max_value=-1e-300),
        st.integers(max_value=-1),
        st.floats(min_value=MAX_EPOCH * 1.001, allow_infinity=False),
        st.integers(min_value=MAX_EPOCH + 1),
        st.sampled_from([now * 1e3, now * 1e6, time.time_ns(), round(now * 1e3)]),
        HUGE_INTS,
        NON_FINITE,
        BOOLS,
        NOT_NUMBERS,
    )
