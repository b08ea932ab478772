"""labkit.claims: a failed claim names itself and its number."""

from __future__ import annotations

import pytest

from labkit.claims import Claims


def test_all_claims_hold() -> None:
    claims = Claims()
    claims.check("fast", 5.2, ">= 3", True)
    table = claims.verify()
    assert list(table.columns) == ["claim", "measured", "expected", "holds"]
    assert table["holds"].all()


def test_failed_claim_is_named_with_its_number() -> None:
    claims = Claims()
    claims.check("fast", 1.1, ">= 3", False)
    claims.check("fine", 1, "1", True)
    with pytest.raises(AssertionError, match=r"1 claim\(s\) did not hold: fast: measured 1.1"):
        claims.verify()


def test_no_claims_is_a_failure() -> None:
    with pytest.raises(AssertionError, match="no claims"):
        Claims().verify()
