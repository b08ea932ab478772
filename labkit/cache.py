"""Caching: a page cache and cache-aside with stampede guards.

Two classes and a decorator:

- ``PageCache(r, prefix="cache:page:", ttl=3600)``: rendered pages (or any JSON value) by
  URL. ``get_page``/``set_page``/``invalidate_page`` are one round trip each;
  ``invalidate_pattern(prefix)`` deletes every page whose URL starts with ``prefix`` by SCAN +
  UNLINK in batches (never KEYS), with glob characters in ``prefix`` escaped.
- ``CacheAside(r, loader, ttl)``: ``get(key)`` returns the cached value, or calls
  ``loader(key)``, stores the result and returns it. Options: negative caching of "not found"
  (the loader returned ``None``) with its own TTL, TTL jitter, and two stampede guards:
  single-flight (a short lock: one caller recomputes, the others wait or get the stale value)
  and XFetch probabilistic early recompute (Vattani, Chierichetti and Lowenstein, PVLDB 2015).
- ``cached(r, ttl, key=...)``: the same cache-aside as a function decorator.

The experiments notebook 01 runs on top of these (trace replay, exact LRU, stampede
measurement) live in ``labkit.experiments.cache``.

Keys (``prefix`` is yours and ends with ``:``; inside a notebook pass
``prefix=ns.prefix_for("...")``):

- page: ``<prefix><url>`` (a string holding JSON); default prefix ``cache:page:``.
- cache-aside entry: ``<prefix>{<key>}`` (a hash: ``v`` = JSON value, ``d`` = the time the
  last recompute took, in ms); its single-flight lock ``<prefix>{<key>}:lock``; the marker
  ``invalidate`` leaves, ``<prefix>{<key>}:invalidated`` (lives ``max(60 s, lock_ttl)``).
  The braces are a hash tag so an entry, its lock and its marker live in one cluster slot.
  Default prefix ``cache:``.
- ``@cached`` without ``key=``: ``<module>.<qualname>:<sha256 of the arguments' repr>``, so
  arguments holding braces (dicts, sets, ``"{draft}"``) are fine; default prefix
  ``cache:fn:``.

What is guaranteed:

- A cached empty value (``""``, ``[]``, ``0``, ``False``) is a hit, never a miss.
- A hit is one round trip (one EVALSHA); a miss is two (fetch, store) plus the loader;
  ``invalidate`` is one.
- ``invalidate(key)`` is not undone by a load already running: every load carries the
  invalidation marker its fetch saw, and the store refuses to write when ``invalidate``
  replaced it in between (the loaded value is still returned to its caller, which overlapped
  the write). So once ``invalidate`` returns, the next ``get`` loads afresh, however many
  readers and writers race. A load that takes longer than ``max(60 s, lock_ttl)`` is
  returned but never stored: past the marker's lifetime nobody can tell whether an
  ``invalidate`` came and went. (Instances sharing a prefix must agree on ``lock_ttl`` when
  it exceeds 60 s.)
- With ``single_flight=True`` a caller runs the loader only while it holds the key's lock,
  and one caller holds it at a time, until it stores the value, its loader raises or
  returns ``None`` (uncached), or ``lock_ttl`` passes. So a load starts only after the
  previous one finished or had run for ``lock_ttl``: a loader faster than ``lock_ttl`` runs
  once per miss; a slower one (or a crashed holder) lets exactly one waiter take the lock
  over each time it lapses, and only then can two loads overlap. Waiters never load without
  the lock: one with neither the value nor the lock after ``wait_timeout`` (default
  ``3 * lock_ttl``) raises ``CacheWaitTimeout`` (a ``TimeoutError``) having loaded nothing.
- Values are JSON: a value that JSON cannot encode raises ``TypeError`` (``NaN``/``Infinity``
  and circular references raise ``ValueError``) before anything is written, and the value
  returned on a miss is the decoded JSON (a tuple comes back as a list on a miss exactly as
  on a hit).
- Every entry is written together with its expiry, in one script that checks the TTL before
  writing: an entry can never be left without a TTL.
- Bad arguments raise ``ValueError``/``TypeError`` naming the argument and the accepted range
  before any command is sent (``labkit.checks``). Durations are seconds, rounded up to whole
  milliseconds, at least 1 ms and at most ``MAX_TTL_MS`` (2**46 ms, about 2,230 years).

What is not guaranteed: freshness without ``invalidate``. An entry is stale for up to ``ttl``
after the source changes unless you call ``invalidate`` after each write to the source (and
a load that starts after it must read the new data: a lagging replica as the source can
still hand it the old). Statistics (``stats()``) are counted in this process only.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import random
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, ParamSpec, TypeVar

from labkit import checks, scripts
from labkit.client import Client, Clock
from labkit.errors import LabkitError
from labkit.keys import escape_glob, scan_unlink

P = ParamSpec("P")
T = TypeVar("T")

MAX_TTL_MS = checks.MAX_MS
"""Longest duration accepted, in ms (2**46, about 2,230 years). Even an entry's TTL plus
jitter plus its stale window stays far below what PEXPIRE accepts (2**63 ms minus now)."""

MAX_BETA = float(checks.MAX_EXACT)
"""Largest XFetch ``beta``: the factor ``-beta * ln(rand())`` then stays a finite double."""

MAX_BATCH = 100_000
"""Most keys ``invalidate_pattern`` asks SCAN for per step: one step stays short."""

MIN_MARKER_MS = 60_000
"""Shortest life of an invalidation marker, and so the longest load that is always stored."""


class CacheWaitTimeout(LabkitError, TimeoutError):
    """A single-flight waiter saw neither the value nor a free lock within ``wait_timeout``.

    Nothing was loaded or written by this caller; the loads already running go on. Retry, or
    raise ``wait_timeout`` (or ``lock_ttl``, if the loader is slow rather than stuck).
    """


class PageCache:
    """Whole pages (or any JSON value) cached by URL, with a default TTL in seconds.

    ``get_page(url)`` returns ``None`` on a miss, so ``None`` itself cannot be cached
    (``set_page(url, None)`` raises); every other JSON value, including ``""``, ``[]`` and
    ``0``, is returned as stored.

    ``invalidate_pattern(prefix)`` removes the pages whose URL starts with ``prefix``, taken
    literally: ``invalidate_pattern("*")`` removes only pages whose URL begins with ``*``.
    To pass a glob on purpose, say so: ``invalidate_pattern("/shop/*/reviews", glob=True)``
    (still confined to this cache's prefix). Keys: ``<prefix><url>``. The prefix must not be
    empty: it is what keeps ``invalidate_pattern`` inside this cache's keys.
    """

    def __init__(self, r: Client, prefix: str = "cache:page:", ttl: float = 3600) -> None:
        self.prefix = checks.text("prefix", checks.prefix(prefix))
        self._ttl_ms = checks.to_ms("ttl", ttl)
        self.ttl = ttl
        self.r = r

    def _key(self, url: str) -> str:
        return self.prefix + checks.text("url", url)

    def get_page(self, url: str) -> Any | None:
        """The cached value for ``url``, or ``None`` on a miss. One GET."""
        raw = self.r.get(self._key(url))
        return None if raw is None else json.loads(raw)

    def set_page(self, url: str, content: Any, ttl: float | None = None) -> None:
        """Cache ``content`` (any JSON value but ``None``) for ``ttl`` seconds. One SET."""
        key = self._key(url)
        ttl_ms = self._ttl_ms if ttl is None else checks.to_ms("ttl", ttl)
        if content is None:
            raise ValueError("content must not be None: get_page returns None for a miss")
        self.r.set(key, checks.json_text("content", content), px=ttl_ms)

    def invalidate_page(self, url: str) -> bool:
        """Remove one page; True if it was cached. One UNLINK."""
        return bool(self.r.unlink(self._key(url)))

    def invalidate_pattern(self, prefix: str, *, glob: bool = False, batch: int = 500) -> int:
        """Remove every page whose URL starts with ``prefix``; return how many were removed.

        SCAN + UNLINK, ``batch`` keys (1 to ``MAX_BATCH``) per round trip, never KEYS.
        ``prefix`` is literal unless ``glob=True``, when it is a glob matched against the
        whole URL. Either way only keys under this cache's own prefix are candidates.
        """
        checks.text("prefix", prefix)
        if not isinstance(glob, bool):
            raise TypeError(f"glob must be a bool, not {type(glob).__name__}")
        batch = checks.integer("batch", batch, low=1, high=MAX_BATCH)
        url_match = prefix if glob else escape_glob(prefix) + "*"
        return scan_unlink(self.r, escape_glob(self.prefix) + url_match, batch=batch)


@dataclass(frozen=True)
class CacheStats:
    """What a ``CacheAside`` saw in this process.

    ``hits`` counts requests answered from Redis (fresh, stale, negative, or after waiting
    for another caller's recompute); ``misses`` counts requests that ran the loader because
    nothing usable was cached; ``early_recomputes`` counts XFetch refreshes of a still-valid
    entry. ``loads`` is every loader call (misses + early recomputes). ``lock_waits`` counts
    requests that found the key missing and locked; one that then raised ``CacheWaitTimeout``
    counts there only.
    """

    hits: int = 0
    misses: int = 0
    stale_hits: int = 0
    early_recomputes: int = 0
    lock_waits: int = 0
    loads: int = 0

    @property
    def requests(self) -> int:
        return self.hits + self.misses + self.early_recomputes

    @property
    def hit_ratio(self) -> float:
        """hits / requests (0.0 before the first request)."""
        return self.hits / self.requests if self.requests else 0.0

    def as_dict(self) -> dict[str, float]:
        return {
            "hits": self.hits,
            "misses": self.misses,
            "hit_ratio": self.hit_ratio,
            "stale_hits": self.stale_hits,
            "early_recomputes": self.early_recomputes,
            "lock_waits": self.lock_waits,
            "loads": self.loads,
        }


class CacheAside(Generic[T]):
    """Cache-aside: read Redis; on a miss call ``loader(key)``, store the result, return it.

    ``ttl`` (seconds) is the freshness lifetime. Options:

    - ``negative_ttl``: when the loader returns ``None`` ("not found"), cache that answer for
      this long (seconds); ``None`` (default) caches nothing and asks the loader every time.
    - ``jitter``: spread expiries: each stored TTL is ``ttl * (1 + jitter * U(-1, 1))``,
      ``0 <= jitter < 1``, so keys filled together do not all expire together.
    - ``single_flight``: a miss takes a short lock (``SET lock token NX PX lock_ttl``) in the
      same round trip as the read. The lock holder loads; the others poll every
      ``poll_interval`` s, and every poll is the same read-and-try-the-lock, so when a lock
      lapses (its holder crashed, or loads for longer than ``lock_ttl``) exactly one waiter
      takes it over and loads. A waiter never loads without the lock: after ``wait_timeout``
      s (default ``3 * lock_ttl``: time for a dead holder's lock to lapse and a successor to
      load) with no value and no lock it raises ``CacheWaitTimeout``. Set ``lock_ttl`` above
      the loader's worst-case time. With ``stale_ttl`` > 0 an entry outlives its TTL by that
      much, and while one caller recomputes it, the others get the stale value at once
      instead of waiting.
    - ``beta``: XFetch. On each hit, recompute early when
      ``-delta * beta * ln(rand()) >= remaining TTL`` (delta = how long the last recompute
      took). ``beta=1`` is the paper's default; larger recomputes earlier. XFetch alone takes
      no lock, so callers that draw "recompute" together all recompute; with
      ``single_flight=True`` as well, an early recompute also takes the lock (in the same
      read) and a caller that does not get it serves the still-fresh value.

    ``invalidate(key)`` drops the entry and leaves a marker for ``max(60 s, lock_ttl)``; a
    load that was running when it was called returns its value to its caller but does not
    store it (see the module docstring).

    Timeline that single-flight prevents (ttl expires at t=0, loader takes 50 ms)::

        t=0 ms  A: GET -> miss, loads...      B: GET -> miss, loads...   C: ... loads
        t=50ms  A, B, C each write the same value: three loads for one expiry.

    With single-flight, A's read also takes the lock; B and C see "miss, locked" and poll;
    at t=50 ms A stores the value and releases the lock, and B and C read it: one load.

    ``rng`` (a ``random.Random``) drives jitter and XFetch, ``clock`` measures the loader's
    duration; inject both for reproducible experiments. Works with ``redis.Redis`` and
    ``redis.cluster.RedisCluster`` (entry, lock and marker share a hash tag).
    """

    FETCH = scripts.load("cache/fetch")
    STORE = scripts.load("cache/store")
    RELEASE = scripts.load("common/compare_and_delete")  # the one compare-and-delete, shared with locks
    INVALIDATE = scripts.load("cache/invalidate")

    def __init__(
        self,
        r: Client,
        loader: Callable[[str], T | None] | None,
        ttl: float,
        *,
        prefix: str = "cache:",
        negative_ttl: float | None = None,
        jitter: float = 0.0,
        single_flight: bool = False,
        lock_ttl: float = 2.0,
        wait_timeout: float | None = None,
        poll_interval: float = 0.005,
        stale_ttl: float = 0.0,
        beta: float | None = None,
        rng: random.Random | None = None,
        clock: Clock = time.perf_counter,
    ) -> None:
        if loader is not None and not callable(loader):
            raise TypeError(f"loader must be callable, not {type(loader).__name__}")
        self._ttl_ms = checks.to_ms("ttl", ttl)
        self._negative_ms = (
            None if negative_ttl is None else checks.to_ms("negative_ttl", negative_ttl)
        )
        jitter = checks.number("jitter", jitter, low=0, high=1)
        if jitter == 1:
            raise ValueError(f"jitter must be in [0, 1), got {jitter}")
        if not isinstance(single_flight, bool):
            raise TypeError(f"single_flight must be a bool, not {type(single_flight).__name__}")
        self._lock_ms = checks.to_ms("lock_ttl", lock_ttl)
        if wait_timeout is None:
            wait_timeout = 3 * self._lock_ms / 1000
        else:
            wait_timeout = checks.to_ms("wait_timeout", wait_timeout) / 1000
        poll_interval = checks.seconds("poll_interval", poll_interval)
        self._stale_ms = checks.to_ms("stale_ttl", stale_ttl, allow_zero=True)
        if self._stale_ms and not single_flight:
            raise ValueError(
                "stale_ttl needs single_flight=True: someone must hold the lock to refresh"
            )
        if beta is not None:
            beta = checks.number("beta", beta, low=0, low_open=True, high=MAX_BETA)
        if not callable(clock):
            raise TypeError(f"clock must be callable, not {type(clock).__name__}")
        self.r = r
        self.loader = loader
        self.prefix = checks.prefix(prefix)
        self.ttl = ttl
        self.jitter = jitter
        self.single_flight = single_flight
        self.poll_interval = poll_interval
        self.wait_timeout = wait_timeout
        self.beta = beta
        # The marker must outlive every load that could still store: max(60 s, lock_ttl).
        self._marker_ms = max(MIN_MARKER_MS, self._lock_ms)
        self._rng = rng if rng is not None else random.Random()
        self._clock = clock
        self._counts = dict.fromkeys(CacheStats.__dataclass_fields__, 0)
        self._counts_lock = threading.Lock()
        self._fetch = scripts.register(r, self.FETCH)
        self._store = scripts.register(r, self.STORE)
        self._release = scripts.register(r, self.RELEASE)
        self._invalidate = scripts.register(r, self.INVALIDATE)

    # -- keys ---------------------------------------------------------------------------------

    def _keys(self, key: str) -> tuple[str, str, str]:
        """(entry, lock, marker): ``<prefix>{<key>}``, then ``:lock`` and ``:invalidated``."""
        entry = f"{self.prefix}{{{checks.tag_safe('key', key)}}}"
        return entry, entry + ":lock", entry + ":invalidated"

    # -- public API -----------------------------------------------------------------------------

    def get(self, key: str) -> T | None:
        """The value for ``key``: from Redis on a hit, from ``loader(key)`` on a miss."""
        loader = self.loader
        if loader is None:
            raise TypeError("this CacheAside has no loader; use fetch(key, load) instead")
        self._keys(key)
        return self.fetch(key, lambda: loader(key))

    def fetch(self, key: str, load: Callable[[], T | None]) -> T | None:
        """Like ``get`` but with the loader given for this call (a zero-argument callable)."""
        keys = self._keys(key)
        if not callable(load):
            raise TypeError(f"load must be callable, not {type(load).__name__}")
        token = secrets.token_hex(10) if self.single_flight else ""
        waited_since: float | None = None
        while True:
            reply = self._fetch(
                keys=keys, args=[token, self._lock_ms, self._stale_ms, self._xfetch_factor()]
            )
            raw, state, granted = reply[0], int(reply[3]), int(reply[2])
            seen = reply[4:]  # (marker, server time) for a load that may follow
            if state == 1 and (granted or not token):  # XFetch: refresh before expiry
                self._count("early_recomputes")
                return self._load_and_store(keys, token if granted else "", seen, load)
            if state == 2 and granted:  # stale, and we hold the lock: we refresh it
                self._count("misses")
                return self._load_and_store(keys, token, seen, load)
            if state in (0, 1):  # fresh (or an early refresh is someone else's job)
                self._count("hits")
                return json.loads(raw)
            if state == 2:  # stale, someone else is refreshing: serve the old value
                self._count("hits", "stale_hits")
                return json.loads(raw)
            if not self.single_flight or granted:
                self._count("misses")
                return self._load_and_store(keys, token if granted else "", seen, load)
            # Missing and locked by someone else. Each poll repeats the read and the SET NX,
            # so when the holder stores we read the value, and when its lock lapses (holder
            # crashed, or slower than lock_ttl) exactly one waiter gets the lock and loads.
            now = time.monotonic()
            if waited_since is None:
                waited_since = now
                self._count("lock_waits")
            elif now - waited_since >= self.wait_timeout:
                raise CacheWaitTimeout(
                    f"key {key!r}: waited {self.wait_timeout:g} s for another caller's load "
                    f"(lock_ttl {self._lock_ms / 1000:g} s) and never got the value or the lock"
                )
            time.sleep(min(self.poll_interval, max(0.0, waited_since + self.wait_timeout - now)))

    def invalidate(self, key: str) -> bool:
        """Drop the cached entry for ``key`` (call it after writing to the source).

        One round trip. Also replaces the key's invalidation marker, so a load that began
        before this call cannot store what it read; True if an entry was cached.
        """
        entry, _, marker = self._keys(key)
        return bool(
            self._invalidate(keys=[entry, marker], args=[secrets.token_hex(10), self._marker_ms])
        )

    def stats(self) -> CacheStats:
        with self._counts_lock:
            return CacheStats(**self._counts)

    def reset_stats(self) -> None:
        with self._counts_lock:
            for name in self._counts:
                self._counts[name] = 0

    # -- internals ------------------------------------------------------------------------------

    def _count(self, *names: str) -> None:
        with self._counts_lock:
            for name in names:
                self._counts[name] += 1

    def _xfetch_factor(self) -> str:
        """XFetch's ``-beta * ln(rand())``: the script recomputes early when
        ``delta * factor >= time left``, so the chance grows as expiry nears."""
        if self.beta is None:
            return "0"
        return repr(-self.beta * math.log(1.0 - self._rng.random()))

    def _entry_ttl_ms(self) -> int:
        ttl = self._ttl_ms
        if self.jitter:
            ttl = round(ttl * (1 + self.jitter * self._rng.uniform(-1, 1)))
        return max(1, ttl)

    def _load_and_store(
        self,
        keys: tuple[str, str, str],
        token: str,
        seen: list[Any],
        load: Callable[[], T | None],
    ) -> T | None:
        lock = keys[1]
        marker, fetched_at = seen
        self._count("loads")
        try:
            started = self._clock()
            value = load()
            delta_ms = max(0.0, (self._clock() - started) * 1000)
            if value is None:
                if self._negative_ms is None:
                    if token:
                        self._release(keys=[lock], args=[token])
                    return None
                payload, ttl_ms = "null", self._negative_ms
            else:
                payload = checks.json_text("the loaded value", value)
                ttl_ms = self._entry_ttl_ms()
        except BaseException:
            if token:
                self._release(keys=[lock], args=[token])
            raise
        # STORE writes only if no invalidate() ran since our fetch; either way the caller
        # gets what it loaded, since its read overlapped whatever write came in between.
        self._store(
            keys=keys,
            args=[
                payload,
                f"{delta_ms:.3f}",
                ttl_ms + self._stale_ms,
                token,
                marker,
                fetched_at,
                self._marker_ms * 1000,
            ],
        )
        return json.loads(payload)


class CachedFunction(Generic[P, T]):
    """A function wrapped by ``cached``: call it as before; ``.cache`` is its CacheAside."""

    def __init__(self, fn: Callable[P, T], cache: CacheAside[T], key: Callable[P, str]) -> None:
        self.__wrapped__ = fn
        self.cache = cache
        self._key = key
        functools.update_wrapper(self, fn)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> T | None:
        key = self._key(*args, **kwargs)
        if not isinstance(key, str):
            raise TypeError(f"key function must return a str, not {type(key).__name__}")
        return self.cache.fetch(key, lambda: self.__wrapped__(*args, **kwargs))

    def stats(self) -> CacheStats:
        return self.cache.stats()

    def invalidate(self, *args: P.args, **kwargs: P.kwargs) -> bool:
        """Drop the entry the call ``f(*args, **kwargs)`` would read."""
        return self.cache.invalidate(self._key(*args, **kwargs))


def _default_key(fn: Callable[..., Any]) -> Callable[..., str]:
    """``<module>.<qualname>:<sha256 hex of the arguments' repr>``.

    The function's name stays readable in the key; the arguments are hashed, so their
    ``repr`` may hold anything (braces included) and the key stays short.
    """
    name = f"{fn.__module__}.{fn.__qualname__}".replace("{", "(").replace("}", ")")

    def key(*args: Any, **kwargs: Any) -> str:
        parts = [repr(a) for a in args] + [f"{k}={v!r}" for k, v in sorted(kwargs.items())]
        digest = hashlib.sha256(f"({','.join(parts)})".encode()).hexdigest()
        return f"{name}:{digest}"

    return key


def cached(
    r: Client,
    ttl: float,
    *,
    key: Callable[..., str] | None = None,
    prefix: str = "cache:fn:",
    **options: Any,
) -> Callable[[Callable[P, T]], CachedFunction[P, T]]:
    """Decorator: cache-aside around a function.

    ``key(*args, **kwargs)`` names the entry; a key you give must not contain braces. The
    default is the function's qualified name and a SHA-256 of the ``repr`` of its arguments
    (``module.fn:<64 hex>``), which accepts any arguments but is only as stable as their
    ``repr``: an object with the default ``<... at 0x...>`` repr, or a set of strings in
    another process (hash randomisation reorders it), gets a different key each time, so pass
    ``key=`` for those. ``options`` are ``CacheAside``'s (``negative_ttl``, ``jitter``,
    ``single_flight``, ``beta``, ...)::

        @cached(r, ttl=60, key=lambda pid: f"product:{pid}", prefix=ns.prefix_for("fn"))
        def product(pid: int) -> dict: ...
    """
    if key is not None and not callable(key):
        raise TypeError(f"key must be callable, not {type(key).__name__}")
    cache: CacheAside[Any] = CacheAside(r, None, ttl, prefix=prefix, **options)

    def decorate(fn: Callable[P, T]) -> CachedFunction[P, T]:
        if not callable(fn):
            raise TypeError(f"cached decorates a function, not {type(fn).__name__}")
        return CachedFunction(fn, cache, key or _default_key(fn))

    return decorate
