"""Pre-flight check: can this machine run the lab? ``python -m labkit.doctor`` (``make doctor``).

One line per check, ``ok``, ``warn`` (the lab runs, something optional is missing) or
``FAIL`` (the lab cannot run until it is fixed); the exit status is 1 when any check fails.
Which server ``connect()`` would use is decided by ``labkit.server.choose_backend``, the same
rules ``connect()`` follows; when that is a private binary or embedded server, the doctor
starts one, pings it and stops it, so "ok" means a server really ran here.

What it does not check: that every notebook passes (``make test`` does that), or a Docker
image pull (the Docker backend is reported, not started).
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import random
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

OK, WARN, FAIL = "ok", "warn", "FAIL"
Check = tuple[str, str, str]  # (name, status, one line saying what and why)

_BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
_LAB_PACKAGES = ("jupyterlab", "ipykernel")
_NOTEBOOK_PORT = 8888
# Checked at run time although pip refuses to install labkit on older Pythons: the doctor
# also runs from a source checkout (PYTHONPATH=.) under whatever python3 is on PATH.
MIN_PYTHON = (3, 11)


def check_python() -> Check:
    version = platform.python_version()
    where = f"{version} ({sys.executable}) on {platform.system()} {platform.machine()}"
    if sys.version_info < MIN_PYTHON:
        return "python", FAIL, f"{where}: labkit needs Python 3.11+"
    if os.name == "nt":
        return "python", FAIL, (
            f"{where}: native Windows is not supported (no embedded server, the watchdog "
            "needs sh); use WSL2"
        )
    return "python", OK, where


def check_venv() -> Check:
    if sys.prefix != sys.base_prefix:
        return "venv", OK, sys.prefix
    return "venv", WARN, (
        f"not in a virtual environment ({sys.prefix}); fine in a container or Colab, "
        "else run `make` to get .venv"
    )


def check_labkit() -> Check:
    import labkit

    try:
        version = importlib.metadata.version("labkit")
    except importlib.metadata.PackageNotFoundError:
        version = "not installed (imported from the source tree)"
    where = Path(labkit.__file__).resolve().parent
    missing = [
        name
        for name in ("catalogue.sqlite", "events_sample.csv.gz", "season.csv.gz")
        if not (labkit.DATA_DIR / name).is_file()
    ]
    if missing:
        return "labkit", FAIL, f"{version} at {where}: data sets missing: {', '.join(missing)}"
    return "labkit", OK, f"{version} at {where}, data sets present"


def check_server() -> Check:
    from labkit.server import RedisServer, ServerNotFoundError, choose_backend, connect

    try:
        backend, why = choose_backend()
    except ServerNotFoundError as exc:
        return "server", FAIL, str(exc)
    if backend == "docker":
        return "server", OK, f"docker ({why}); not started here"
    started = time.monotonic()
    try:
        if backend == "url":
            r = connect()
            owner = "answered"
        else:
            with RedisServer(backend=backend) as server:
                r = server.client()
                info = r.info("server")
                r.close()
            product = "Valkey" if info.get("server_name") == "valkey" else "Redis"
            version = info.get("valkey_version") or info.get("redis_version")
            owner = f"started {product} {version}, it answered"
    except ServerNotFoundError as exc:
        return "server", FAIL, f"{backend} ({why}) but: {exc}"
    if backend == "url":
        r.close()
    ms = (time.monotonic() - started) * 1000
    return "server", OK, f"{backend} ({why}); {owner} in {ms:.0f} ms"


def check_cluster() -> Check:
    from labkit.server import ServerNotFoundError, find_server_binary

    try:
        backend, path = find_server_binary()
    except ServerNotFoundError as exc:
        return "cluster", WARN, (
            f"no private cluster: {exc} (notebook 10 and the cluster tests need one; a "
            "REDIS_URL cluster with LABKIT_CLUSTER=1 also works)"
        )
    return "cluster", OK, f"private 3-primary clusters start from {backend}: {path}"


def check_ports() -> Check:
    from labkit.server import PORT_RANGE, ServerNotFoundError, _free_port, _port_is_free

    try:
        port = _free_port(random.Random())
    except ServerNotFoundError as exc:
        return "ports", FAIL, str(exc)
    jupyter = "free" if _port_is_free(_NOTEBOOK_PORT) else "in use (Jupyter will take the next)"
    return "ports", OK, (
        f"free ports in {PORT_RANGE[0]}-{PORT_RANGE[1]} (e.g. {port}, bus {port + 10000}); "
        f"{_NOTEBOOK_PORT} {jupyter}"
    )


def check_docker() -> Check:
    from labkit.server import docker_available

    if docker_available():
        return "docker", OK, "a Docker daemon answers (LABKIT_SERVER=docker can be used)"
    return "docker", WARN, "no Docker daemon answered in 1 s (optional: only LABKIT_SERVER=docker)"


def check_chromium() -> Check:
    for name in _BROWSERS:
        path = shutil.which(name)
        if path:
            return "chromium", OK, path
    return "chromium", WARN, (
        "no chromium on PATH (optional: only the browser test needs it; "
        "apt install chromium / brew install --cask chromium)"
    )


def check_jupyter() -> Check:
    versions, missing = [], []
    for name in _LAB_PACKAGES:
        try:
            versions.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            missing.append(name)
    if missing:
        return "jupyter", FAIL, (
            f"{', '.join(missing)} missing: run `make` (or `pip install 'labkit[lab]'`)"
        )
    return "jupyter", OK, ", ".join(versions)


CHECKS: tuple[Callable[[], Check], ...] = (
    check_python,
    check_venv,
    check_labkit,
    check_jupyter,
    check_server,
    check_cluster,
    check_ports,
    check_docker,
    check_chromium,
)


def run(checks: tuple[Callable[[], Check], ...] = CHECKS) -> list[Check]:
    """Run every check; a check that raises is reported as a failure, not a traceback."""
    results: list[Check] = []
    for check in checks:
        try:
            results.append(check())
        except Exception as exc:  # a doctor that crashes tells a participant nothing
            name = check.__name__.removeprefix("check_")
            results.append((name, FAIL, f"{type(exc).__name__}: {exc}"))
    return results


def main() -> int:
    results = run()
    for name, status, detail in results:
        print(f"{name:<9} {status:<4}  {detail}", flush=True)
    failed = [name for name, status, _ in results if status == FAIL]
    if failed:
        print(f"\nThe lab cannot run here until this is fixed: {', '.join(failed)}.")
        return 1
    print("\nReady: `make lab` opens the workbook.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
