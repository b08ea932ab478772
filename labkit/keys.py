"""Key names: namespaces, glob escaping, and deleting by prefix without KEYS.

Every notebook and test works under a namespace, ``lab:<name>:``. On a server labkit does
not own (``REDIS_URL``), that prefix is the only part of the keyspace labkit touches, and
``Namespace.cleanup()`` deletes exactly the keys under it: SCAN + UNLINK in batches, never
KEYS, never FLUSHDB.

Namespace names are restricted to ``[A-Za-z0-9._-]`` so a prefix can never contain a glob
character or a hash-tag brace: patterns put their own ``{...}`` hash tags after it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from labkit.client import Client

NAMESPACE_ROOT = "lab"
_NAME = re.compile(r"[A-Za-z0-9._-]{1,100}")
_GLOB_SPECIALS = re.compile(r"([\\*?\[\]])")


def escape_glob(text: str) -> str:
    """Escape ``* ? [ ] \\`` so ``text`` matches only itself in SCAN MATCH / PSUBSCRIBE."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, not {type(text).__name__}")
    return _GLOB_SPECIALS.sub(r"\\\1", text)


def scan_unlink(r: Client, match: str, batch: int = 500) -> int:
    """UNLINK every key matching the glob ``match``, ``batch`` keys per round trip.

    Returns how many keys were removed. Works on a single node and on a cluster client
    (one UNLINK per key inside a non-transactional pipeline, so no cross-slot command).
    """
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    removed = 0
    pending: list[str] = []

    def flush() -> int:
        pipe = r.pipeline(transaction=False)
        for key in pending:
            pipe.unlink(key)
        count = sum(int(n) for n in pipe.execute())
        pending.clear()
        return count

    for key in r.scan_iter(match=match, count=batch):
        pending.append(key)
        if len(pending) >= batch:
            removed += flush()
    if pending:
        removed += flush()
    return removed


@dataclass(frozen=True)
class Namespace:
    """A prefix owned by one notebook or test, and the means to clean it up."""

    r: Client
    name: str

    @property
    def prefix(self) -> str:
        return f"{NAMESPACE_ROOT}:{self.name}:"

    def key(self, *parts: object) -> str:
        """``prefix + ':'.join(parts)`` — the one way to build a key in this namespace."""
        return self.prefix + ":".join(str(p) for p in parts)

    def prefix_for(self, pattern: str) -> str:
        """The ``prefix=`` to give a pattern class here: ``lab:<name>:<pattern>:``."""
        if not isinstance(pattern, str) or not _NAME.fullmatch(pattern):
            raise ValueError(f"pattern must be 1-100 characters from [A-Za-z0-9._-], got {pattern!r}")
        return f"{self.prefix}{pattern}:"

    def keys(self) -> list[str]:
        """Every key in the namespace (SCAN, so safe on a large shared server)."""
        return sorted(self.r.scan_iter(match=escape_glob(self.prefix) + "*", count=500))

    def cleanup(self) -> int:
        """Delete every key under the prefix and nothing else; return how many."""
        return scan_unlink(self.r, escape_glob(self.prefix) + "*")


def namespace(r: Client, name: str) -> Namespace:
    """A namespace ``lab:<name>:`` on the server behind ``r``.

    ``name`` uses letters, digits, ``.``, ``_`` and ``-`` only (no glob characters, no
    braces), e.g. ``namespace(r, "05-rate-limiting")``.
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, not {type(name).__name__}")
    if not _NAME.fullmatch(name):
        raise ValueError(f"name must be 1-100 characters from [A-Za-z0-9._-], got {name!r}")
    return Namespace(r, name)
