"""Claim checks that can fail: the notebook states a claim, measures, and judges it on its own data.

    claims = Claims()
    claims.add("single flight loads once per expiry", loads_labkit, ("<=", 1),
               control=loads_naive)            # the same measurement on labkit.naive
    claims.add("the Lua release is one round trip", trips, ("==", 1),
               why="no naive counterpart: the article has no extend")
    claims.verify()          # a DataFrame for the reader; AssertionError if any claim failed

A claim holds when its measurement passes the bound AND its control, the same measurement
taken on the naive version in the same notebook, does not: a bound the naive code also meets
cannot tell the fix from the defect, so the claim fails. A claim with no naive counterpart
says why (``why=``) and shows its margin, how far the measurement is inside the bound, so a
reader can see whether it holds by a mile or by a hair.

A bound is ``(op, value)`` with op one of ``>=  >  <=  <  ==``, or ``("between", (low, high))``,
or a :class:`Bound`; ``Bound.where(text, predicate)`` judges measurements that are not one
number (a list that must rise, say). The same bound judges the measurement and the control.

Every claim keeps the numbers it was judged on, so a failing CI run says which lesson broke
and by how much, not just "assert False".
"""

from __future__ import annotations

import numbers
import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
    "==": operator.eq,
}
OPS = (*_OPS, "between")
COLUMNS = ["claim", "measured", "bound", "control", "margin", "holds"]


@dataclass(frozen=True)
class Bound:
    """What a measurement must satisfy: ``Bound(">=", 3)``, ``Bound("between", (0.49, 0.51))``.

    ``Bound.where(text, predicate)`` for anything else; such a bound has no margin.
    """

    op: str
    value: Any = None
    text: str | None = None
    predicate: Callable[[Any], bool] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.predicate is not None:
            if not callable(self.predicate):
                raise TypeError("predicate must be callable")
            if not isinstance(self.text, str) or not self.text:
                raise ValueError("a Bound.where needs text saying what it checks")
            return
        if self.op not in OPS:
            raise ValueError(f"bound op must be one of {', '.join(OPS)}, got {self.op!r}")
        if self.op == "between":
            if not (isinstance(self.value, tuple | list) and len(self.value) == 2):
                raise ValueError(f"a 'between' bound needs (low, high), got {self.value!r}")
            low, high = self.value
            if not low <= high:
                raise ValueError(f"a 'between' bound needs low <= high, got {self.value!r}")

    @classmethod
    def where(cls, text: str, predicate: Callable[[Any], bool]) -> Bound:
        """A bound judged by ``predicate(value)``, shown as ``text`` (e.g. "rises at every TTL")."""
        return cls("where", None, text, predicate)

    def passes(self, value: Any) -> bool:
        """True when ``value`` satisfies the bound."""
        if self.predicate is not None:
            return bool(self.predicate(value))
        try:
            if self.op == "between":
                low, high = self.value
                return bool(low <= value <= high)
            return bool(_OPS[self.op](value, self.value))
        except TypeError:
            raise TypeError(
                f"cannot judge {value!r} against bound {self}: give a number, or use Bound.where"
            ) from None

    def margin(self, value: Any) -> float | None:
        """How far ``value`` is inside the bound (negative: outside); None when not numeric."""
        if self.predicate is not None or not _is_number(value):
            return None
        if self.op == "between":
            low, high = self.value
            return float(min(value - low, high - value))
        if not _is_number(self.value):
            return None
        if self.op in (">=", ">"):
            return float(value - self.value)
        if self.op in ("<=", "<"):
            return float(self.value - value)
        return -abs(float(value - self.value))  # "==": 0 when exact

    def __str__(self) -> str:
        if self.text is not None:
            return self.text
        if self.op == "between":
            return f"between {self.value[0]} and {self.value[1]}"
        return f"{self.op} {self.value}"


def as_bound(bound: Bound | tuple[str, Any]) -> Bound:
    """``(op, value)`` or a :class:`Bound` as a :class:`Bound`."""
    if isinstance(bound, Bound):
        return bound
    if isinstance(bound, tuple) and len(bound) == 2 and isinstance(bound[0], str):
        return Bound(bound[0], bound[1])
    raise TypeError(
        f"bound must be (op, value) with op one of {', '.join(OPS)}, or a Bound, got {bound!r}"
    )


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _format_margin(margin: float | None) -> str:
    # Signed: + is inside the bound by that much, - is outside; "—" when there is no number.
    # Exactly on the bound (an equality claim that holds) is "0": neither in nor out, and an
    # "==" margin of -0.0 must not read as a miss.
    if margin is None:
        return "—"
    return "0" if margin == 0 else f"{margin:+.3g}"


@dataclass
class Claims:
    """The claims of one notebook; ``verify()`` at the end judges them all."""

    rows: list[dict[str, Any]] = field(default_factory=list)

    def add(
        self,
        claim: str,
        measured: Any,
        bound: Bound | tuple[str, Any],
        *,
        control: Any = None,
        why: str | None = None,
    ) -> bool:
        """Record a claim; return whether it holds.

        ``control`` is the same measurement on the naive version; without one, ``why`` must
        say why there is none. The claim holds when ``measured`` passes ``bound`` and
        ``control`` does not.
        """
        if not isinstance(claim, str) or not claim:
            raise ValueError("claim must be a non-empty string")
        judge = as_bound(bound)
        if control is None:
            if not isinstance(why, str) or not why.strip():
                raise ValueError(
                    f"claim {claim!r} has no control: give control= (the same measurement on "
                    "labkit.naive) or why= (why it has no naive counterpart)"
                )
        elif why is not None:
            raise ValueError(f"claim {claim!r}: why= is for a claim without a control, not both")
        passes = judge.passes(measured)
        control_passes = control is not None and judge.passes(control)
        holds = passes and not control_passes
        if not passes:
            failure = f"measured {measured!r} misses the bound {judge}"
        elif control_passes:
            failure = (
                f"the control {control!r} (the naive version) also passes the bound {judge}, "
                "so the claim cannot tell the two apart"
            )
        else:
            failure = ""
        self.rows.append(
            {
                "claim": claim,
                "measured": measured,
                "bound": str(judge),
                "control": control if control is not None else f"none: {why}",
                "margin": _format_margin(judge.margin(measured)),
                "holds": holds,
                "_failure": failure,
            }
        )
        return holds

    def table(self) -> pd.DataFrame:
        """One row per claim: claim, measured, bound, control, margin, holds."""
        return pd.DataFrame([{c: row[c] for c in COLUMNS} for row in self.rows], columns=COLUMNS)

    def verify(self) -> pd.DataFrame:
        """Return the table; raise AssertionError naming every claim that did not hold."""
        if not self.rows:
            raise AssertionError("no claims were checked")
        failed = [row for row in self.rows if not row["holds"]]
        if failed:
            lines = "; ".join(f"{row['claim']}: {row['_failure']}" for row in failed)
            raise AssertionError(f"{len(failed)} claim(s) did not hold: {lines}")
        return self.table()
