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
  request is not recorded, so a client that keeps retrying is not locked out, and the log
  never holds more than ``limit`` members.
- ``SlidingWindowCounter``: the current and previous window counts, weighted
  (``estimate = prev * (window - elapsed) / window + curr``, Cloudflare's approximation); a
  request of ``cost`` is admitted when ``estimate + cost <= limit``. O(1) memory, close to the
  sliding log when traffic is smooth.
- ``TokenBucket``: GCRA (generic cell rate algorithm) with ``rate`` tokens per second and a
  bucket of ``burst`` tokens, stored as one number, the theoretical arrival time.

What is guaranteed: every ``hit``/``peek`` is one registered Lua script (one round trip,
atomic on the server), so concurrent clients cannot both take the last slot. Time comes from
the server (``redis.call('TIME')``) unless ``now=`` (seconds, float) is passed, so clients with
skewed clocks share one clock; pass ``now`` from a ``labkit.workloads.VirtualClock`` to make
experiments reproducible. Times are kept in integer microseconds. Every key of one limited
``key`` shares the hash tag ``{key}`` (so ``key`` may not contain ``{`` or ``}``), and the
scripts run on Redis Cluster.

Expiry. Each script stores the times it needs (window number, log entries, TAT) and treats
state that is out of date *by its own clock* as gone, so a key's TTL never decides anything:
it only frees memory. On the server clock a key's TTL is the time until it holds nothing
useful (in milliseconds, rounded up, so a 0.5 s window never gets a 0 s TTL). With ``now=``
the script's clock is the caller's, unrelated to real time (an experiment may replay an hour
in a second, or pause in a debugger for ten minutes inside one virtual millisecond), so a
TTL counted in real time could drop state that virtual time still needs: there every write
sets a TTL of at least ``VIRTUAL_TTL`` (one day) of real time, a garbage-collection floor.
Experiments should delete their keys when done (``labkit.namespace(...).cleanup()``).
Windows, and a token bucket's refill time ``burst / rate``, are limited to ``2**61`` µs
(about 73,000 years) so every TTL and reply fits Redis' 64-bit integers.

What is not guaranteed: limits are per server (no cross-region coordination); callers that
pass their own ``now`` are trusted to use one clock; a clock that runs backwards is treated
conservatively (the newest window seen so far keeps counting).

Keys, all built in ``_key``: ``<prefix>{<key>}:<kind>``, kind ``fw`` (FixedWindow hash),
``log`` and ``seq`` (SlidingLog sorted set and member counter), ``swc`` (SlidingWindowCounter
hash), ``tb`` (TokenBucket theoretical arrival time). The default prefix is ``ratelimit:``.
"""

from __future__ import annotations

import math
import numbers
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

from labkit.keys import check_prefix

DEFAULT_PREFIX = "ratelimit:"
_US = 1_000_000
_MAX_US = 2**61  # longest window / refill time: 2 x it in µs still fits a signed 64-bit reply
VIRTUAL_TTL = 86_400  # seconds of real time a key lives at least when the caller passes now=

# Shared Lua prologue: the clock and the TTL. An empty ARGV[1] means "use the server's
# clock". Redis 3.2-6.x must switch to effects replication before a write follows TIME;
# Redis 7+ and Valkey already replicate effects (and may no longer have the call), hence the
# guard. ttl(us): the PEXPIRE/PX argument for state useful for ``us`` more microseconds of the
# script's clock; with a caller's clock (virtual time) at least VIRTUAL_TTL of real time, a
# garbage-collection floor, since the scripts ignore out-of-date state themselves.
_CLOCK_LUA = (
    """
local virtual = ARGV[1] ~= ''
local function clock(arg)
  if arg ~= '' then return tonumber(arg) end
  if redis.replicate_commands then pcall(redis.replicate_commands) end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local function int(x) return string.format('%.0f', x) end
local function ttl(us)
  local ms = math.max(1, math.ceil(us / 1000))
  if virtual then ms = math.max(ms, """
    + str(VIRTUAL_TTL * 1000)
    + """) end
  return int(ms)
end
"""
)


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


def _check_int(name: str, value: object, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    return int(value)


def _check_seconds(name: str, value: object) -> int:
    """A positive number of seconds, returned in whole microseconds (at least 1)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number of seconds, not {type(value).__name__}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be > 0 seconds, got {value}")
    us = round(value * _US)
    if us < 1:
        raise ValueError(f"{name} must be at least 1 microsecond, got {value}")
    if us > _MAX_US:
        raise ValueError(
            f"{name} must be at most 2**61 microseconds (about 73,000 years), got {value}"
        )
    return us


def _now_arg(now: object) -> str:
    """ARGV for the clock: '' (server TIME) or whole microseconds."""
    if now is None:
        return ""
    if isinstance(now, bool) or not isinstance(now, numbers.Real):
        raise TypeError(f"now must be seconds as a number or None, not {type(now).__name__}")
    if not math.isfinite(now) or now < 0:
        raise ValueError(f"now must be finite and >= 0 seconds, got {now}")
    return str(round(now * _US))


class Limiter(ABC):
    """The interface every limiter shares: ``hit``, ``peek``, ``is_allowed``, ``replay``.

    A limiter holds a client, its settings and its registered script; it keeps no state of
    its own, so one instance may be shared by threads.
    """

    KIND: ClassVar[tuple[str, ...]]
    SCRIPT: ClassVar[str]

    def __init__(self, r: Any, limit: int, window: float, *, prefix: str = DEFAULT_PREFIX):
        self.limit = _check_int("limit", limit, 1)
        self._window_us = _check_seconds("window", window)
        self.window = float(window)
        self.prefix = check_prefix(prefix)
        self.r = r
        self._script = r.register_script(self.SCRIPT)

    # -- keys -----------------------------------------------------------------------------
    def _key(self, key: str, kind: str) -> str:
        """The one place key names are built: ``<prefix>{<key>}:<kind>``."""
        return f"{self.prefix}{{{key}}}:{kind}"

    def keys(self, key: str) -> list[str]:
        """The Redis keys this limiter uses for ``key`` (for MEMORY USAGE, cleanup, ...)."""
        self._check_key(key)
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

    def replay(
        self, key: str, times: Iterable[float], cost: int = 1, *, batch: int = 1000
    ) -> list[Decision]:
        """``hit(key, cost, now=t)`` for each ``t`` in order, ``batch`` hits per round trip.

        Each hit is still one atomic script; pipelining only saves the waiting, so the
        decisions are exactly those of calling ``hit`` in a loop. For trace experiments.
        """
        keys = self.keys(key)
        batch = _check_int("batch", batch, 1)
        argv = [self._args(cost, t, True) for t in times]
        # redis-py refuses scripts in a cluster pipeline; all keys share one slot, so
        # pipeline on the node that owns it.
        client = self.r
        if hasattr(client, "get_node_from_key"):
            client = client.get_redis_connection(client.get_node_from_key(keys[0]))
        out: list[Decision] = []
        for start in range(0, len(argv), batch):
            pipe = client.pipeline(transaction=False)
            for args in argv[start : start + batch]:
                self._script(keys=keys, args=args, client=pipe)
            out.extend(self._parse(reply) for reply in pipe.execute())
        return out

    # -- helpers --------------------------------------------------------------------------
    @staticmethod
    def _check_key(key: object) -> None:
        if not isinstance(key, str):
            raise TypeError(f"key must be a str, not {type(key).__name__}")
        if not key:
            raise ValueError("key must be a non-empty string")
        if "{" in key or "}" in key:  # it is the hash tag: a brace would end or split it
            raise ValueError(f"key must not contain '{{' or '}}' (it is the hash tag), got {key!r}")

    def _args(self, cost: object, now: object, consume: bool) -> list[str | int]:
        cost = _check_int("cost", cost, 1)
        if cost > self.limit:
            raise ValueError(f"cost must be <= limit ({self.limit}), got {cost}")
        return [_now_arg(now), *self._settings(), cost, 1 if consume else 0]

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

    Cheap (one small hash per key) and easy to explain, but a client can pass ``limit`` at the
    end of one window and ``limit`` again at the start of the next: ``2 x limit`` within one
    window length.
    """

    KIND = ("fw",)
    SCRIPT = (
        """
-- FixedWindow.hit / peek
-- KEYS[1]  hash {w = window number, n = units admitted in it}
-- ARGV[1]  now in microseconds, or '' for the server clock
-- ARGV[2]  limit            ARGV[3]  window (microseconds)
-- ARGV[4]  cost             ARGV[5]  1 = consume, 0 = peek
-- returns {allowed, remaining, retry_after_us, reset_after_us}
"""
        + _CLOCK_LUA
        + """
local now = clock(ARGV[1])
local limit, window = tonumber(ARGV[2]), tonumber(ARGV[3])
local cost, consume = tonumber(ARGV[4]), ARGV[5] == '1'
local win = math.floor(now / window)
local stored = redis.call('HMGET', KEYS[1], 'w', 'n')
local sw, count = tonumber(stored[1]), 0
if sw ~= nil and sw >= win then  -- same window (or a clock behind the newest window seen)
  win = sw
  count = tonumber(stored[2]) or 0
end
local reset = math.max(0, (win + 1) * window - now)
if count + cost > limit then
  return {0, limit - count, math.ceil(reset), math.ceil(reset)}
end
if consume then
  count = count + cost
  redis.call('HSET', KEYS[1], 'w', int(win), 'n', count)
  redis.call('PEXPIRE', KEYS[1], ttl(reset))
end
if count == 0 then reset = 0 end
return {1, limit - count, 0, math.ceil(reset)}
"""
    )

    def _settings(self) -> list[str | int]:
        return [self.limit, self._window_us]


class SlidingLog(Limiter):
    """Exact: admitted when fewer than ``limit`` admitted units lie in ``(now - window, now]``.

    One sorted-set member per admitted unit, scored by its time; members are
    ``<time>:<sequence>`` so two requests in the same microsecond are both kept. A rejected
    request is not recorded: a client retrying in a tight loop gets through as soon as the
    oldest entry leaves the window. The set never holds more than ``limit`` members, so
    memory is O(limit) and each decision O(log limit).
    """

    KIND = ("log", "seq")
    SCRIPT = (
        """
-- SlidingLog.hit / peek
-- KEYS[1]  sorted set of admitted units, score = time (microseconds)
-- KEYS[2]  counter making members unique (same hash tag as KEYS[1])
-- ARGV[1]  now in microseconds, or '' for the server clock
-- ARGV[2]  limit            ARGV[3]  window (microseconds)
-- ARGV[4]  cost             ARGV[5]  1 = consume, 0 = peek
-- returns {allowed, remaining, retry_after_us, reset_after_us}
"""
        + _CLOCK_LUA
        + """
local now = clock(ARGV[1])
local limit, window = tonumber(ARGV[2]), tonumber(ARGV[3])
local cost, consume = tonumber(ARGV[4]), ARGV[5] == '1'
local cutoff = now - window  -- entries scored <= cutoff have left the window
local count
if consume then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', int(cutoff))
  count = redis.call('ZCARD', KEYS[1])
else
  count = redis.call('ZCOUNT', KEYS[1], '(' .. int(cutoff), '+inf')
end
local allowed = count + cost <= limit
if allowed and consume then
  local seq = redis.call('INCRBY', KEYS[2], cost) - cost
  local stamp = int(now)
  local i = 0
  while i < cost do  -- ZADD in chunks: Lua's unpack has a stack limit
    local args = {}
    for j = i + 1, math.min(cost, i + 1000) do
      args[#args + 1] = stamp
      args[#args + 1] = stamp .. ':' .. (seq + j)
    end
    redis.call('ZADD', KEYS[1], unpack(args))
    i = i + 1000
  end
  count = count + cost
end
local newest = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
local reset = 0
if count > 0 and newest[2] then reset = math.max(0, tonumber(newest[2]) + window - now) end
if allowed and consume then
  redis.call('PEXPIRE', KEYS[1], ttl(reset))
  redis.call('PEXPIRE', KEYS[2], ttl(reset))
end
if allowed then return {1, limit - count, 0, math.ceil(reset)} end
-- the (count + cost - limit)-th oldest live entry must leave before cost units fit
local need = count + cost - limit
local oldest = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. int(cutoff), '+inf',
                          'WITHSCORES', 'LIMIT', need - 1, 1)
local retry = math.max(0, tonumber(oldest[2]) + window - now)
return {0, limit - count, math.ceil(retry), math.ceil(reset)}
"""
    )

    def _settings(self) -> list[str | int]:
        return [self.limit, self._window_us]


class SlidingWindowCounter(Limiter):
    """Cloudflare's approximation: admitted when ``estimate + cost <= limit``.

    ``estimate = prev * (window - elapsed) / window + curr``: this window's count plus the
    previous window's, weighted by how much of it still overlaps the last ``window`` seconds.

    Two counts per key (this window and the previous one, aligned like ``FixedWindow``), so
    O(1) memory. It assumes the previous window's requests were spread evenly; bursty traffic
    makes it admit a little more or less than the exact sliding log.
    """

    KIND = ("swc",)
    SCRIPT = (
        """
-- SlidingWindowCounter.hit / peek
-- KEYS[1]  hash {w = current window number, cur = its count, prev = previous window's count}
-- ARGV[1]  now in microseconds, or '' for the server clock
-- ARGV[2]  limit            ARGV[3]  window (microseconds)
-- ARGV[4]  cost             ARGV[5]  1 = consume, 0 = peek
-- returns {allowed, remaining, retry_after_us, reset_after_us}
"""
        + _CLOCK_LUA
        + """
local now = clock(ARGV[1])
local limit, window = tonumber(ARGV[2]), tonumber(ARGV[3])
local cost, consume = tonumber(ARGV[4]), ARGV[5] == '1'
local win = math.floor(now / window)
local elapsed = now - win * window
local h = redis.call('HMGET', KEYS[1], 'w', 'cur', 'prev')
local sw, cur, prev = tonumber(h[1]), tonumber(h[2]) or 0, tonumber(h[3]) or 0
if sw == nil or sw < win - 1 then
  cur, prev = 0, 0
elseif sw == win - 1 then
  prev, cur = cur, 0
elseif sw > win then  -- a clock behind the newest window seen: count in that window
  win, elapsed = sw, 0
end
local weight = (window - elapsed) / window
local estimate = prev * weight + cur
local allowed = estimate + cost <= limit + 1e-9
if allowed and consume then
  cur = cur + cost
  estimate = estimate + cost
  redis.call('HSET', KEYS[1], 'w', int(win), 'cur', cur, 'prev', prev)
  redis.call('PEXPIRE', KEYS[1], ttl(2 * window - elapsed))
end
local reset = 0
if cur > 0 then reset = 2 * window - elapsed elseif prev > 0 then reset = window - elapsed end
local remaining = math.floor(limit - estimate + 1e-9)
if allowed then return {1, remaining, 0, math.ceil(reset)} end
local retry
if cur + cost <= limit then  -- wait for the previous window's weight to fade enough
  retry = window * (1 - (limit - cur - cost) / prev) - elapsed
else                         -- wait for the next window, where this one's count fades
  local e = 0
  if cur > limit - cost then e = window * (1 - (limit - cost) / cur) end
  retry = window - elapsed + e
end
return {0, remaining, math.ceil(math.max(0, retry)), math.ceil(reset)}
"""
    )

    def _settings(self) -> list[str | int]:
        return [self.limit, self._window_us]


class TokenBucket(Limiter):
    """A bucket of ``burst`` tokens refilled at ``rate`` per second, as GCRA.

    GCRA stores one number per key, the theoretical arrival time (TAT): when the bucket
    would be full again. A request of ``cost`` is admitted when
    ``max(TAT, now) + cost / rate - burst / rate <= now``. Over any span of ``t`` seconds it
    admits at most ``burst + rate * t`` units. ``limit`` is ``burst`` and ``window`` is the
    time to refill an empty bucket (``burst / rate``); ``TokenBucket.per(r, limit, window)``
    builds the bucket matching "limit per window".
    """

    KIND = ("tb",)
    SCRIPT = (
        """
-- TokenBucket.hit / peek (GCRA)
-- KEYS[1]  theoretical arrival time (microseconds, a float as a string)
-- ARGV[1]  now in microseconds, or '' for the server clock
-- ARGV[2]  burst (tokens)   ARGV[3]  emission interval (microseconds per token, float)
-- ARGV[4]  cost             ARGV[5]  1 = consume, 0 = peek
-- returns {allowed, remaining, retry_after_us, reset_after_us}
"""
        + _CLOCK_LUA
        + """
local now = clock(ARGV[1])
local burst, interval = tonumber(ARGV[2]), tonumber(ARGV[3])
local cost, consume = tonumber(ARGV[4]), ARGV[5] == '1'
local tat = tonumber(redis.call('GET', KEYS[1]) or '')
local ahead = 0  -- how far the TAT is ahead of now, kept relative for precision
if tat and tat > now then ahead = tat - now end
local capacity = burst * interval
local after = ahead + cost * interval
if after <= capacity + 1e-3 then
  if consume then
    redis.call('SET', KEYS[1], string.format('%.17g', now + after), 'PX', ttl(after))
    ahead = after
  end
  return {1, math.floor((capacity - ahead) / interval + 1e-9), 0, math.ceil(ahead)}
end
local remaining = math.floor((capacity - ahead) / interval + 1e-9)
return {0, remaining, math.ceil(after - capacity), math.ceil(ahead)}
"""
    )

    def __init__(self, r: Any, rate: float, burst: int, *, prefix: str = DEFAULT_PREFIX):
        if isinstance(rate, bool) or not isinstance(rate, numbers.Real):
            raise TypeError(
                f"rate must be a number of tokens per second, not {type(rate).__name__}"
            )
        if not math.isfinite(rate) or rate <= 0:
            raise ValueError(f"rate must be > 0 tokens per second, got {rate}")
        burst = _check_int("burst", burst, 1)
        if burst / rate * _US > _MAX_US:  # the refill time burst / rate is the key's TTL
            slowest = burst * _US / _MAX_US
            raise ValueError(
                f"rate must be >= {slowest:.3g} tokens per second for burst {burst} (a refill "
                f"time burst / rate over 2**61 µs overflows the key's expiry), got {rate}"
            )
        self.rate = float(rate)
        self.burst = burst
        self._interval_us = _US / self.rate
        super().__init__(r, burst, burst / self.rate, prefix=prefix)

    @classmethod
    def per(cls, r: Any, limit: int, window: float, *, prefix: str = DEFAULT_PREFIX) -> TokenBucket:
        """The bucket for "``limit`` per ``window`` seconds": burst ``limit``, rate ``limit/window``."""
        limit = _check_int("limit", limit, 1)
        _check_seconds("window", window)
        return cls(r, limit / window, limit, prefix=prefix)

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
    algorithm: str, r: Any, limit: int, window: float, *, prefix: str = DEFAULT_PREFIX
) -> Limiter:
    """Any of ``ALGORITHMS`` for "``limit`` per ``window`` seconds" (a bucket via ``per``)."""
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {sorted(ALGORITHMS)}, got {algorithm!r}")
    if algorithm == "token bucket":
        return TokenBucket.per(r, limit, window, prefix=prefix)
    return ALGORITHMS[algorithm](r, limit, window, prefix=prefix)
