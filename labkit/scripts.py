"""Lua scripts: loaded from ``labkit/lua/``, registered once per client.

Each operation's script is a file ``labkit/lua/<pattern>/<operation>.lua`` that opens with a
header naming its KEYS, ARGV and reply. A script that needs a shared prelude says so on a
header line ``-- uses: <prelude> [<prelude> ...]`` (files in ``labkit/lua/prelude/``); the
loader puts the preludes before it. Pattern classes keep the loaded text in a class
attribute (so a notebook can print the script it teaches) and call :func:`register` to get a
callable bound to their client::

    class SlidingLog:
        SCRIPT = scripts.load("ratelimit/sliding_log")
        def __init__(self, r): self._script = scripts.register(r, self.SCRIPT)

The files are package data: an installed (non-editable) labkit finds them too.
"""

from __future__ import annotations

import re
import weakref
from functools import cache
from importlib.resources import files
from typing import Any

from redis.commands.core import Script

_USES = re.compile(r"^--\s*uses:\s*(.+)$", re.MULTILINE)
_NAME = re.compile(r"[a-z0-9_]+(/[a-z0-9_]+)*")

# One Script object per (client, source): registering computes the SHA1 once per client, and
# EVALSHA falls back to loading the script when the server does not know it yet.
_registered: weakref.WeakKeyDictionary[Any, dict[str, Script]] = weakref.WeakKeyDictionary()


@cache
def load(name: str) -> str:
    """The text of ``labkit/lua/<name>.lua`` with the preludes it names before it."""
    if not _NAME.fullmatch(name):
        raise ValueError(f"script name must look like 'pattern/operation', got {name!r}")
    body = files("labkit").joinpath("lua", *f"{name}.lua".split("/")).read_text("utf-8")
    header = body.split("\n\n", 1)[0]
    preludes = [p for line in _USES.findall(header) for p in line.split()]
    parts = [load(f"prelude/{prelude}") for prelude in preludes]
    return "\n".join([*parts, body])


def register(r: Any, source: str) -> Script:
    """A ``Script`` for ``source`` bound to ``r``, created once per client."""
    try:
        per_client = _registered.setdefault(r, {})
    except TypeError:  # a client that cannot be weakly referenced: register every time
        return r.register_script(source)
    script = per_client.get(source)
    if script is None:
        script = per_client[source] = r.register_script(source)
    return script
