"""Build ``site/``: static HTML of every notebook with its stored outputs, and an index page.

For readers who will not run anything. Each page is nbconvert's HTML export (lab template,
charts embedded as images, no script fetched from the network) with a bar linking the index
and the previous and next notebooks; links between notebooks (``NN_name.ipynb``) point at
their pages. The index is the README's notebook table, its links rewritten the same way.

Nothing is executed: a page shows what the stored notebook holds (``make notebooks`` refreshes
that). Usage: ``python tools/build_site.py [OUTPUT_DIR]`` (default ``site/``).
"""

from __future__ import annotations

import html
import re
import shutil
import sys
from pathlib import Path

import nbformat
from nbconvert import HTMLExporter
from nbconvert.filters.markdown_mistune import markdown2html_mistune

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
TEMPLATES = Path(__file__).resolve().parent / "site_template"  # holds the template "site"
TITLE = "Redis Patterns Lab"

# A link to a notebook, in README (notebooks/NN_x.ipynb) or in a notebook (NN_x.ipynb),
# optionally with an anchor: it becomes a link to that notebook's page.
_NOTEBOOK_HREF = re.compile(r'href="(?:\.?/?notebooks/)?(\d\d_[\w-]+)\.ipynb(#[^"]*)?"')


def page_name(notebook: Path) -> str:
    return notebook.stem + ".html"


def rewrite_links(text: str) -> str:
    return _NOTEBOOK_HREF.sub(lambda m: f'href="{m[1]}.html{m[2] or ""}"', text)


_ANCHOR = re.compile(r'<a href="([^"#:]*)(#[^"]*)?"[^>]*>(.*?)</a>', re.S)


def unlink_missing(text: str, out: Path) -> str:
    """Turn a relative link to a file the site does not have (README.md, a .py) into its text."""

    def keep(m: re.Match[str]) -> str:
        return m[0] if not m[1] or (out / m[1]).exists() else m[3]

    return _ANCHOR.sub(keep, text)


_WIDGET = "application/vnd.jupyter.widget-view+json"
PANEL_NOTE = (
    '<p class="site-widget">An interactive panel: its sliders redraw a chart when the notebook '
    "runs in JupyterLab.</p>"
)


def without_widgets(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Replace widget outputs, which have nothing to draw without a kernel or saved state.

    The notebooks store no widget state (tools/normalize_notebooks.py), so nbconvert would
    print a widget's repr (``interactive(children=(IntSlider(...``). A panel of sliders
    becomes a short note; a progress bar disappears.
    """
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        kept = []
        for out in cell.outputs:
            data = out.get("data", {})
            if _WIDGET not in data:
                kept.append(out)
            elif str(data.get("text/plain", "")).startswith("interactive("):
                kept.append(nbformat.v4.new_output("display_data", data={"text/html": PANEL_NOTE}))
        cell.outputs = kept
    return nb


def title_of(nb: nbformat.NotebookNode, fallback: str) -> str:
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return fallback


def nav(prev: Path | None, nxt: Path | None, titles: dict[Path, str]) -> str:
    parts = [f'<a href="index.html">{html.escape(TITLE)}: all notebooks</a>', '<span class="spacer"></span>']
    if prev is not None:
        parts.append(f'<a href="{page_name(prev)}">&larr; {html.escape(titles[prev])}</a>')
    if nxt is not None:
        parts.append(f'<a href="{page_name(nxt)}">{html.escape(titles[nxt])} &rarr;</a>')
    return "\n".join(parts)


def notebook_table(readme: str) -> str:
    """The README's section "## The notebooks" (its table and the paragraph after it)."""
    match = re.search(r"^## The notebooks\n(.*?)(?=^## )", readme, re.M | re.S)
    if match is None:
        raise SystemExit("README.md has no '## The notebooks' section")
    return match[1]


def index_page(readme: str) -> str:
    intro = readme.split("\n## ", 1)[0].split("\n", 1)[1] if readme.startswith("# ") else ""
    body = markdown2html_mistune(intro) + markdown2html_mistune(notebook_table(readme))
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8" />
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<title>{html.escape(TITLE)}</title>
<style type="text/css">
body {{ font-family: system-ui, sans-serif; max-width: 70em; margin: 2em auto; padding: 0 1em;
       line-height: 1.5; color: #222; }}
table {{ border-collapse: collapse; }}
th, td {{ border: 1px solid #ccc; padding: 4px 8px; vertical-align: top; text-align: left; }}
td:first-child, td:last-child {{ white-space: nowrap; }}
code {{ background: #f4f4f4; padding: 0 3px; }}
pre {{ background: #f4f4f4; padding: 8px; overflow-x: auto; }}
</style>
</head>
<body>
<h1>{html.escape(TITLE)}</h1>
<p>Every notebook of the workbook as it was last run, with its outputs and charts. To run
them yourself, clone the repository and run <code>make lab</code>.</p>
{rewrite_links(body)}
</body>
</html>
"""


def build(out: Path) -> list[Path]:
    """Write the site into ``out`` (replacing it) and return the pages written."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    notebooks = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    books = {p: without_widgets(nbformat.read(p, as_version=4)) for p in notebooks}
    titles = {p: title_of(nb, p.stem) for p, nb in books.items()}
    exporter = HTMLExporter(extra_template_basedirs=[str(TEMPLATES)], template_name="site")
    pages = []
    for i, path in enumerate(notebooks):
        prev = notebooks[i - 1] if i > 0 else None
        nxt = notebooks[i + 1] if i + 1 < len(notebooks) else None
        resources = {
            "metadata": {"name": titles[path], "path": str(path.parent)},
            "site_nav": nav(prev, nxt, titles),
        }
        body, _ = exporter.from_notebook_node(books[path], resources=resources)
        page = out / page_name(path)
        page.write_text(rewrite_links(body), encoding="utf-8")
        pages.append(page)
    index = out / "index.html"
    index.write_text(index_page((ROOT / "README.md").read_text(encoding="utf-8")), encoding="utf-8")
    for page in [index, *pages]:
        page.write_text(unlink_missing(page.read_text(encoding="utf-8"), out), encoding="utf-8")
    return [index, *pages]


def main(argv: list[str]) -> int:
    out = Path(argv[1]) if len(argv) > 1 else ROOT / "site"
    pages = build(out)
    print(f"wrote {len(pages)} pages to {out}/ (open {out / 'index.html'})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
