"""Store notebooks exactly as JupyterLab writes them when it opens and saves them unchanged.

Found by opening every notebook in JupyterLab 4 (headless Chromium), saving, and diffing:

- ``metadata.kernelspec`` is the kernel's own spec: ``{"display_name": "Python 3 (ipykernel)",
  "language": "python", "name": "python3"}`` (JupyterLab rewrites it when the kernel starts,
  which marks the notebook modified and lets autosave rewrite the file);
- ``metadata.language_info`` is the kernel's ``kernel_info`` reply, including the Python
  version of the kernel (``3.11.7`` in the pinned venv);
- numbers go through JavaScript, so an integral float (``9.0``) comes back as ``9``;
- the file is nbformat's own serialisation (the server writes it): sorted keys, indent 1,
  multi-line strings split into lists, a trailing newline; nbformat 4.5 with cell ids.

Beyond what JupyterLab preserves, two things are dropped because they only make diffs:
saved widget state (``metadata.widgets``: stale values of sliders a reader cannot move, written
by ``nbconvert --execute``) and nbconvert's per-cell timing (``metadata.execution``).

Usage: ``python tools/normalize_notebooks.py [--check] [NOTEBOOK ...]`` (default: every
``notebooks/NN_*.ipynb``). ``--check`` changes nothing and exits 1 naming each notebook that
is not in normal form.
"""

from __future__ import annotations

import argparse
import sys
import uuid
from pathlib import Path
from typing import Any

import nbformat

ROOT = Path(__file__).resolve().parent.parent
KERNEL_NAME = "python3"


def kernelspec() -> dict[str, str]:
    """The kernelspec JupyterLab writes: the installed ``python3`` kernel's own spec."""
    from jupyter_client.kernelspec import KernelSpecManager

    spec = KernelSpecManager().get_kernel_spec(KERNEL_NAME)
    return {"display_name": spec.display_name, "language": spec.language, "name": KERNEL_NAME}


def language_info() -> dict[str, Any]:
    """What the kernel answers in ``kernel_info`` (the kernel runs this same interpreter)."""
    from ipykernel.ipkernel import IPythonKernel

    return dict(IPythonKernel.language_info)


def _as_javascript(value: Any) -> Any:
    # JupyterLab parses and re-serialises the whole notebook in the browser: 9.0 becomes 9.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _as_javascript(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_javascript(v) for v in value]
    return value


def normalise(nb: Any, spec: dict[str, str], info: dict[str, Any]) -> Any:
    """Return ``nb`` (a NotebookNode) in the normal form described in the module docstring."""
    nb = nbformat.from_dict(_as_javascript(nb))
    nb.nbformat, nb.nbformat_minor = 4, max(5, int(nb.get("nbformat_minor", 5)))
    nb.metadata.pop("widgets", None)
    nb.metadata["kernelspec"] = nbformat.from_dict(spec)
    nb.metadata["language_info"] = nbformat.from_dict(info)
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        if "id" not in cell:  # nbformat 4.5 requires ids; JupyterLab 4 adds them too
            cell["id"] = uuid.uuid4().hex[:8]
    return nb


def render(nb: Any) -> str:
    """The exact text the Jupyter server writes for ``nb``."""
    text = nbformat.writes(nb, version=nbformat.NO_CONVERT)
    return text if text.endswith("\n") else text + "\n"


def normal_text(path: Path, spec: dict[str, str], info: dict[str, Any]) -> str:
    nb = nbformat.read(path, as_version=nbformat.NO_CONVERT)
    return render(normalise(nb, spec, info))


def default_notebooks() -> list[Path]:
    return sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="report, change nothing")
    parser.add_argument("notebooks", nargs="*", type=Path)
    args = parser.parse_args(argv)
    spec, info = kernelspec(), language_info()
    stale = []
    for path in args.notebooks or default_notebooks():
        text = normal_text(path, spec, info)
        if path.read_text(encoding="utf-8") == text:
            continue
        stale.append(path)
        if not args.check:
            path.write_text(text, encoding="utf-8")
    verb = "not normalised" if args.check else "normalised"
    for path in stale:
        print(f"{verb}: {path}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
