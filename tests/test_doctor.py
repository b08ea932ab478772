"""labkit.doctor: one line per check, and a non-zero exit when the lab cannot run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from labkit import doctor
from labkit.server import ServerNotFoundError, choose_backend

ROOT = Path(__file__).resolve().parent.parent


def run_doctor(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "LABKIT_SERVER")}
    base["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-m", "labkit.doctor"],
        env={**base, **env},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_no_backend_fails_with_one_line_per_check(tmp_path: Path) -> None:
    # an empty PATH: no redis-server, so the forced binary backend cannot run
    done = run_doctor(tmp_path, PATH=str(tmp_path), LABKIT_SERVER="binary")
    assert done.returncode == 1, done.stdout + done.stderr
    lines = {line.split()[0]: line for line in done.stdout.splitlines() if line.strip()}
    for name in ("python", "venv", "labkit", "jupyter", "server", "ports", "docker", "chromium"):
        assert name in lines, done.stdout
    assert " FAIL " in lines["server"] and "redis-server" in lines["server"]
    assert "cannot run here" in done.stdout


def test_unknown_backend_is_a_failure_not_a_traceback(tmp_path: Path) -> None:
    done = run_doctor(tmp_path, LABKIT_SERVER="nonsense")
    assert done.returncode == 1
    assert "Traceback" not in done.stdout + done.stderr
    assert "LABKIT_SERVER='nonsense'" in done.stdout


def test_choose_backend_follows_connect(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://:secret@127.0.0.1:1/0")
    monkeypatch.delenv("LABKIT_SERVER", raising=False)
    backend, why = choose_backend()
    assert backend == "url" and "secret" not in why
    monkeypatch.setenv("LABKIT_SERVER", "embedded")
    assert choose_backend()[0] == "embedded"  # a forced private backend beats REDIS_URL
    monkeypatch.setenv("LABKIT_SERVER", "url")
    monkeypatch.delenv("REDIS_URL")
    with pytest.raises(ServerNotFoundError, match="REDIS_URL is not set"):
        choose_backend()


def test_server_check_starts_a_private_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setenv("LABKIT_SERVER", "embedded")
    name, status, detail = doctor.check_server()
    assert (name, status) == ("server", doctor.OK), detail
    assert detail.startswith("embedded") and "started" in detail


def test_a_crashing_check_is_reported() -> None:
    def check_boom() -> doctor.Check:
        raise OSError("disk on fire")

    assert doctor.run((check_boom,)) == [("boom", doctor.FAIL, "OSError: disk on fire")]
