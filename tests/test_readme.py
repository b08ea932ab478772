"""README's notebook table lists every notebook, with the time its header states."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
ROW = re.compile(r"^\| (\d\d) \| \[[^\]]+\]\(notebooks/(\d\d_\w+\.ipynb)\) \|.*\| (\d+) min \|$", re.M)
HEADER_TIME = re.compile(r"\*\*Time:?\*\*:?\s*(\d+)\s*min")


def header_minutes(path: Path) -> int:
    first = json.loads(path.read_text(encoding="utf-8"))["cells"][0]
    match = HEADER_TIME.search("".join(first["source"]))
    assert match, f"{path.name}: the header cell states no **Time:**"
    return int(match[1])


def test_readme_table_lists_every_notebook_with_its_header_time() -> None:
    rows = {name: int(minutes) for _, name, minutes in ROW.findall((ROOT / "README.md").read_text())}
    assert sorted(rows) == [p.name for p in NOTEBOOKS], "README's notebook table is not the notebook list"
    wrong = {p.name: (rows[p.name], header_minutes(p)) for p in NOTEBOOKS if rows[p.name] != header_minutes(p)}
    assert not wrong, f"README time vs notebook header (minutes): {wrong}"
