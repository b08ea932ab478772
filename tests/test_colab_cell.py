"""tools/colab_cell.py: the Colab set-up cell and badge go in once and stay current."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent


def load_tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("colab_cell", ROOT / "tools" / "colab_cell.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def notebook() -> dict:
    return {
        "cells": [
            {"cell_type": "markdown", "id": "title", "metadata": {}, "source": ["# Title\n", "text"]},
            {"cell_type": "code", "execution_count": None, "id": "a", "metadata": {},
             "outputs": [], "source": ["import labkit"]},
        ],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def test_insert_is_idempotent_and_refreshes(tmp_path: Path) -> None:
    tool = load_tool()
    path = tmp_path / "00_x.ipynb"
    path.write_text(tool.dumps(notebook()), encoding="utf-8")
    assert tool.main(["--repo", "me/lab", str(path)]) == 0
    once = path.read_text(encoding="utf-8")
    assert tool.main(["--repo", "me/lab", "--check", str(path)]) == 0
    assert tool.main(["--repo", "me/lab", str(path)]) == 0
    assert path.read_text(encoding="utf-8") == once
    nb = json.loads(once)
    assert [c["id"] for c in nb["cells"]] == ["title", tool.CELL_ID, "a"]
    title = "".join(nb["cells"][0]["source"])
    assert title.startswith("[![Open In Colab]") and "blob/main/notebooks/00_x.ipynb" in title
    assert title.endswith("# Title\ntext")
    setup = "".join(nb["cells"][1]["source"])
    assert setup.startswith("# NBVAL_SKIP\n") and "git+https://github.com/me/lab@main" in setup
    # a new ref rewrites the cell and badge in place, no duplicates
    assert tool.main(["--repo", "me/lab", "--ref", "v2", "--check", str(path)]) == 1
    assert tool.main(["--repo", "me/lab", "--ref", "v2", str(path)]) == 0
    nb = json.loads(path.read_text(encoding="utf-8"))
    assert len(nb["cells"]) == 3
    assert "".join(nb["cells"][0]["source"]).count("Open In Colab") == 1
    assert "@v2" in "".join(nb["cells"][1]["source"])


def test_setup_cell_is_a_no_op_where_labkit_is_installed() -> None:
    source = load_tool().setup_source("me/lab", "main")
    compile(source, "<setup>", "exec")
    exec(source, {})  # labkit is importable here, so nothing is installed
