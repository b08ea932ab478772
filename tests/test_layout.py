"""The package's layout rules, checked so they cannot quietly erode.

Pattern modules hold the pattern only: no experiment rigs (multiprocessing, signal, numpy,
labkit.experiments), never the naive code, no Lua source inline (scripts live in
labkit/lua/ and are registered through labkit.scripts). Nothing in the repository points at
the team's private folder.
"""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PATTERNS = [
    "analytics", "cache", "flags", "leaderboard", "locks", "pubsub", "ratelimit", "sessions",
    "streams",
]  # fmt: skip
FORBIDDEN = {"multiprocessing", "signal", "numpy", "labkit.experiments", "labkit.naive"}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("module", PATTERNS)
def test_pattern_modules_import_no_experiment_code(module: str) -> None:
    imported = _imports(ROOT / "labkit" / f"{module}.py")
    bad = {
        name for name in imported if any(name == f or name.startswith(f + ".") for f in FORBIDDEN)
    }
    assert not bad, f"labkit/{module}.py imports {sorted(bad)}"


def _code_strings(path: Path) -> list[str]:
    """Every string literal in a module except docstrings (which may quote a Lua call)."""
    tree = ast.parse(path.read_text("utf-8"))
    docstrings = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            docstrings.add(id(body[0].value))
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
    ]


@pytest.mark.parametrize("module", PATTERNS)
def test_pattern_modules_hold_no_lua_source(module: str) -> None:
    path = ROOT / "labkit" / f"{module}.py"
    lua = [
        text[:60] for text in _code_strings(path) if "redis.call(" in text or "redis.pcall(" in text
    ]
    assert not lua, f"Lua source inline in labkit/{module}.py: {lua}"
    assert "register_script(" not in path.read_text("utf-8"), "register through labkit.scripts"


def test_nothing_in_the_repository_points_at_the_team_folder() -> None:
    files = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    needle = "../" + "shared"
    offenders = [
        name
        for name in files
        if (ROOT / name).is_file()
        and not name.endswith((".png", ".sqlite", ".gz"))
        and needle in (ROOT / name).read_text("utf-8", errors="replace")
    ]
    assert not offenders, f"these files point at {needle}/: {offenders}"


def test_every_labkit_exception_derives_from_labkit_error() -> None:
    import importlib
    import inspect

    from labkit.errors import LabkitError

    missing = []
    for path in sorted((ROOT / "labkit").glob("*.py")):
        if path.stem in {"__init__", "naive"}:
            continue
        module = importlib.import_module(f"labkit.{path.stem}")
        for name, obj in vars(module).items():
            if (
                inspect.isclass(obj)
                and issubclass(obj, BaseException)
                and obj.__module__ == module.__name__
                and not issubclass(obj, LabkitError)
            ):
                missing.append(f"labkit.{path.stem}.{name}")
    assert not missing, f"not LabkitError subclasses: {missing}"
