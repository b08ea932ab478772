"""labkit: the patterns of Redis Patterns Lab, small, typed and tested against a real server.

The front door::

    from labkit import connect, server_info, namespace
    r = connect()                      # REDIS_URL, else a private throwaway server
    server_info(r)                     # product, version, backend, owned?
    ns = namespace(r, "01-caching")    # every key this notebook writes starts with ns.prefix
    ...
    ns.cleanup()                       # deletes those keys and nothing else

Each pattern lives in its own module (``labkit.cache``, ``labkit.ratelimit``, ...) and takes
a Redis client as its first argument, so the same class runs on a single node or a cluster.
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


DATA_DIR = Path(__file__).resolve().parent.parent / "data"


def data_path(name: str) -> Path:
    """Path of a file in the repository's ``data/`` folder; raises if it is missing."""
    path = DATA_DIR / name
    if not path.exists():
        raise FileNotFoundError(
            f"{path} does not exist; the data sets are made by the scripts in {DATA_DIR}"
        )
    return path
