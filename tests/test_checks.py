"""labkit.checks: every check names its argument and range, and converts exactly."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from labkit import checks

EXTREMES = [0, -1, 2**53, 2**63, 2**64, 10**400, -(10**400), 1e300, -1e300, math.inf, -math.inf]


@pytest.mark.parametrize("bad", [True, False, "1", None, 1j, [1]])
def test_numbers_refuse_non_numbers_naming_the_argument(bad: object) -> None:
    for check in (checks.integer, checks.number, checks.to_ms, checks.to_us, checks.epoch_seconds):
        with pytest.raises(TypeError, match=r"^limit "):
            check("limit", bad)


def test_integer_range_is_named() -> None:
    assert checks.integer("count", 5, low=1, high=10) == 5
    with pytest.raises(ValueError, match=r"count must be between 1 and 10, got 0"):
        checks.integer("count", 0, low=1, high=10)
    with pytest.raises(ValueError, match=r"count must be at most 9223372036854775807"):
        checks.integer("count", 2**63)
    with pytest.raises(TypeError, match="count must be an int"):
        checks.integer("count", 1.0)


@given(st.integers())
def test_integer_accepts_exactly_the_signed_64_bit_range_above_low(value: int) -> None:
    if 0 <= value <= checks.MAX_INT:
        assert checks.integer("n", value, low=0) == value
    else:
        with pytest.raises(ValueError, match=r"^n must be"):
            checks.integer("n", value, low=0)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, 10**400])
def test_number_refuses_what_is_not_a_finite_float(value: object) -> None:
    with pytest.raises(ValueError, match=r"^x "):
        checks.number("x", value)


def test_number_open_and_closed_bounds() -> None:
    assert checks.number("rate", 0, low=0) == 0.0
    with pytest.raises(ValueError, match=r"rate must be in \(0, inf\], got 0"):
        checks.number("rate", 0, low=0, low_open=True)
    assert checks.number("p", Fraction(1, 2), low=0, high=1) == 0.5


@given(st.floats(min_value=1e-9, max_value=1e9))
def test_to_ms_rounds_up_and_is_never_zero(seconds: float) -> None:
    ms = checks.to_ms("ttl", seconds)
    assert ms >= 1
    assert ms >= seconds * 1000 * (1 - 1e-12)  # up, except float noise (2.007 s is 2007 ms)
    assert ms - seconds * 1000 < 1 + 1e-6 * seconds * 1000


@pytest.mark.parametrize("value", [*EXTREMES, math.nan])
def test_durations_at_the_extremes_are_refused_or_exact(value: object) -> None:
    for convert, cap in ((checks.to_ms, checks.MAX_MS), (checks.to_us, checks.MAX_US)):
        try:
            result = convert("ttl", value)
        except ValueError as exc:
            assert str(exc).startswith("ttl must be")
        else:
            assert 1 <= result <= cap


def test_zero_duration_only_when_allowed() -> None:
    assert checks.to_ms("block", 0, allow_zero=True) == 0
    with pytest.raises(ValueError, match="block must be > 0"):
        checks.to_ms("block", 0)
    assert checks.seconds("timeout", 0.25) == 0.25


@pytest.mark.parametrize("ts", [0, 1.7e9, checks.MAX_EPOCH])
def test_epoch_seconds_accepts_seconds(ts: float) -> None:
    assert checks.epoch_seconds("now", ts) == ts


@pytest.mark.parametrize("ts", [1.7e12, 1.7e15, 1_700_000_000_000_000_000, -1])
def test_epoch_seconds_refuses_ms_us_and_ns(ts: float) -> None:
    with pytest.raises(ValueError, match="now must be seconds since the epoch"):
        checks.epoch_seconds("now", ts)


def test_text_and_tag_safe() -> None:
    assert checks.text("name", "a") == "a"
    with pytest.raises(ValueError, match="name must be a non-empty string"):
        checks.text("name", "")
    with pytest.raises(ValueError, match="at most 3 characters"):
        checks.text("name", "abcd", max_len=3)
    with pytest.raises(ValueError, match="name must not contain"):
        checks.tag_safe("name", "a{b}")
    with pytest.raises(TypeError, match="name must be a str"):
        checks.text("name", b"a")


def test_prefix_allows_empty_but_not_braces() -> None:
    assert checks.prefix("") == ""
    assert checks.prefix("lab:x:lock:") == "lab:x:lock:"
    with pytest.raises(ValueError, match="prefix must not contain"):
        checks.prefix("a{")


@pytest.mark.parametrize("bad", ["", "   ", True, None, 1.5])
def test_user_id_refuses_blank_and_non_ids(bad: object) -> None:
    with pytest.raises((TypeError, ValueError), match="user_id"):
        checks.user_id("user_id", bad)


def test_user_id_accepts_str_and_int() -> None:
    assert checks.user_id("user_id", 42) == "42"
    assert checks.user_id("user_id", "alice") == "alice"


def test_json_text_refuses_nan_and_objects() -> None:
    assert checks.json_text("payload", {"a": [1, 2]}) == '{"a":[1,2]}'
    with pytest.raises(ValueError, match="payload cannot be stored as JSON"):
        checks.json_text("payload", {"x": math.nan})
    with pytest.raises(TypeError, match="payload is not JSON-serialisable"):
        checks.json_text("payload", object())


def test_choice_and_as_text() -> None:
    assert checks.choice("method", "set", ("set", "hll")) == "set"
    with pytest.raises(ValueError, match="method must be one of 'set', 'hll'"):
        checks.choice("method", "bits", ("set", "hll"))
    assert checks.as_text(b"caf\xc3\xa9") == "café"
    assert checks.as_text(7) == "7"
