"""labkit.claims: a claim holds only when labkit passes its bound and the naive control does not."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from labkit.claims import Bound, Claims


def test_claim_holds_when_measured_passes_and_control_misses() -> None:
    claims = Claims()
    assert claims.add("single flight loads once", 1, ("<=", 1), control=8) is True
    table = claims.verify()
    assert list(table.columns) == ["claim", "measured", "bound", "control", "margin", "holds"]
    row = table.iloc[0]
    assert (row["measured"], row["bound"], row["control"], row["margin"], row["holds"]) == (
        1,
        "<= 1",
        8,
        "0",
        True,
    )


def test_claim_fails_when_measured_misses_the_bound() -> None:
    claims = Claims()
    assert claims.add("fast", 1.1, (">=", 3), control=1.0) is False
    with pytest.raises(
        AssertionError, match=r"1 claim\(s\) did not hold: fast: measured 1.1 misses the bound >= 3"
    ):
        claims.verify()
    assert claims.table().iloc[0]["margin"] == "-1.9"


def test_claim_fails_when_the_control_also_passes() -> None:
    claims = Claims()
    assert claims.add("no lost updates", 0, ("==", 0), control=0) is False
    with pytest.raises(
        AssertionError, match=r"the control 0 \(the naive version\) also passes the bound == 0"
    ):
        claims.verify()


def test_no_control_without_why_is_an_error() -> None:
    claims = Claims()
    with pytest.raises(ValueError, match="has no control: give control="):
        claims.add("ids are unique", 1000, (">=", 1000))
    with pytest.raises(ValueError, match="has no control"):
        claims.add("ids are unique", 1000, (">=", 1000), why="  ")
    with pytest.raises(ValueError, match="not both"):
        claims.add("ids are unique", 1000, (">=", 1000), control=3, why="because")
    assert claims.rows == []  # nothing recorded by a refused claim


def test_why_shows_the_margin() -> None:
    claims = Claims()
    assert claims.add("ids carry >= 128 bits", 130, (">=", 128), why="the article draws uuid4 too")
    row = claims.verify().iloc[0]
    assert row["control"] == "none: the article draws uuid4 too"
    assert row["margin"] == "+2"
    assert row["holds"]


def test_between_and_where_bounds_judge_measured_and_control_alike() -> None:
    claims = Claims()
    assert claims.add("bits are balanced", 0.5002, ("between", (0.49, 0.51)), control=0.7)
    rises = Bound.where(
        "rises at every step", lambda xs: all(a < b for a, b in itertools.pairwise(xs))
    )
    assert claims.add("hit ratio rises with TTL", [0.1, 0.4, 0.7], rises, control=[0.1, 0.1, 0.7])
    assert not claims.add(
        "the naive one rises too", [0.1, 0.4, 0.7], rises, control=[0.2, 0.3, 0.9]
    )
    table = claims.table()
    assert table["margin"].tolist()[:2] == ["+0.0098", "—"]
    assert table["bound"].tolist()[1] == "rises at every step"


def test_numpy_numbers_have_margins() -> None:
    claims = Claims()
    claims.add("speedup", np.float64(5.0), (">", np.float64(3.0)), control=np.int64(1))
    assert claims.table().iloc[0]["margin"] == "+2"


def test_bad_bounds_are_refused() -> None:
    claims = Claims()
    with pytest.raises(ValueError, match="bound op must be one of"):
        claims.add("x", 1, ("=>", 1), control=0)
    with pytest.raises(TypeError, match="bound must be"):
        claims.add("x", 1, ">= 1", control=0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"needs \(low, high\)"):
        Bound("between", 3)
    with pytest.raises(TypeError, match="cannot judge 'fast'"):
        claims.add("x", "fast", (">=", 1), control=0)


def test_the_older_check_form_is_gone() -> None:
    # every claim names its control or says why it has none: no judged-by-a-bool shortcut
    assert not hasattr(Claims(), "check")


def test_no_claims_is_a_failure() -> None:
    with pytest.raises(AssertionError, match="no claims"):
        Claims().verify()


def test_an_exact_equality_claim_shows_margin_zero_not_minus_zero() -> None:
    claims = Claims()
    assert claims.add("no lost updates", 0, ("==", 0), control=3) is True
    assert claims.add("one round trip", 1.0, ("==", 1), control=2) is True
    assert claims.table()["margin"].tolist() == ["0", "0"]
    claims.add("two misses", 2, ("==", 0), control=3)
    assert claims.table()["margin"].tolist()[-1] == "-2"
