"""labkit.scripts and labkit/lua/: every script is a file with a header, loaded once."""

from __future__ import annotations

import re
from importlib.resources import files
from typing import Any

import pytest

from labkit import scripts

LUA = files("labkit").joinpath("lua")


def _script_names() -> list[str]:
    names = []
    for folder in LUA.iterdir():
        if folder.is_dir() and folder.name != "prelude":
            names += [f"{folder.name}/{f.name[:-4]}" for f in folder.iterdir() if f.name.endswith(".lua")]
    return sorted(names)


@pytest.mark.parametrize("name", _script_names())
def test_every_script_names_its_keys_argv_and_reply(name: str) -> None:
    header = LUA.joinpath(*f"{name}.lua".split("/")).read_text("utf-8").split("\n\n", 1)[0]
    assert header.startswith("--"), f"{name}.lua must open with a comment header"
    for word in ("KEYS", "ARGV", "Reply"):
        assert re.search(rf"\b{word}\b", header, re.IGNORECASE), f"{name}.lua header lacks {word}"


def test_preludes_come_first_and_exist() -> None:
    assert "local function now_us()" in scripts.load("prelude/clock")
    for name in _script_names():
        body = LUA.joinpath(*f"{name}.lua".split("/")).read_text("utf-8")
        text = scripts.load(name)
        assert text.endswith(body), f"{name}: the script itself must come last"
        uses = re.findall(r"^--\s*uses:\s*(.+)$", body.split("\n\n", 1)[0], re.MULTILINE)
        for prelude in (p for line in uses for p in line.split()):
            assert scripts.load(f"prelude/{prelude}") in text[: -len(body)], f"{name}: {prelude}"


def test_bad_names_are_refused() -> None:
    with pytest.raises(ValueError, match="script name"):
        scripts.load("../etc/passwd")


def test_a_script_is_registered_once_per_client(r: Any) -> None:
    source = "-- KEYS: none. ARGV[1]: x. Reply: x.\n\nreturn ARGV[1]"
    first = scripts.register(r, source)
    assert scripts.register(r, source) is first
    assert first(args=["7"]) in ("7", b"7")
