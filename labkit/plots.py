"""One chart style for every notebook: a title, axis labels with units, stable colours.

``chart(title, xlabel, ylabel)`` returns a matplotlib ``(fig, ax)`` styled alike in every
notebook; ``color(variant)`` gives a variant ("naive", "notify", "allkeys-lru", ...) the same
colour wherever it appears, so a learner can follow one line across notebooks.
"""

from __future__ import annotations

import zlib
from typing import Any

import matplotlib.pyplot as plt

# Colour-blind-safe palette (Okabe & Ito), then tab10 for overflow.
PALETTE = (
    "#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7",
    "#56B4E9", "#F0E442", "#000000", "#8c564b", "#7f7f7f",
)  # fmt: skip

# Variants that recur across notebooks keep one colour everywhere.
_FIXED = {
    "labkit": PALETTE[0],
    "naive": PALETTE[3],
    "peer": PALETTE[1],
    "exact": PALETTE[7],
}


def color(variant: str) -> str:
    """A stable colour for ``variant``: fixed for common names, else from a hash of the name."""
    if variant in _FIXED:
        return _FIXED[variant]
    return PALETTE[zlib.crc32(variant.encode()) % len(PALETTE)]


FIGSIZE = (7.0, 4.0)


def chart(
    title: str,
    xlabel: str,
    ylabel: str,
    *,
    ax: Any = None,
    logx: bool = False,
    logy: bool = False,
    figsize: tuple[float, float] | None = None,
) -> tuple[Any, Any]:
    """A titled, labelled ``(fig, ax)``. Labels should carry units: "latency (ms)"."""
    for name, value in (("title", title), ("xlabel", xlabel), ("ylabel", ylabel)):
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{name} must be a non-empty string: every chart is labelled")
    # Styled per axes rather than through rc_context: leaving an rc_context resets the
    # backend setting, and Jupyter's inline backend then stops showing new figures.
    if ax is None:
        fig, ax = plt.subplots(figsize=figsize or FIGSIZE)
    else:
        fig = ax.figure
    ax.set_title(title, fontsize=12, fontweight="bold")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    return fig, ax


def finish(ax: Any, *, legend: bool = True) -> None:
    """Add a legend when there are labelled artists, and tighten the layout."""
    if legend and ax.get_legend_handles_labels()[0]:
        ax.legend(frameon=False)
    ax.figure.tight_layout()
