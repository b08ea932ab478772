"""Every stored notebook is exactly what JupyterLab writes when it opens and saves it unchanged.

Otherwise opening a notebook marks it modified, autosave rewrites it, and a learner's checkout
is no longer clean for the next ``git pull``. Fix a failure with ``make normalize``.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("normalize_notebooks", ROOT / "tools" / "normalize_notebooks.py")
assert _spec is not None and _spec.loader is not None
normalize_notebooks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(normalize_notebooks)

NOTEBOOKS = normalize_notebooks.default_notebooks()


@pytest.fixture(scope="module")
def normal_form() -> tuple[dict, dict]:
    return normalize_notebooks.kernelspec(), normalize_notebooks.language_info()


def test_there_are_notebooks() -> None:
    assert len(NOTEBOOKS) >= 11


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stored_in_normal_form(path: Path, normal_form: tuple[dict, dict]) -> None:
    spec, info = normal_form
    stored = nbformat.read(path, as_version=nbformat.NO_CONVERT)
    version = stored.metadata.get("language_info", {}).get("version", "")
    # The kernel's Python patch version is the one thing that legitimately differs between
    # machines (JupyterLab writes whatever the learner's kernel runs); the rest is exact.
    assert re.fullmatch(r"3\.\d+\.\d+", version), f"{path.name}: language_info.version {version!r}"
    info = {**info, "version": version}
    text = path.read_text(encoding="utf-8")
    assert text == normalize_notebooks.normal_text(path, spec, info), (
        f"{path.name} is not stored as JupyterLab writes it; run `make normalize`"
    )


def test_notebooks_share_one_python_version() -> None:
    versions = {
        nbformat.read(p, as_version=nbformat.NO_CONVERT).metadata["language_info"]["version"]
        for p in NOTEBOOKS
    }
    assert len(versions) == 1, f"notebooks were saved by different Pythons: {sorted(versions)}"
