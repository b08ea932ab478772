"""Sentences rendered from data: a notebook never types a measured number by hand.

    finding("Pipelining {n} GETs was {speedup:.0f}x faster per command than {n} single calls.",
            n=100, speedup=measured_speedup)

renders that sentence as Markdown under the cell that measured it, so when a re-run changes
the number, the sentence changes with it. ``title(...)`` does the same for a chart title that
states the finding. Typed Markdown cells state no measured numbers.
"""

from __future__ import annotations

from typing import Any


def _render(template: str, values: dict[str, Any]) -> str:
    if not isinstance(template, str) or not template:
        raise ValueError("template must be a non-empty str")
    try:
        return template.format(**values)
    except KeyError as exc:
        raise KeyError(f"template names {exc} but no such value was given") from None


def title(template: str, /, **values: Any) -> str:
    """A chart title stating the finding, formatted from the measured ``values``."""
    return _render(template, values)


def finding(template: str, /, **values: Any) -> Any:
    """A Markdown sentence stating the finding, formatted from the measured ``values``."""
    from IPython.display import Markdown  # imported late: worker processes never need IPython

    return Markdown(_render(template, values))
