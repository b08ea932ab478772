"""Rate limiting: four algorithms behind one interface, each decision one atomic round trip.

    limiter = SlidingLog(r, limit=100, window=60, prefix="ratelimit:")
    decision = limiter.hit("user:42")          # Decision(allowed, remaining, retry_after, reset_after)
    if not decision.allowed:
        return 429, decision.headers(limiter.limit)

The four limiters:

- ``FixedWindow``: a counter per window, windows aligned to multiples of ``window`` since the
  epoch. O(1) memory. Admits up to ``2 x limit`` inside one window length that straddles a
  boundary (``limit`` just before it, ``limit`` just after).
- ``SlidingLog``: exact. One sorted-set member per admitted request; a request is admitted
  when fewer than ``limit`` admitted requests lie in ``(now - window, now]``. A rejected
  request is not recorded, so a client that keeps retrying is not locked out. The log holds
  at most ``limit`` live members, plus expired ones that each admission trims a batch of
  (a denial writes nothing).
- ``SlidingWindowCounter``: the current and previous window counts, weighted
  (``estimate = prev * (window - elapsed) / window + curr``, Cloudflare's approximation); a
  request of ``cost`` is admitted when ``estimate + cost <= limit``. O(1) memory, close to the
  sliding log when traffic is smooth.
- ``TokenBucket``: GCRA (generic cell rate algorithm) with ``rate`` tokens per second and a
  bucket of ``burst`` tokens, stored as one value, the theoretical arrival time.

What is guaranteed: every ``hit``/``peek`` is one registered Lua script (one round trip,
atomic on the server), so concurrent clients cannot both take the last slot. Supported
servers: Redis 3.2 and later and Valkey (the clock prelude switches Redis 3.2-6.x to effects
replication before a write follows TIME; Redis 7+ and Valkey always replicate effects, and
are told apart by ``redis.REDIS_VERSION_NUM``, so they skip that call). The scripts
are files, ``labkit/lua/ratelimit/<algorithm>.lua``, each led by the shared preludes
``labkit/lua/prelude/clock.lua`` and ``ratelimit_clock.lua``; ``SlidingLog.SCRIPT`` (and so
on) holds the full text, for a notebook to print. Time comes from the server
(``redis.call('TIME')``) unless ``now=`` (seconds since the epoch, float) is passed, so
clients with skewed clocks share one clock; pass ``now`` from a
``labkit.workloads.VirtualClock`` to make experiments reproducible
(``labkit.experiments.ratelimit.replay`` pipelines a whole trace). Times are kept in integer
microseconds. Every key of one limited ``key`` shares the hash tag ``{key}`` (so ``key`` may
not contain ``{`` or ``}``), and the scripts run on Redis Cluster.

Expiry. Each script stores the times it needs (window number, log entries, TAT) and treats
state that is out of date *by its own clock* as gone, so a key's TTL never decides anything:
it only frees memory. On the server clock a key's TTL is the time until it holds nothing
useful (in milliseconds, rounded up, so a 0.5 s window never gets a 0 s TTL). With ``now=``
the script's clock is the caller's, unrelated to real time (an experiment may replay an hour
in a second, or pause in a debugger for ten minutes inside one virtual millisecond), so a
TTL counted in real time could drop state that virtual time still needs: there every write
sets a TTL of at least ``VIRTUAL_TTL`` (one day) of real time, a garbage-collection floor.
Experiments should delete their keys when done (``labkit.namespace(...).cleanup()``).

Ranges, checked before anything is sent (``labkit.checks``; a ``ValueError`` or
``TypeError`` names the argument and the range):

- ``limit`` (and ``burst``) at most ``MAX_EXACT`` (``2**53``): the scripts count in Lua
  doubles, exact up to there, so ``remaining`` stays exact (a limit near ``2**63`` used to
  come back as ``remaining=0`` on the first hit). ``SlidingLog`` keeps one sorted-set member
  per admitted unit, so its limit is at most ``SlidingLog.MAX_LIMIT`` (100,000): a ``hit``
  of cost ``n`` adds ``n`` members in one script while the server waits (100,000 took 2 s
  on a loaded 2-core machine; a million ran past Redis' 5 s busy-script threshold).
  ``TokenBucket`` counts tokens as times divided by the interval, so its ``burst`` is at
  most ``TokenBucket.MAX_LIMIT`` (``2**48``), where that division is still exact to a token.
- ``cost`` between 1 and ``limit``;
- ``now`` at most ``MAX_NOW`` seconds since the epoch (``2**52`` µs, in the year 2112), so
  a timestamp in ms, µs or ns (``time.time_ns()``) is refused instead of read as a time so
  far ahead that every window is empty (it used to admit every request);
- windows, and a token bucket's refill time ``burst / rate``, at most ``2**52`` µs (about
  142 years), rounded up to whole microseconds. With ``now`` that makes every time a script
  computes (``now + window``, a deadline, a TTL) an integer below ``2**53`` µs, exact in
  Lua's doubles: past ``2**53`` µs (the year 2255) doubles step by 2 µs or more, and a
  1 µs sliding log admitted every request;
- ``rate`` a finite number above 0 (and not so small that ``burst / rate`` passes the
  longest window). The bucket keeps its theoretical arrival time as whole µs plus a
  fraction, so even a bucket refilling many tokens a µs counts exactly at today's time,
  where doubles are 0.25 µs apart.

What is not guaranteed: limits are per server (no cross-region coordination); callers that
pass their own ``now`` are trusted to use one clock; a clock that runs backwards is treated
conservatively (the newest window seen so far keeps counting).

Keys, all built in ``_key``: ``<prefix>{<key>}:<kind>``, kind ``fw`` (FixedWindow string),
``log`` (SlidingLog sorted set), ``swc`` (SlidingWindowCounter
hash), ``tb`` (TokenBucket theoretical arrival time). The default prefix is ``ratelimit:``;
like every labkit prefix it is the literal start of each key and ends with ``:``.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

from labkit import checks, scripts
from labkit.client import Client

DEFAULT_PREFIX = "ratelimit:"
_US = 1_000_000
MAX_WINDOW_US = checks.MAX_US  # 2**52 µs: now + window, 2 x window stay <= 2**53, exact in Lua
MAX_NOW = checks.MAX_US / _US  # seconds since the epoch: 2**52 µs, in the year 2112
VIRTUAL_TTL = 86_400  # seconds of real time a key lives at least when the caller passes now=
# (the Lua side is VIRTUAL_TTL_MS in labkit/lua/prelude/ratelimit_clock.lua; a test holds
# the two equal)


@dataclass(frozen=True)
class Decision:
    """What a limiter answered.

    ``allowed``: the request may go ahead. ``remaining``: cost-1 requests that would still be
    admitted right now. ``retry_after``: seconds until a request of the same cost could be
    admitted (0 when allowed). ``reset_after``: seconds until the limiter holds no trace of
    this key (a full allowance again).
    """

    allowed: bool
    remaining: int
    retry_after: float
    reset_after: float

    def headers(self, limit: int) -> dict[str, str]:
        """HTTP headers for this decision: ``X-RateLimit-*``, and ``Retry-After`` on a denial.

        HTTP wants whole seconds, so times are rounded up.
        """
        out = {
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(math.ceil(self.reset_after)),
        }
        if not self.allowed:
            out["Retry-After"] = str(max(1, math.ceil(self.retry_after)))
        return out


def _now_arg(now: object) -> str:
    """ARGV[1], the clock: '' (server TIME) or whole microseconds since the epoch."""
    if now is None:
        return ""
    seconds = checks.number("now", now)
    if not 0 <= seconds <= MAX_NOW:
        raise ValueError(
            f"now must be seconds since the epoch in [0, {MAX_NOW}] (2**52 µs, the year "
            f"2112; a value in ms, µs or ns, such as time.time_ns(), is too large), got {now}"
        )
    return str(round(seconds * _US))


class Limiter(ABC):
    """The interface every limiter shares: ``hit``, ``peek``, ``is_allowed``, ``keys``.

    A limiter holds a client, its settings and its registered script; it keeps no state of
    its own, so one instance may be shared by threads.
    """

    KIND: ClassVar[tuple[str, ...]]
    SCRIPT: ClassVar[str]
    MAX_LIMIT: ClassVar[int] = checks.MAX_EXACT

    def __init__(
        self, r: Client, limit: int, window: float, *, prefix: str = DEFAULT_PREFIX
    ) -> None:
        self.limit = checks.integer("limit", limit, low=1, high=self.MAX_LIMIT)
        self._window_us = checks.to_us("window", window, cap=MAX_WINDOW_US)
        self.window = float(window)
        self.prefix = checks.prefix(prefix)
        self.r = r
        self._script = scripts.register(r, self.SCRIPT)

    # -- keys -----------------------------------------------------------------------------
    def _key(self, key: str, kind: str) -> str:
        """The one place key names are built: ``<prefix>{<key>}:<kind>``."""
        return f"{self.prefix}{{{key}}}:{kind}"

    def keys(self, key: str) -> list[str]:
        """The Redis keys this limiter uses for ``key`` (for MEMORY USAGE, cleanup, ...)."""
        checks.tag_safe("key", key)
        return [self._key(key, kind) for kind in self.KIND]

    # -- operations -----------------------------------------------------------------------
    def hit(self, key: str, cost: int = 1, now: float | None = None) -> Decision:
        """Ask to spend ``cost`` units for ``key``; recorded only when allowed."""
        return self._parse(self._script(keys=self.keys(key), args=self._args(cost, now, True)))

    def peek(self, key: str, cost: int = 1, now: float | None = None) -> Decision:
        """What ``hit`` would answer, without consuming anything (no writes)."""
        return self._parse(self._script(keys=self.keys(key), args=self._args(cost, now, False)))

    def is_allowed(self, key: str) -> tuple[bool, int]:
        """The classic shape: spend one unit, return ``(allowed, remaining)``."""
        decision = self.hit(key)
        return decision.allowed, decision.remaining

    # -- helpers --------------------------------------------------------------------------
    def _args(self, cost: object, now: object, consume: bool) -> list[str | int]:
        """The script's ARGV, every value checked: now, the two settings, cost, consume."""
        units = checks.integer("cost", cost, low=1, high=self.limit)
        return [_now_arg(now), *self._settings(), units, 1 if consume else 0]

    @abstractmethod
    def _settings(self) -> list[str | int]:
        """ARGV[2] and ARGV[3] of the script."""

    @staticmethod
    def _parse(reply: list[Any]) -> Decision:
        allowed, remaining, retry_us, reset_us = (int(x) for x in reply)
        return Decision(bool(allowed), max(0, remaining), retry_us / _US, reset_us / _US)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(limit={self.limit}, window={self.window}, prefix={self.prefix!r})"


class FixedWindow(Limiter):
    """At most ``limit`` per window, windows aligned to multiples of ``window`` since the epoch.

    Cheap (one small string per key, ``<window number>:<count>``: a denial is one GET, an
    admission one GET and one SET with its expiry) and easy to explain, but a client can pass
    ``limit`` at the end of one window and ``limit`` again at the start of the next:
    ``2 x limit`` within one window length.
    """

    KIND = ("fw",)
    SCRIPT = scripts.load("ratelimit/fixed_window")

    def _settings(self) -> list[str | int]:
        return [self.limit, self._window_us]


class SlidingLog(Limiter):
    """Exact: admitted when fewer than ``limit`` admitted units lie in ``(now - window, now]``.

    One sorted-set member per admitted unit, scored by its time; members are
    ``<time>:<seq>`` (seq zero-padded, counting the units of one microsecond) so two requests
    in the same microsecond are both kept. A rejected request is not recorded: a client
    retrying in a tight loop gets through as soon as the oldest entry leaves the window.

    A denial on a full window reads one member. A request of cost 1 is refused exactly when
    the ``limit``-th newest unit is still in the window, and the newest member names that
    unit's time (the admission that fills the window writes it on its last member; nothing
    else can fill a window). So the decision is one ``ZRANGE -1 -1`` (O(log n)), whatever
    the log holds; a cost above 1 reads the ``(limit - cost + 1)``-th newest instead. Units
    are recorded at ``max(now, newest)``: with a clock that runs back they count from the
    newest time seen, never shorter, and the newest member stays the last one written.

    Bounded work per admission: the live units are counted with ZCOUNT (O(log n)), so
    expired entries need not be removed first; each admission removes at most
    ``cost + TRIM_BATCH`` of the oldest expired entries (a denied ``hit`` writes nothing). A decision right after a full
    window of ``limit`` entries expired therefore costs the same as any other, instead of
    removing all of them in one call while every other client of the server waits. The log
    holds at most ``limit`` live members plus expired ones awaiting removal (fewer by at
    least ``TRIM_BATCH`` per admission), so memory is O(limit). A ``hit`` of cost ``n`` adds
    ``n`` members in one script, which is why ``limit`` is at most ``MAX_LIMIT``.
    """

    KIND = ("log",)
    SCRIPT = scripts.load("ratelimit/sliding_log")
    MAX_LIMIT = 100_000
    TRIM_BATCH = 64

    def _settings(self) -> list[str | int]:
        return [self.limit, self._window_us]

    def _args(self, cost: object, now: object, consume: bool) -> list[str | int]:
        return [*super()._args(cost, now, consume), self.TRIM_BATCH]


class SlidingWindowCounter(Limiter):
    """Cloudflare's approximation: admitted when ``estimate + cost <= limit``.

    ``estimate = prev * (window - elapsed) / window + curr``: this window's count plus the
    previous window's, weighted by how much of it still overlaps the last ``window`` seconds.

    Two counts per key (this window and the previous one, aligned like ``FixedWindow``), so
    O(1) memory. It assumes the previous window's requests were spread evenly; bursty traffic
    makes it admit a little more or less than the exact sliding log.
    """

    KIND = ("swc",)
    SCRIPT = scripts.load("ratelimit/sliding_window_counter")

    def _settings(self) -> list[str | int]:
        return [self.limit, self._window_us]


class TokenBucket(Limiter):
    """A bucket of ``burst`` tokens refilled at ``rate`` per second, as GCRA.

    GCRA stores one value per key, the theoretical arrival time (TAT): when the bucket
    would be full again (whole µs and a fraction, so it stays exact far from the epoch). A request of ``cost`` is admitted when
    ``max(TAT, now) + cost / rate - burst / rate <= now``. Over any span of ``t`` seconds it
    admits at most ``burst + rate * t`` units. ``limit`` is ``burst`` and ``window`` is the
    time to refill an empty bucket (``burst / rate``); ``TokenBucket.per(r, limit, window)``
    builds the bucket matching "limit per window". The state is a time (µs, a double), and a
    token count is a time divided by the interval ``1 / rate``: ``burst`` is at most
    ``MAX_LIMIT`` (``2**48``) so that division stays within a third of a token.
    """

    KIND = ("tb",)
    SCRIPT = scripts.load("ratelimit/token_bucket")
    MAX_LIMIT = 2**48

    def __init__(
        self, r: Client, rate: float, burst: int, *, prefix: str = DEFAULT_PREFIX
    ) -> None:
        per_second = checks.number("rate", rate, low=0, low_open=True)
        burst = checks.integer("burst", burst, low=1, high=self.MAX_LIMIT)
        if burst / per_second * _US > MAX_WINDOW_US:  # the refill time is the key's TTL
            slowest = burst * _US / MAX_WINDOW_US
            raise ValueError(
                f"rate must be >= {slowest:.3g} tokens per second for burst {burst} (a refill "
                f"time burst / rate over 2**52 µs leaves what Lua's doubles count exactly), "
                f"got {rate}"
            )
        self.rate = per_second
        self.burst = burst
        self._interval_us = _US / self.rate
        super().__init__(r, burst, burst / self.rate, prefix=prefix)

    @classmethod
    def per(
        cls, r: Client, limit: int, window: float, *, prefix: str = DEFAULT_PREFIX
    ) -> TokenBucket:
        """The bucket for "``limit`` per ``window`` seconds": burst ``limit``, rate ``limit/window``."""
        limit = checks.integer("limit", limit, low=1, high=cls.MAX_LIMIT)
        checks.to_us("window", window, cap=MAX_WINDOW_US)
        return cls(r, limit / float(window), limit, prefix=prefix)

    def _settings(self) -> list[str | int]:
        return [self.burst, repr(self._interval_us)]

    def __repr__(self) -> str:
        return f"TokenBucket(rate={self.rate}, burst={self.burst}, prefix={self.prefix!r})"


ALGORITHMS: dict[str, type[Limiter]] = {
    "fixed window": FixedWindow,
    "sliding log": SlidingLog,
    "sliding window counter": SlidingWindowCounter,
    "token bucket": TokenBucket,
}


def make(
    algorithm: str, r: Client, limit: int, window: float, *, prefix: str = DEFAULT_PREFIX
) -> Limiter:
    """Any of ``ALGORITHMS`` for "``limit`` per ``window`` seconds" (a bucket via ``per``)."""
    checks.choice("algorithm", algorithm, tuple(sorted(ALGORITHMS)))
    if algorithm == "token bucket":
        return TokenBucket.per(r, limit, window, prefix=prefix)
    return ALGORITHMS[algorithm](r, limit, window, prefix=prefix)
