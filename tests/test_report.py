"""labkit.report: sentences and titles come from the numbers."""

from __future__ import annotations

import pytest

from labkit.report import finding, title


def test_finding_renders_the_numbers_as_markdown() -> None:
    md = finding("{lost:,} of {sent:,} lost ({share:.1%})", lost=1234, sent=10_000, share=0.1234)
    assert md.data == "1,234 of 10,000 lost (12.3%)"


def test_title_and_missing_values() -> None:
    assert title("{x:.1f}x faster", x=3.04) == "3.0x faster"
    with pytest.raises(KeyError, match="no such value"):
        title("{y} faster", x=1)
    with pytest.raises(ValueError, match="template"):
        title("")
