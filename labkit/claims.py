"""Claim checks: the notebook states a claim, measures, and asserts it on its own data.

    claims = Claims()
    claims.check("pipeline of 100 is faster per command", speedup, ">= 3x", speedup >= 3)
    claims.verify()          # a DataFrame for the reader; AssertionError if any claim failed

Every claim keeps the number it was judged on, so a failing CI run says which lesson broke
and by how much, not just "assert False".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd


@dataclass
class Claims:
    rows: list[dict[str, Any]] = field(default_factory=list)

    def check(self, claim: str, measured: Any, expected: str, holds: bool) -> bool:
        """Record one claim: what was measured, what was expected, and whether it held."""
        if not isinstance(claim, str) or not claim:
            raise ValueError("claim must be a non-empty string")
        self.rows.append(
            {"claim": claim, "measured": measured, "expected": expected, "holds": bool(holds)}
        )
        return bool(holds)

    def table(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=["claim", "measured", "expected", "holds"])

    def verify(self) -> pd.DataFrame:
        """Return the table; raise AssertionError naming every claim that did not hold."""
        if not self.rows:
            raise AssertionError("no claims were checked")
        failed = [row for row in self.rows if not row["holds"]]
        if failed:
            lines = "; ".join(
                f"{row['claim']}: measured {row['measured']}, expected {row['expected']}"
                for row in failed
            )
            raise AssertionError(f"{len(failed)} claim(s) did not hold: {lines}")
        return self.table()
