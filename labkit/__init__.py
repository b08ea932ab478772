"""labkit: the patterns of Redis Patterns Lab, small, typed and tested against a real server.

The front door::

    from labkit import connect, server_info, namespace
    r = connect()                      # REDIS_URL, else a private throwaway server
    server_info(r)                     # product, version, backend, owned?
    ns = namespace(r, "01-caching")    # every key this notebook writes starts with ns.prefix
    ...
    ns.cleanup()                       # deletes those keys and nothing else

Each pattern lives in its own module (``labkit.cache``, ``labkit.ratelimit``, ...) and takes
a Redis client (``labkit.client.Client``) as its first argument, so the same class runs on a
single node or a cluster. What the package holds:

- pattern modules: the pattern only, with a docstring saying what it guarantees and what it
  does not; they import nothing from ``labkit.experiments``;
- ``labkit.naive``: the widely copied article code, reproduced on purpose, defects and all;
- ``labkit.experiments``: the drivers, replays, sweeps and rigs the notebooks run;
- ``labkit.checks`` (every argument check), ``labkit.errors`` (``LabkitError``, the base of
  every labkit exception), ``labkit.scripts`` (Lua from ``labkit/lua/``, registered once per
  client), ``labkit.client`` (``Client``, ``Clock``, ``is_cluster``);
- ``labkit.server`` (finding or starting a server), ``keys``, ``workloads``, ``measure``,
  ``plots``, ``claims``.

Key prefixes, one convention for every pattern class: ``prefix=`` is the literal start of
every key the instance writes and ends with ``:`` (defaults: ``cache:``, ``session:``,
``lock:``, ``ratelimit:``, ...). The class appends ``{<tag>}:<part>``, the hash tag keeping an
operation's keys in one cluster slot, so a prefix may not contain ``{`` or ``}``. In a
notebook, ``ns.prefix_for("lock")`` gives ``lab:<notebook>:lock:``.

Adding a pattern: see ``CONTRIBUTING.md`` (the rate-limit module is the worked model).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from labkit.keys import Namespace, escape_glob, namespace
from labkit.server import (
    NotPrivateServerError,
    RedisServer,
    ServerInfo,
    ServerNotFoundError,
    connect,
    is_private,
    require_private,
    server_info,
)

__all__ = [
    "Claims",
    "Namespace",
    "NotPrivateServerError",
    "RedisServer",
    "ServerInfo",
    "ServerNotFoundError",
    "connect",
    "data_path",
    "escape_glob",
    "is_private",
    "namespace",
    "require_private",
    "server_info",
]

def __getattr__(name: str) -> Any:
    # Claims pulls in pandas (seconds to import); worker processes that only need a pattern
    # module should not pay for it, so it is imported on first use.
    if name == "Claims":
        from labkit.claims import Claims

        return Claims
    raise AttributeError(f"module 'labkit' has no attribute {name!r}")


# The data sets ship inside the package (package data), so an installed labkit finds them
# without a checkout; the scripts that make them stay in the repository's data/ folder.
DATA_DIR = Path(__file__).resolve().parent / "data"


def data_path(name: str) -> Path:
    """Path of a data set shipped with labkit (``labkit/data/``); raises if it is missing."""
    path = DATA_DIR / name
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} does not exist; the data sets ship in labkit/data/ and are made by the "
            "scripts in the repository's data/ folder (python data/make_<name>.py)"
        )
    return path
