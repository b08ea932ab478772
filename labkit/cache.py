"""Caching: a page cache and cache-aside with stampede guards.

Two classes and a decorator:

- ``PageCache(r, prefix="cache:page", ttl=3600)``: rendered pages (or any JSON value) by URL.
  ``get_page``/``set_page``/``invalidate_page`` are one round trip each;
  ``invalidate_pattern(prefix)`` deletes every page whose URL starts with ``prefix`` by SCAN +
  UNLINK in batches (never KEYS), with glob characters in ``prefix`` escaped.
- ``CacheAside(r, loader, ttl)``: ``get(key)`` returns the cached value, or calls
  ``loader(key)``, stores the result and returns it. Options: negative caching of "not found"
  (the loader returned ``None``) with its own TTL, TTL jitter, and two stampede guards:
  single-flight (a short lock: one caller recomputes, the others wait or get the stale value)
  and XFetch probabilistic early recompute (Vattani, Chierichetti and Lowenstein, PVLDB 2015).
- ``cached(r, ttl, key=...)``: the same cache-aside as a function decorator.

Experiment helpers for notebook 01 live at the end: ``replay`` (a trace replayed against real
servers, in real time or flat out), ``lru_hits`` (exact LRU in Python), ``ttl_hit_ratio`` (the
TTL-cache model), ``hammer`` and ``recompute_bursts`` (stampede measurement).

Keys (``prefix`` is yours; inside a notebook pass ``prefix=ns.key("...")``):

- page: ``<prefix>:<url>`` (a string holding JSON)
- cache-aside entry: ``<prefix>:{<key>}`` (a hash: ``v`` = JSON value, ``d`` = the time the
  last recompute took, in ms); its single-flight lock: ``<prefix>:{<key>}:lock``. The braces
  are a hash tag so an entry and its lock live in one cluster slot.
- ``@cached`` without ``key=``: ``<module>.<qualname>:<sha256 of the arguments' repr>``, so
  arguments holding braces (dicts, sets, ``"{draft}"``) are fine.

What is guaranteed:

- A cached empty value (``""``, ``[]``, ``0``, ``False``) is a hit, never a miss.
- A hit is one round trip (one EVALSHA); a miss is two (fetch, store) plus the loader.
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
- Bad arguments raise ``ValueError``/``TypeError`` naming the argument before any command is
  sent. Durations are seconds, at least 1 ms and at most ``MAX_TTL_MS`` (2**46 ms, about
  2,230 years) once rounded to whole milliseconds.

What is not guaranteed: freshness. A cache-aside entry is stale for up to ``ttl`` after the
source changes unless you ``invalidate`` it on write; two writers racing a reader can still
leave an old value cached until it expires. Statistics (``stats()``) are counted in this
process only.
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
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, ParamSpec, TypeVar

import numpy as np

from labkit.keys import escape_glob, scan_unlink

P = ParamSpec("P")
T = TypeVar("T")
Clock = Callable[[], float]

MAX_TTL_MS = 2**46
"""Longest duration accepted, in ms (about 2,230 years). Even an entry's TTL plus jitter plus
its stale window stays far below what PEXPIRE accepts (2**63 ms minus the current time)."""


class CacheWaitTimeout(TimeoutError):
    """A single-flight waiter saw neither the value nor a free lock within ``wait_timeout``.

    Nothing was loaded or written by this caller; the loads already running go on. Retry, or
    raise ``wait_timeout`` (or ``lock_ttl``, if the loader is slow rather than stuck).
    """


# ---------------------------------------------------------------------------------------------
# Argument checks: every public entry point validates before a command reaches Redis.


def _check_ttl(name: str, value: object) -> int:
    """Seconds (int or float, > 0) -> whole milliseconds in ``[1, MAX_TTL_MS]``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds, not {type(value).__name__}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be > 0, got {value}")
    return _check_ms(name, value)


def _check_ms(name: str, seconds: float) -> int:
    """Finite seconds > 0 -> whole ms; rejects what rounds to 0 ms or exceeds MAX_TTL_MS."""
    ms = round(seconds * 1000)
    if ms < 1:
        raise ValueError(f"{name} must be at least 0.001 s (1 ms), got {seconds}")
    if ms > MAX_TTL_MS:
        raise ValueError(
            f"{name} must be at most {MAX_TTL_MS / 1000:.0f} s (2**46 ms), got {seconds}"
        )
    return ms


def _check_str(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, not {type(value).__name__}")
    if not value:
        raise ValueError(f"{name} must be a non-empty string")
    return value


def _check_prefix(value: object) -> str:
    prefix = _check_str("prefix", value)
    if "{" in prefix or "}" in prefix:
        raise ValueError(f"prefix must not contain '{{' or '}}' (hash-tag braces), got {prefix!r}")
    return prefix


def _encode(name: str, value: object) -> str:
    """JSON text of ``value``; a clear TypeError/ValueError naming ``name`` otherwise."""
    try:
        return json.dumps(value, separators=(",", ":"), allow_nan=False)
    except TypeError as exc:
        raise TypeError(f"{name} is not JSON-serialisable: {exc}") from None
    except ValueError as exc:  # NaN / Infinity, circular references
        raise ValueError(f"{name} cannot be stored as JSON: {exc}") from None


# ---------------------------------------------------------------------------------------------


class PageCache:
    """Whole pages (or any JSON value) cached by URL, with a default TTL in seconds.

    ``get_page(url)`` returns ``None`` on a miss, so ``None`` itself cannot be cached
    (``set_page(url, None)`` raises); every other JSON value, including ``""``, ``[]`` and
    ``0``, is returned as stored.

    ``invalidate_pattern(prefix)`` removes the pages whose URL starts with ``prefix``, taken
    literally: ``invalidate_pattern("*")`` removes only pages whose URL begins with ``*``.
    To pass a glob on purpose, say so: ``invalidate_pattern("/shop/*/reviews", glob=True)``
    (still confined to this cache's prefix). Keys: ``<prefix>:<url>``.
    """

    def __init__(self, r: Any, prefix: str = "cache:page", ttl: float = 3600) -> None:
        self.prefix = _check_str("prefix", prefix)
        self._ttl_ms = _check_ttl("ttl", ttl)
        self.ttl = ttl
        self.r = r

    def _key(self, url: str) -> str:
        return f"{self.prefix}:{url}"

    def get_page(self, url: str) -> Any | None:
        """The cached value for ``url``, or ``None`` on a miss. One GET."""
        raw = self.r.get(self._key(_check_str("url", url)))
        return None if raw is None else json.loads(raw)

    def set_page(self, url: str, content: Any, ttl: float | None = None) -> None:
        """Cache ``content`` (any JSON value but ``None``) for ``ttl`` seconds. One SET."""
        _check_str("url", url)
        ttl_ms = self._ttl_ms if ttl is None else _check_ttl("ttl", ttl)
        if content is None:
            raise ValueError("content must not be None: get_page returns None for a miss")
        self.r.set(self._key(url), _encode("content", content), px=ttl_ms)

    def invalidate_page(self, url: str) -> bool:
        """Remove one page; True if it was cached. One UNLINK."""
        return bool(self.r.unlink(self._key(_check_str("url", url))))

    def invalidate_pattern(self, prefix: str, *, glob: bool = False, batch: int = 500) -> int:
        """Remove every page whose URL starts with ``prefix``; return how many were removed.

        SCAN + UNLINK, ``batch`` keys per round trip, never KEYS. ``prefix`` is literal unless
        ``glob=True``, when it is a glob matched against the whole URL. Either way only keys
        under this cache's own prefix are candidates.
        """
        _check_str("prefix", prefix)
        if not isinstance(glob, bool):
            raise TypeError(f"glob must be a bool, not {type(glob).__name__}")
        if isinstance(batch, bool) or not isinstance(batch, int):
            raise TypeError(f"batch must be an int, not {type(batch).__name__}")
        if batch < 1:
            raise ValueError(f"batch must be >= 1, got {batch}")
        url_match = prefix if glob else escape_glob(prefix) + "*"
        return scan_unlink(self.r, escape_glob(self.prefix + ":") + url_match, batch=batch)


# ---------------------------------------------------------------------------------------------


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

    Timeline that single-flight prevents (ttl expires at t=0, loader takes 50 ms)::

        t=0 ms  A: GET -> miss, loads...      B: GET -> miss, loads...   C: ... loads
        t=50ms  A, B, C each write the same value: three loads for one expiry.

    With single-flight, A's read also takes the lock; B and C see "miss, locked" and poll;
    at t=50 ms A stores the value and releases the lock, and B and C read it: one load.

    ``rng`` (a ``random.Random``) drives jitter and XFetch, ``clock`` measures the loader's
    duration; inject both for reproducible experiments. Works with ``redis.Redis`` and
    ``redis.cluster.RedisCluster`` (entry and lock share a hash tag).
    """

    # KEYS[1] entry hash (fields v = JSON value, d = last recompute time in ms)
    # KEYS[2] single-flight lock (same hash tag as KEYS[1])
    # ARGV[1] lock token ("" = do not lock)
    # ARGV[2] lock TTL in ms
    # ARGV[3] stale window in ms: the entry is fresh while PTTL > ARGV[3]
    # ARGV[4] XFetch factor -beta * ln(rand), drawn by the client ("0" = XFetch off)
    # Returns {value or false, PTTL, 1 if the lock was taken, state}; state 0 = fresh,
    # 1 = fresh but XFetch says recompute early, 2 = stale, 3 = missing. The lock is tried
    # only for states 1-3, in this same atomic step, so a caller that read an entry just
    # before someone else refreshed it cannot take the lock and recompute it again.
    FETCH = """
local got = redis.call('HMGET', KEYS[1], 'v', 'd')
local pttl = redis.call('PTTL', KEYS[1])
local stale = tonumber(ARGV[3])
local state = 0
if not got[1] then
  state = 3
elseif pttl >= 0 and pttl <= stale then
  state = 2
elseif pttl >= 0 and tonumber(got[2] or '0') * tonumber(ARGV[4]) >= pttl - stale then
  state = 1
end
local granted = 0
if ARGV[1] ~= '' and state > 0 then
  if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then granted = 1 end
end
return {got[1], pttl, granted, state}
"""

    # KEYS[1] entry hash, KEYS[2] single-flight lock
    # ARGV[1] value as JSON, ARGV[2] recompute time in ms, ARGV[3] entry TTL in ms
    # ARGV[4] lock token to release ("" = none)
    # Stores the entry with its TTL; releases the lock only if ARGV[4] still owns it. A script
    # is not rolled back when a command in it fails, so the TTL is checked before anything is
    # written: a TTL PEXPIRE would refuse fails the whole call, never leaving an entry without
    # an expiry. (The client caps each TTL at 2^46 ms; ttl + jitter + stale stays < 2^48.)
    STORE = """
local ttl = tonumber(ARGV[3])
if not ttl or ttl < 1 or ttl > 281474976710656 or ttl % 1 ~= 0 then
  return redis.error_reply('ERR entry TTL must be a whole number of ms in [1, 2^48], got '
    .. ARGV[3])
end
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'd', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
if ARGV[4] ~= '' and redis.call('GET', KEYS[2]) == ARGV[4] then
  redis.call('DEL', KEYS[2])
end
return 1
"""

    # KEYS[1] single-flight lock; ARGV[1] token. Deletes the lock only if the token owns it.
    RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

    def __init__(
        self,
        r: Any,
        loader: Callable[[str], T | None] | None,
        ttl: float,
        *,
        prefix: str = "cache",
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
        self._ttl_ms = _check_ttl("ttl", ttl)
        self._negative_ms = (
            None if negative_ttl is None else _check_ttl("negative_ttl", negative_ttl)
        )
        if isinstance(jitter, bool) or not isinstance(jitter, (int, float)):
            raise TypeError(f"jitter must be a number, not {type(jitter).__name__}")
        if not 0 <= jitter < 1:
            raise ValueError(f"jitter must be in [0, 1), got {jitter}")
        if not isinstance(single_flight, bool):
            raise TypeError(f"single_flight must be a bool, not {type(single_flight).__name__}")
        self._lock_ms = _check_ttl("lock_ttl", lock_ttl)
        if wait_timeout is None:
            wait_timeout = 3 * self._lock_ms / 1000
        else:
            wait_timeout = _check_ttl("wait_timeout", wait_timeout) / 1000
        _check_ttl("poll_interval", poll_interval)
        if isinstance(stale_ttl, bool) or not isinstance(stale_ttl, (int, float)):
            raise TypeError(
                f"stale_ttl must be a number of seconds, not {type(stale_ttl).__name__}"
            )
        if not math.isfinite(stale_ttl) or stale_ttl < 0:
            raise ValueError(f"stale_ttl must be >= 0, got {stale_ttl}")
        stale_ms = 0
        if stale_ttl > 0:
            if round(stale_ttl * 1000) < 1:
                raise ValueError(f"stale_ttl must be 0 or at least 0.001 s (1 ms), got {stale_ttl}")
            stale_ms = _check_ms("stale_ttl", stale_ttl)
        if stale_ttl and not single_flight:
            raise ValueError(
                "stale_ttl needs single_flight=True: someone must hold the lock to refresh"
            )
        if beta is not None:
            if isinstance(beta, bool) or not isinstance(beta, (int, float)):
                raise TypeError(f"beta must be a number, not {type(beta).__name__}")
            if not math.isfinite(beta) or beta <= 0:
                raise ValueError(f"beta must be > 0, got {beta}")
        if not callable(clock):
            raise TypeError(f"clock must be callable, not {type(clock).__name__}")
        self.r = r
        self.loader = loader
        self.prefix = _check_prefix(prefix)
        self.ttl = ttl
        self.jitter = float(jitter)
        self.single_flight = single_flight
        self.poll_interval = float(poll_interval)
        self.wait_timeout = wait_timeout
        self._stale_ms = stale_ms
        self.beta = None if beta is None else float(beta)
        self._rng = rng if rng is not None else random.Random()
        self._clock = clock
        self._counts = dict.fromkeys(CacheStats.__dataclass_fields__, 0)
        self._counts_lock = threading.Lock()
        self._fetch = r.register_script(self.FETCH)
        self._store = r.register_script(self.STORE)
        self._release = r.register_script(self.RELEASE)

    # -- keys ---------------------------------------------------------------------------------

    def _keys(self, key: str) -> tuple[str, str]:
        """(entry, lock) for ``key``: ``<prefix>:{<key>}`` and ``<prefix>:{<key>}:lock``."""
        _check_str("key", key)
        if "{" in key or "}" in key:
            raise ValueError(
                f"key must not contain '{{' or '}}' (the cache wraps it in a hash tag), got {key!r}"
            )
        entry = f"{self.prefix}:{{{key}}}"
        return entry, entry + ":lock"

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
        entry, lock = self._keys(key)
        if not callable(load):
            raise TypeError(f"load must be callable, not {type(load).__name__}")
        token = secrets.token_hex(10) if self.single_flight else ""
        waited_since: float | None = None
        while True:
            raw, _, granted, state = self._fetch(
                keys=[entry, lock],
                args=[token, self._lock_ms, self._stale_ms, self._xfetch_factor()],
            )
            state, granted = int(state), int(granted)
            if state == 1 and (granted or not token):  # XFetch: refresh before expiry
                self._count("early_recomputes")
                return self._load_and_store(entry, lock, token if granted else "", load)
            if state == 2 and granted:  # stale, and we hold the lock: we refresh it
                self._count("misses")
                return self._load_and_store(entry, lock, token, load)
            if state in (0, 1):  # fresh (or an early refresh is someone else's job)
                self._count("hits")
                return json.loads(raw)  # type: ignore[no-any-return]
            if state == 2:  # stale, someone else is refreshing: serve the old value
                self._count("hits", "stale_hits")
                return json.loads(raw)  # type: ignore[no-any-return]
            if not self.single_flight or granted:
                self._count("misses")
                return self._load_and_store(entry, lock, token if granted else "", load)
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
        """Drop the cached entry for ``key`` (call it after writing to the source)."""
        entry, _ = self._keys(key)
        return bool(self.r.unlink(entry))

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
        self, entry: str, lock: str, token: str, load: Callable[[], T | None]
    ) -> T | None:
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
                payload, ttl_ms = _encode("the loaded value", value), self._entry_ttl_ms()
        except BaseException:
            if token:
                self._release(keys=[lock], args=[token])
            raise
        self._store(
            keys=[entry, lock], args=[payload, f"{delta_ms:.3f}", ttl_ms + self._stale_ms, token]
        )
        return json.loads(payload)  # type: ignore[no-any-return]


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
    r: Any,
    ttl: float,
    *,
    key: Callable[..., str] | None = None,
    prefix: str = "cache:fn",
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

        @cached(r, ttl=60, key=lambda pid: f"product:{pid}", prefix=ns.key("fn"))
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


# ---------------------------------------------------------------------------------------------
# Experiment helpers for notebook 01: replaying traces against real servers, exact LRU in
# Python, and counting recomputations in a stampede.


@dataclass(frozen=True)
class Stream:
    """One trace to replay: ``keys[i]`` is requested at ``times[i]`` on client ``r``.

    Each request is ``SET key value NX GET PX ttl_ms``: one command that returns the cached
    value (a hit) or stores ``value`` (a miss, then the entry lives ``ttl_ms``), which is
    cache-aside's get-then-set in one atomic step, so a pipeline of them has the same
    semantics as issuing them one by one. Needs Redis/Valkey >= 7.0 (SET with NX and GET).
    """

    r: Any
    keys: Sequence[str]
    ttl_ms: int


def replay(
    streams: Sequence[Stream],
    value: str,
    *,
    times: np.ndarray | None = None,
    chunk: int = 200,
    progress: bool = False,
) -> list[np.ndarray]:
    """Replay every stream (all the same length) and return one hit/miss array per stream.

    With ``times`` (seconds from the start, sorted) requests go out in real time: each loop
    sends every request whose time has come, one pipeline per client, so expiry and eviction
    happen on the server's own clock. Without ``times`` requests go out as fast as possible
    in pipelines of ``chunk``. A pipeline holds few commands, so client query buffers stay
    small (they count towards ``maxmemory``).
    """
    if not streams:
        raise ValueError("streams must not be empty")
    n = len(streams[0].keys)
    if any(len(s.keys) != n for s in streams):
        raise ValueError("every stream must have the same number of keys")
    if times is not None and len(times) != n:
        raise ValueError(f"times must have one entry per request ({n}), got {len(times)}")
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    by_client: dict[int, list[int]] = {}
    for index, stream in enumerate(streams):
        by_client.setdefault(id(stream.r), []).append(index)
    hits = [np.zeros(n, dtype=bool) for _ in streams]
    bar = _progress_bar(n) if progress else None
    start, done = time.perf_counter(), 0
    while done < n:
        if times is None:
            upto = min(n, done + chunk)
        else:
            upto = int(np.searchsorted(times, time.perf_counter() - start, side="right"))
            upto = min(upto, done + chunk)
            if upto == done:
                time.sleep(max(0.0, min(0.002, times[done] - (time.perf_counter() - start))))
                continue
        for indexes in by_client.values():
            pipe = streams[indexes[0]].r.pipeline(transaction=False)
            for index in indexes:
                stream = streams[index]
                for key in stream.keys[done:upto]:
                    pipe.set(key, value, nx=True, get=True, px=stream.ttl_ms)
            replies = pipe.execute()
            for slot, index in enumerate(indexes):
                part = replies[slot * (upto - done) : (slot + 1) * (upto - done)]
                hits[index][done:upto] = [reply is not None for reply in part]
        if bar is not None:
            bar.update(upto - done)
        done = upto
    if bar is not None:
        bar.close()
    return hits


def _progress_bar(total: int) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="req", leave=False)


def lru_hits(trace: Sequence[Any] | np.ndarray, capacity: int) -> np.ndarray:
    """Exact LRU in Python: which requests of ``trace`` hit a cache of ``capacity`` keys."""
    if isinstance(capacity, bool) or not isinstance(capacity, (int, np.integer)):
        raise TypeError(f"capacity must be an int, not {type(capacity).__name__}")
    if capacity < 1:
        raise ValueError(f"capacity must be >= 1, got {capacity}")
    cache: OrderedDict[Any, None] = OrderedDict()
    hits = np.zeros(len(trace), dtype=bool)
    for i, key in enumerate(trace):
        if key in cache:
            cache.move_to_end(key)
            hits[i] = True
        else:
            cache[key] = None
            if len(cache) > capacity:
                cache.popitem(last=False)
    return hits


def ttl_hit_ratio(weights: np.ndarray, rate: float, ttl: float) -> float:
    """Expected hit ratio of a TTL cache (no refresh on hit) under Poisson requests.

    Key k is requested at ``rate * weights[k]`` per second; each miss starts a ``ttl``-long
    window whose requests all hit, so key k hits with probability ``x / (1 + x)``,
    ``x = rate * weights[k] * ttl``.
    """
    x = rate * np.asarray(weights, dtype=float) * ttl
    return float(np.sum(np.asarray(weights) * x / (1 + x)))


def hammer(
    call: Callable[[], object], n_threads: int, duration: float, think: float = 0.001
) -> int:
    """Call ``call`` from ``n_threads`` threads for ``duration`` seconds, pausing ``think``
    seconds between calls; return how many calls completed. Threads start together."""
    if n_threads < 1:
        raise ValueError(f"n_threads must be >= 1, got {n_threads}")
    _check_ttl("duration", duration)
    barrier = threading.Barrier(n_threads)
    counts = [0] * n_threads
    errors: list[BaseException] = []

    def run(slot: int) -> None:
        barrier.wait()
        stop = time.perf_counter() + duration
        try:
            while time.perf_counter() < stop:
                call()
                counts[slot] += 1
                time.sleep(think)
        except BaseException as exc:  # re-raised in the caller's thread below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(slot,)) for slot in range(n_threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return sum(counts)


def recompute_bursts(starts: Sequence[float], window: float) -> list[int]:
    """Group loader start times into bursts: a load starting within ``window`` seconds of
    the first load of the current burst joins it. Returns the size of each burst, i.e. the
    recomputations each expiry (or early refresh) caused."""
    bursts: list[int] = []
    first = -math.inf
    for t in sorted(starts):
        if t - first <= window:
            bursts[-1] += 1
        else:
            bursts.append(1)
            first = t
    return bursts
