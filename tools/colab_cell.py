"""Put the Colab/Binder set-up cell and an "Open in Colab" badge into notebooks, idempotently.

    python tools/colab_cell.py --repo OWNER/NAME [--ref main] notebooks/[0-9][0-9]_*.ipynb
    python tools/colab_cell.py --repo OWNER/NAME --check notebooks/*.ipynb   # exit 1 if stale

The set-up cell goes before the first code cell. It installs labkit (with the framework
integrations the notebooks show) from the repository when ``labkit`` is not importable, as on
Colab; where labkit is installed (``make lab``, ``make test``, Binder after its build) it
does nothing, and nbval skips it (``# NBVAL_SKIP``). The badge goes at the top of the first
markdown cell. Running the tool again changes nothing; changing ``--repo`` or ``--ref``
rewrites both in place. Everything else in the notebook is left byte for byte as it was.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run as a script or loaded by path
from normalize_notebooks import render  # the one on-disk format

CELL_ID = "labkit-colab-setup"
MARKER = "# labkit-colab-setup"
BADGE_RE = re.compile(r"^\[!\[Open In Colab\]\([^)]*\)\]\([^)]*\)\n*")
_REPO_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")


def setup_source(repo: str, ref: str) -> str:
    """The set-up cell's code."""
    return f'''# NBVAL_SKIP
{MARKER}: on Colab, install labkit; where it is installed already, do nothing.
import importlib.util
import subprocess
import sys

if importlib.util.find_spec("labkit") is None:
    subprocess.check_call(
        [sys.executable, "-m", "pip", "install", "--quiet",
         "labkit[integrations] @ git+https://github.com/{repo}@{ref}"]
    )
'''


def badge(repo: str, ref: str, notebook: str) -> str:
    url = f"https://colab.research.google.com/github/{repo}/blob/{ref}/notebooks/{notebook}"
    return f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({url})\n\n"


def _lines(text: str) -> list[str]:
    """Text as a notebook stores it: a list of lines, each but the last ending in \\n."""
    return text.splitlines(keepends=True)


def update(nb: dict[str, Any], repo: str, ref: str, notebook: str) -> dict[str, Any]:
    """``nb`` with the set-up cell and badge present and current (a new dict)."""
    nb = json.loads(json.dumps(nb))
    cells: list[dict[str, Any]] = nb["cells"]
    source = _lines(setup_source(repo, ref).rstrip("\n"))
    existing = [c for c in cells if MARKER in "".join(c.get("source", []))]
    if existing:
        existing[0]["source"] = source
        for extra in existing[1:]:
            cells.remove(extra)
    else:
        first_code = next((i for i, c in enumerate(cells) if c["cell_type"] == "code"), len(cells))
        cells.insert(
            first_code,
            {
                "cell_type": "code",
                "execution_count": None,
                "id": CELL_ID,
                "metadata": {"tags": ["colab-setup"]},
                "outputs": [],
                "source": source,
            },
        )
    markdown = next((c for c in cells if c["cell_type"] == "markdown"), None)
    if markdown is not None:
        text = BADGE_RE.sub("", "".join(markdown["source"]))
        markdown["source"] = _lines(badge(repo, ref, notebook) + text)
    return nb


def dumps(nb: dict[str, Any]) -> str:
    """The notebook as the Jupyter server writes it (the normal form the tests check)."""
    return render(nbformat.from_dict(nb))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", required=True, help="GitHub OWNER/NAME the badge and pip use")
    parser.add_argument("--ref", default="main", help="branch or tag to install (default main)")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if stale")
    parser.add_argument("notebooks", nargs="+", type=Path)
    args = parser.parse_args(argv)
    if not _REPO_RE.match(args.repo):
        parser.error(f"--repo must be OWNER/NAME, not {args.repo!r}")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_./-]*", args.ref):
        parser.error(f"--ref must be a branch or tag name, not {args.ref!r}")
    stale = []
    for path in args.notebooks:
        before = path.read_text(encoding="utf-8")
        after = dumps(update(json.loads(before), args.repo, args.ref, path.name))
        if after != before:
            stale.append(path)
            if not args.check:
                path.write_text(after, encoding="utf-8")
    verb = "stale" if args.check else "updated"
    for path in stale:
        print(f"{verb}: {path}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
