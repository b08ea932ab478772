"""The workbook as a learner meets it: JupyterLab driven in headless Chromium, and the static site.

One JupyterLab (a free port, a token, settings and workspaces in a temporary directory,
autosave off) serves a temporary copy of the notebooks, so Run All never touches the stored
files; the open-and-save check uses the stored notebook itself and asserts `git status` stays
clean for it. Chromium is Debian's package, driven by the ``playwright`` Python package through
``executable_path`` (never a browser download). Without chromium or playwright the whole module
is skipped with a one-line reason.

Screenshots go to ``$LABKIT_SCREENSHOTS`` when set (for a person to look at), else to a
temporary directory.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip

if not os.path.exists(CHROMIUM):
    pytest.skip("browser test skipped: no chromium (apt-get install chromium)", allow_module_level=True)
try:
    from playwright.sync_api import Page, sync_playwright
except ImportError:
    pytest.skip("browser test skipped: playwright is not installed", allow_module_level=True)

psutil = pytest.importorskip("psutil")

RUN_ALL = ["00_setup_and_round_trips", "05_rate_limiting", "01_caching"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stored(name: str) -> dict[str, Any]:
    return json.loads((ROOT / "notebooks" / f"{name}.ipynb").read_text(encoding="utf-8"))


def _count_outputs(nb: dict[str, Any]) -> tuple[int, int]:
    """(charts, tables) in a notebook's outputs: PNG images, and HTML tables (DataFrames)."""
    images = tables = 0
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            images += "image/png" in data
            tables += "<table" in "".join(data.get("text/html", ""))
    return images, tables


class Lab:
    """A private JupyterLab server over a temporary copy of the notebooks."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.root = tmp / "root"
        (self.root / "notebooks").mkdir(parents=True)
        for nb in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"):
            shutil.copy2(nb, self.root / "notebooks" / nb.name)
        # The stored notebooks, for the open-and-save check (a symlink: the server does not
        # resolve it, and the files are the repository's own).
        (self.root / "stored").symlink_to(ROOT / "notebooks")
        settings = tmp / "settings" / "@jupyterlab" / "docmanager-extension"
        settings.mkdir(parents=True)
        (settings / "plugin.jupyterlab-settings").write_text('{"autosave": false}')
        news = tmp / "settings" / "@jupyterlab" / "apputils-extension"
        news.mkdir(parents=True)  # the "get notified about Jupyter news?" toast hides the page
        (news / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')
        self.runtime = tmp / "runtime"
        self.port, self.token = _free_port(), secrets.token_hex(16)
        env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "LABKIT_SERVER", "LABKIT_CLUSTER")}
        env.update(
            PYTHONPATH=str(ROOT),
            JUPYTERLAB_SETTINGS_DIR=str(tmp / "settings"),
            JUPYTERLAB_WORKSPACES_DIR=str(tmp / "workspaces"),
            JUPYTER_RUNTIME_DIR=str(self.runtime),
            JUPYTER_CONFIG_DIR=str(tmp / "config"),
        )
        self.log = tmp / "lab.log"
        self.process = subprocess.Popen(
            [
                sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root",
                f"--port={self.port}", "--ServerApp.ip=127.0.0.1", "--ServerApp.port_retries=0",
                f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={self.root}",
                "--LabApp.expose_app_in_browser=True",
            ],
            env=env, stdout=self.log.open("wb"), stderr=subprocess.STDOUT, cwd=self.root,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"JupyterLab exited: {self.log.read_text()[-2000:]}")
            try:
                urllib.request.urlopen(f"{self.base}/api/status?token={self.token}", timeout=2)
                return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"JupyterLab did not answer within 60 s: {self.log.read_text()[-2000:]}")

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str, workspace: str) -> str:
        tree = f"/tree/{path}" if path else ""
        return f"{self.base}/lab/workspaces/{workspace}{tree}?reset&token={self.token}"

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = Path(os.environ.get("LABKIT_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """`make site` into a temporary directory, started at once so it builds while kernels run."""
    out = tmp_path_factory.mktemp("site") / "site"
    build = subprocess.Popen(
        [sys.executable, str(ROOT / "tools" / "build_site.py"), str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=ROOT,
    )  # fmt: skip
    yield build, out
    if build.poll() is None:
        build.kill()
        build.wait()


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, site: Any) -> Iterator[Lab]:
    server = Lab(tmp_path_factory.mktemp("lab"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


# JavaScript run in the page. JupyterLab exposes its application object as window.jupyterapp
# (--LabApp.expose_app_in_browser); the commands are the ones the menus run.
_PANEL = """(path) => {
    const app = window.jupyterapp;
    if (!app) return null;
    for (const w of app.shell.widgets('main')) {
        if (w.context && w.context.path === path) return w;
    }
    return null;
}"""

_READY = f"""async (path) => {{
    const panel = ({_PANEL})(path);
    await panel.context.ready;
    await panel.sessionContext.ready;
    const kernel = panel.sessionContext.session.kernel;
    await kernel.info;
    // Give the front end a moment to apply the kernel's metadata (the way it marks a
    // notebook modified when its stored kernelspec or language_info differ).
    await new Promise(r => setTimeout(r, 1000));
    return {{dirty: panel.context.model.dirty, kernel: kernel.id}};
}}"""

_OPEN = f"""async (path) => {{
    await window.jupyterapp.commands.execute('docmanager:open', {{path}});
    return await ({_READY})(path);
}}"""

_SAVE = f"""async (path) => {{
    const panel = ({_PANEL})(path);
    await panel.context.save();
    return panel.context.model.dirty;
}}"""

# Run All as the Run menu does; the command's promise settles when every cell has run or one
# failed. Kept in window.labkitRuns so several notebooks run at once.
_START_RUN_ALL = f"""async (path) => {{
    const app = window.jupyterapp;
    const panel = ({_PANEL})(path);
    // Notebook commands act on the current notebook: make sure it is this one.
    app.shell.activateById(panel.id);
    while (app.shell.currentWidget !== panel) await new Promise(r => setTimeout(r, 50));
    await new Promise(r => setTimeout(r, 300));
    // Clear the stored outputs first, so every output checked afterwards comes from this run.
    await app.commands.execute('notebook:clear-all-cell-outputs');
    const started = performance.now();
    window.labkitRuns = window.labkitRuns || {{}};
    window.labkitRuns[path] = null;
    app.commands.execute('notebook:run-all-cells').then(
        ok => {{ window.labkitRuns[path] = {{ok, seconds: (performance.now() - started) / 1000}}; }},
        err => {{ window.labkitRuns[path] = {{ok: false, error: String(err)}}; }});
    await new Promise(r => setTimeout(r, 300));
}}"""

_ACTIVATE = f"""(path) => window.jupyterapp.shell.activateById(({_PANEL})(path).id)"""

_MODEL = f"""(path) => ({_PANEL})(path).model.toJSON()"""

_SHUTDOWN = f"""async (path) => {{ await ({_PANEL})(path).sessionContext.shutdown(); }}"""

RUN_TIMEOUT_MS = 300_000


def _cmdline(proc: Any) -> list[str]:
    try:
        return list(proc.cmdline())
    except psutil.Error:
        return []


def _kernel_processes(lab: Lab, kernel_id: str) -> tuple[list[Any], list[Any], list[str]]:
    """The kernel's process and its descendants, the servers among them, and their directories.

    A server (redis-server, valkey-server) rewrites its process title, but it runs in its
    directory (``--dir``), so that is its working directory.
    """
    connection = str(lab.runtime / f"kernel-{kernel_id}.json")
    for proc in psutil.process_iter(["cmdline"]):
        if connection in (proc.info["cmdline"] or []):
            family = [proc, *proc.children(recursive=True)]
            servers, dirs = [], []
            for p in family:
                try:
                    if "server" in p.name():
                        servers.append(p)
                        dirs.append(p.cwd())
                except psutil.Error:
                    continue
            return family, servers, dirs
    raise AssertionError(f"no kernel process for {connection}")


class Session:
    """One JupyterLab page; the notebooks of RUN_ALL open in its tabs and run one after another."""

    def __init__(self, lab: Lab, browser: Any, shots: Path) -> None:
        self.lab, self.shots = lab, shots
        self.page = browser.new_page(viewport={"width": 1400, "height": 1000})
        started = time.monotonic()
        self.page.goto(lab.url("", secrets.token_hex(4)))
        self.page.wait_for_function("() => window.jupyterapp && window.jupyterapp.started", timeout=120_000)
        self.page.evaluate("() => window.jupyterapp.restored")
        self.kernels: dict[str, str] = {}
        self.started: list[str] = []
        self.opened: dict[str, dict[str, Any]] = {}
        print(f"JupyterLab page loaded in {time.monotonic() - started:.1f} s")

    def open(self, path: str) -> dict[str, Any]:
        if path not in self.opened:
            self.opened[path] = self.page.evaluate(_OPEN, path)
        return self.opened[path]

    def run_all(self) -> None:
        """Open every notebook of RUN_ALL and start the first one's Run All."""
        for name in RUN_ALL:
            if name not in self.kernels:
                self.kernels[name] = self.open(f"notebooks/{name}.ipynb")["kernel"]
        if not self.started:
            self.started.append(RUN_ALL[0])
            self.page.evaluate(_START_RUN_ALL, f"notebooks/{RUN_ALL[0]}.ipynb")

    def ran(self, name: str) -> Page:
        """The page, showing the notebook after its Run All has finished.

        One notebook runs at a time, as a learner would run them: the experiments measure
        timing, and three at once on a small machine is a load no learner creates.
        """
        self.run_all()
        for earlier in RUN_ALL[: RUN_ALL.index(name) + 1]:
            if earlier not in self.started:
                self._wait(RUN_ALL[RUN_ALL.index(earlier) - 1])
                self.started.append(earlier)
                self.page.evaluate(_START_RUN_ALL, f"notebooks/{earlier}.ipynb")
        self._wait(name)
        path = f"notebooks/{name}.ipynb"
        self.page.evaluate(_ACTIVATE, path)
        return self.page

    def _wait(self, name: str) -> None:
        path = f"notebooks/{name}.ipynb"
        self.page.wait_for_function(
            "(p) => window.labkitRuns[p] !== null", arg=path, timeout=RUN_TIMEOUT_MS
        )
        result = self.page.evaluate("(p) => window.labkitRuns[p]", path)
        if "printed" not in result:
            print(f"{name}: Run All took {result.get('seconds', 0):.1f} s (ok={result['ok']})")
            self.page.evaluate("(p) => { window.labkitRuns[p].printed = true; }", path)

    def shot(self, page: Page, name: str) -> Path:
        path = self.shots / f"{name}.png"
        page.screenshot(path=str(path))
        return path


@pytest.fixture(scope="module")
def session(lab: Lab, browser: Any, shots: Path) -> Iterator[Session]:
    s = Session(lab, browser, shots)
    yield s
    s.page.close()


def _scroll_to(page: Page, path: str, predicate: str) -> int:
    """Scroll the notebook to the first cell whose model matches ``predicate`` (JS on `cell`)."""
    index = page.evaluate(
        f"""(p) => {{ const w = ({_PANEL})(p);
            const cells = w.model.toJSON().cells;
            const i = cells.findIndex(cell => {predicate});
            if (i >= 0) {{
                w.content.activeCellIndex = i;
                w.content.scrollToItem(i, 'start');
                w.content.widgets[i].node.setAttribute('data-test-cell', p + ':' + i);
            }}
            return i; }}""",
        path,
    )
    assert index >= 0, f"no cell matching {predicate} in {path}"
    page.wait_for_timeout(500)
    return int(index)


def _cell(page: Page, path: str, index: int) -> Any:
    return page.locator(f"[data-test-cell='{path}:{index}']")


def test_opening_and_saving_a_stored_notebook_leaves_git_clean(session: Session) -> None:
    session.run_all()  # the notebooks run while this test opens and saves another one
    name = "02_sessions.ipynb"
    before = (ROOT / "notebooks" / name).read_bytes()
    state = session.open(f"stored/{name}")
    assert not state["dirty"], f"JupyterLab marks {name} modified on opening: run `make normalize`"
    assert session.page.evaluate(_SAVE, f"stored/{name}") is False
    assert (ROOT / "notebooks" / name).read_bytes() == before, f"saving {name} unchanged rewrote it"
    if (ROOT / ".git").exists():
        status = subprocess.run(
            ["git", "status", "--porcelain", "--", f"notebooks/{name}"],
            cwd=ROOT, capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        assert status == "", status


@pytest.mark.parametrize("name", RUN_ALL)
def test_run_all_shows_every_chart_and_table_and_no_error(session: Session, name: str) -> None:
    page = session.ran(name)
    path = f"notebooks/{name}.ipynb"
    session.shot(page, f"{name}-after-run-all")
    nb = page.evaluate(_MODEL, path)
    errors = [
        f"cell {i}: {out.get('ename')}: {out.get('evalue')}"
        for i, cell in enumerate(nb["cells"])
        for out in cell.get("outputs", [])
        if out["output_type"] == "error"
    ]
    assert not errors, errors
    unrun = [i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code" and c["source"] and c["execution_count"] is None]
    assert not unrun, f"Run All stopped before cells {unrun}"
    images, tables = _count_outputs(nb)
    want_images, want_tables = _count_outputs(_stored(name))
    assert images >= want_images and tables >= want_tables, (images, tables, want_images, want_tables)
    # Every chart is drawn: each <img> in the page has decoded pixels.
    broken = page.evaluate(
        """() => [...document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea img')]
                 .filter(img => !(img.complete && img.naturalWidth > 0)).length"""
    )
    assert broken == 0, f"{broken} chart image(s) did not load"


def _panel_chart(page: Page, path: str, index: int) -> Any:
    return _cell(page, path, index).locator(".widget-output img").first


@pytest.mark.parametrize(
    "name",
    ["01_caching", "05_rate_limiting"],
)
def test_moving_a_slider_redraws_the_chart(session: Session, name: str) -> None:
    page = session.ran(name)
    path = f"notebooks/{name}.ipynb"
    index = _scroll_to(page, path, "cell.source.includes('widgets.interact')")
    cell = _cell(page, path, index)
    cell.locator(".widget-output img").first.wait_for(timeout=30_000)
    chart = _panel_chart(page, path, index)
    chart.scroll_into_view_if_needed()
    before = chart.get_attribute("src")
    handle = cell.locator(".noUi-handle").first
    box = handle.bounding_box()
    assert box is not None
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 40, y, steps=5)
    page.mouse.up()
    session.shot(page, f"{name}-slider-moved")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        errors = cell.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
        if errors.count():
            session.shot(page, f"{name}-slider-error")
            raise AssertionError(f"moving the slider printed an error: {errors.first.inner_text()[:300]}")
        if chart.count() and chart.get_attribute("src") != before:
            break
        page.wait_for_timeout(200)
    else:
        raise AssertionError("the chart did not change within 30 s of moving the slider")
    page.wait_for_function(
        f"(p) => ({_PANEL})(p).sessionContext.session.kernel.status === 'idle'", arg=path, timeout=30_000
    )
    page.wait_for_timeout(300)
    session.shot(page, f"{name}-slider-redrawn")


def test_a_solution_starts_hidden_and_expands(session: Session) -> None:
    name, path = "05_rate_limiting", "notebooks/05_rate_limiting.ipynb"
    page = session.ran(name)
    index = _scroll_to(page, path, "(cell.metadata.tags || []).includes('solution')")
    cell = _cell(page, path, index)
    placeholder = cell.locator(".jp-InputPlaceholder")
    assert placeholder.is_visible(), "a solution should start collapsed"
    assert not cell.locator(".jp-Cell-inputArea").is_visible()
    session.shot(page, f"{name}-solution-collapsed")
    placeholder.click()
    cell.locator(".jp-Cell-inputArea").wait_for(state="visible", timeout=5000)
    session.shot(page, f"{name}-solution-expanded")


def _run_new_cell(page: Page, path: str, code: str) -> dict[str, Any]:
    """Add a cell at the end of the open notebook (never saved), run it, return its model."""
    return page.evaluate(
        f"""async ([p, code]) => {{
            const w = ({_PANEL})(p);
            const app = window.jupyterapp;
            app.shell.activateById(w.id);
            w.content.activeCellIndex = w.content.widgets.length - 1;
            await app.commands.execute('notebook:insert-cell-below');
            w.content.activeCell.model.sharedModel.setSource(code);
            await app.commands.execute('notebook:run-cell');
            const cell = w.content.activeCell ?? w.content.widgets[w.content.widgets.length - 1];
            const last = w.content.widgets[w.content.widgets.length - 1];
            await new Promise(r => setTimeout(r, 300));
            while (w.sessionContext.session.kernel.status !== 'idle') await new Promise(r => setTimeout(r, 100));
            return last.model.toJSON();
        }}""",
        [path, code],
    )


def test_a_labkit_error_is_one_sentence_and_tb_has_the_traceback(session: Session) -> None:
    name, path = "00_setup_and_round_trips", "notebooks/00_setup_and_round_trips.ipynb"
    page = session.ran(name)
    cell = _run_new_cell(page, path, 'import labkit\nlabkit.connect("redis://127.0.0.1:1")')
    [out] = [o for o in cell["outputs"] if o["output_type"] == "error"]
    assert out["ename"] == "ServerNotFoundError"
    assert len(out["traceback"]) == 1 and "\n" not in out["traceback"][0].strip(), out["traceback"]
    assert re.match(r"ServerNotFoundError: url=redis://127\.0\.0\.1:1 did not answer", out["traceback"][0])
    session.shot(page, f"{name}-connect-error")
    tb = _run_new_cell(page, path, "%tb")
    text = "".join(
        "".join(o.get("text", "")) + "\n".join(o.get("traceback", [])) for o in tb["outputs"]
    )
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)
    assert "Traceback" in text and "_connect_url" in text, text[:500]
    session.shot(page, f"{name}-percent-tb")


def test_shutting_a_kernel_down_stops_its_server_and_removes_its_directory(session: Session) -> None:
    for name in RUN_ALL:
        page = session.ran(name)
        path = f"notebooks/{name}.ipynb"
        kernel_id = session.kernels[name]
        family, servers, dirs = _kernel_processes(session.lab, kernel_id)
        assert servers and all("labkit" in d for d in dirs), (
            f"{name}: no private server under the kernel: {[_cmdline(p) for p in family]} {dirs}"
        )
        page.evaluate(_SHUTDOWN, path)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            alive = [p for p in family if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
            left = [d for d in dirs if os.path.exists(d)]
            if not alive and not left:
                break
            time.sleep(0.2)
        else:
            raise AssertionError(f"{name}: still there after shutdown: {alive} {left}")


def test_site_pages_load_every_image_and_link(site: tuple[subprocess.Popen[bytes], Path], browser: Any, shots: Path) -> None:
    build, out = site
    started = time.monotonic()
    output, _ = build.communicate(timeout=300)
    assert build.returncode == 0, output.decode()[-2000:]
    pages = sorted(out.glob("*.html"))
    notebooks = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert {p.stem for p in pages} == {"index"} | {n.stem for n in notebooks}
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    linked: set[str] = set()
    try:
        for html in pages:
            page.goto(html.as_uri())
            page.wait_for_load_state("load")
            report = page.evaluate(
                """() => ({
                    images: [...document.images].map(img => [img.complete && img.naturalWidth > 0, img.src.slice(0, 60)]),
                    links: [...document.querySelectorAll('a[href]')].map(a => a.href),
                })"""
            )
            bad = [src for ok, src in report["images"] if not ok]
            assert not bad, f"{html.name}: images that did not load: {bad}"
            if html.stem != "index":
                want, _ = _count_outputs(_stored(html.stem))
                assert len(report["images"]) >= want, (html.name, len(report["images"]), want)
            for href in report["links"]:
                if href.startswith("file://"):
                    target = Path(urllib.request.url2pathname(href.split("#")[0][len("file://"):]))
                    assert target.exists(), f"{html.name}: broken link {href}"
                    linked.add(target.name)
        page.goto((out / "index.html").as_uri())
        page.screenshot(path=str(shots / "site-index.png"))
        page.goto((out / "01_caching.html").as_uri())
        page.screenshot(path=str(shots / "site-01.png"))
    finally:
        page.close()
    # Every notebook's page is reachable from the index and the pages' bars.
    assert {p.name for p in pages} <= linked, sorted({p.name for p in pages} - linked)
    print(f"site checked in {time.monotonic() - started:.1f} s")
