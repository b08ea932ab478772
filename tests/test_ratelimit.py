"""labkit.ratelimit: four limiters, one interface, exact where they promise to be."""

from __future__ import annotations

import itertools
import re
import threading
import time
from collections.abc import Callable

import numpy as np
import pytest
import redis
from extremes import BOOLS, NON_FINITE, NOT_NUMBERS, bad_counts, bad_epochs, bad_positive, refused
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.crc import key_slot

from labkit import scripts
from labkit.checks import MAX_EXACT
from labkit.experiments.ratelimit import replay
from labkit.keys import Namespace
from labkit.ratelimit import (
    ALGORITHMS,
    MAX_NOW,
    MAX_WINDOW_US,
    VIRTUAL_TTL,
    Decision,
    FixedWindow,
    Limiter,
    SlidingLog,
    SlidingWindowCounter,
    TokenBucket,
    make,
)

FAST = settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
_example = itertools.count()


def fresh_key() -> str:
    """A key no earlier hypothesis example used (the namespace is cleaned once per test)."""
    return f"client-{next(_example)}"


Factory = Callable[[redis.Redis, int, float, str], Limiter]


# -- bad input ----------------------------------------------------------------------------
BAD_SETTINGS = [
    (0, 1.0, "limit must be between 1 and"),
    (-3, 1.0, "limit must be between 1 and"),
    (5, 0, "window must be > 0"),
    (5, -1.0, "window must be > 0"),
    (5, float("nan"), "window must be a number of seconds, got nan"),
]


@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
def test_bad_settings_raise_value_error_naming_the_argument(
    r: redis.Redis, ns: Namespace, algorithm: str
) -> None:
    for limit, window, message in BAD_SETTINGS:
        with pytest.raises(ValueError, match=message):
            make(algorithm, r, limit, window, prefix=ns.prefix)


@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
def test_bad_requests_raise_before_reaching_redis(
    r: redis.Redis, ns: Namespace, algorithm: str
) -> None:
    limiter = make(algorithm, r, 5, 1.0, prefix=ns.prefix)
    with pytest.raises(ValueError, match=r"cost must be between 1 and 5, got 6"):
        limiter.hit("u", cost=6)
    with pytest.raises(ValueError, match="cost must be between 1 and 5, got 0"):
        limiter.hit("u", cost=0)
    with pytest.raises(ValueError, match="key must be a non-empty string"):
        limiter.hit("")
    with pytest.raises(TypeError, match="key must be a str"):
        limiter.hit(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="cost must be an int"):
        limiter.hit("u", cost=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"now must be seconds since the epoch in \[0, "):
        limiter.hit("u", now=-1.0)
    with pytest.raises(ValueError, match="cost must be between 1 and 5"):
        replay(limiter, "u", [0.0, 1.0], cost=9)
    assert ns.keys() == []


@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
def test_keys_with_braces_are_refused_before_reaching_redis(
    r: redis.Redis, ns: Namespace, algorithm: str
) -> None:
    """Regression: '}evil' gave an empty hash tag, so SlidingLog's two keys left one slot."""
    limiter = make(algorithm, r, 5, 1.0, prefix=ns.prefix)
    calls = (limiter.hit, limiter.peek, limiter.keys, lambda k: replay(limiter, k, [1.0]))
    for key in ("}evil", "}", "{x}", "a{b", "user:{42}"):
        for call in calls:
            with pytest.raises(ValueError, match="key must not contain"):
                call(key)
    assert ns.keys() == []


def test_limit_must_be_an_int(r: redis.Redis, ns: Namespace) -> None:
    with pytest.raises(TypeError, match="limit must be an int"):
        SlidingLog(r, 2.5, 1.0, prefix=ns.prefix)  # type: ignore[arg-type]


def test_token_bucket_rejects_bad_rate_and_burst(r: redis.Redis, ns: Namespace) -> None:
    with pytest.raises(ValueError, match=r"rate must be in \(0, "):
        TokenBucket(r, 0, 5, prefix=ns.prefix)
    with pytest.raises(ValueError, match="burst must be between 1 and"):
        TokenBucket(r, 1.0, 0, prefix=ns.prefix)


def test_token_bucket_refuses_a_rate_too_small_for_its_expiry(
    r: redis.Redis, ns: Namespace
) -> None:
    """Regression: at 1e-14 tokens/s the PX expiry overflowed and Redis raised mid-script."""
    for rate, burst in [(1e-14, 1), (5e-324, 1), (1e-9, 10**9)]:
        with pytest.raises(ValueError, match="rate must be >= "):
            TokenBucket(r, rate, burst, prefix=ns.prefix)
    assert ns.keys() == []
    slow = TokenBucket(r, 1e-9, 1, prefix=ns.prefix)  # one token every ~32 years still works
    assert slow.hit("u", now=5.0).allowed
    assert not slow.hit("u", now=6.0).allowed
    assert r.pttl(slow.keys("u")[0]) > 10**12 - 60_000  # 1e9 s, in ms


@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
def test_window_too_long_for_an_expiry_is_refused(
    r: redis.Redis, ns: Namespace, algorithm: str
) -> None:
    with pytest.raises(ValueError, match="window must be at most"):
        make(algorithm, r, 5, 1e12, prefix=ns.prefix)  # ~31,700 years: past 2**52 µs
    limiter = make(algorithm, r, 5, 1e9, prefix=ns.prefix)  # ~31.7 years still works
    assert limiter.hit("u").allowed
    assert ns.keys()


def test_prefix_must_not_carry_a_hash_tag(r: redis.Redis, ns: Namespace) -> None:
    with pytest.raises(ValueError, match="prefix must not contain"):
        FixedWindow(r, 5, 1.0, prefix=ns.prefix + "{x}:")


def test_unknown_algorithm_is_refused(r: redis.Redis, ns: Namespace) -> None:
    with pytest.raises(ValueError, match="algorithm must be one of"):
        make("leaky", r, 5, 1.0, prefix=ns.prefix)


# -- bad input, every numeric argument, extremes included (hypothesis) ---------------------
WINDOW_MOST = MAX_WINDOW_US / 1e6  # seconds
algorithms = st.sampled_from(sorted(ALGORITHMS))



@FAST
@given(algorithm=algorithms, limit=bad_counts(MAX_EXACT))
def test_any_bad_limit_is_refused_naming_it(
    r: redis.Redis, ns: Namespace, algorithm: str, limit: object
) -> None:
    with refused("limit"):
        make(algorithm, r, limit, 1.0, prefix=ns.prefix)  # type: ignore[arg-type]
    if algorithm == "token bucket":  # TokenBucket(r, rate, burst): its limit is the burst
        with refused("burst"):
            TokenBucket(r, 1.0, limit, prefix=ns.prefix)  # type: ignore[arg-type]
    else:
        with refused("limit"):
            ALGORITHMS[algorithm](r, limit, 1.0, prefix=ns.prefix)  # type: ignore[arg-type]
    assert ns.keys() == []


@FAST
@given(limit=bad_counts(SlidingLog.MAX_LIMIT))
def test_a_sliding_log_longer_than_its_max_limit_is_refused(
    r: redis.Redis, ns: Namespace, limit: object
) -> None:
    with refused("limit"):
        SlidingLog(r, limit, 1.0, prefix=ns.prefix)  # type: ignore[arg-type]


@FAST
@given(algorithm=algorithms, window=bad_positive(WINDOW_MOST))
def test_any_bad_window_is_refused_naming_it(
    r: redis.Redis, ns: Namespace, algorithm: str, window: object
) -> None:
    with refused("window"):
        make(algorithm, r, 5, window, prefix=ns.prefix)  # type: ignore[arg-type]
    assert ns.keys() == []


# anything but a finite rate above 0 slow enough that burst 5 / rate fits the longest window
bad_rates = st.one_of(
    st.sampled_from([0, 0.0, -1, -1e-300, 10**400, -(10**400)]),
    st.floats(max_value=-1e-300),
    st.floats(min_value=5e-324, max_value=5e6 / MAX_WINDOW_US * 0.999),
    NON_FINITE,
    BOOLS,
    NOT_NUMBERS,
    st.none(),
)


@FAST
@given(rate=bad_rates, burst=bad_counts(TokenBucket.MAX_LIMIT))
def test_any_bad_rate_or_burst_is_refused_naming_it(
    r: redis.Redis, ns: Namespace, rate: object, burst: object
) -> None:
    with refused("rate"):
        TokenBucket(r, rate, 5, prefix=ns.prefix)  # type: ignore[arg-type]
    with refused("burst"):
        TokenBucket(r, 1.0, burst, prefix=ns.prefix)  # type: ignore[arg-type]


@FAST
@given(algorithm=algorithms, cost=bad_counts(5), method=st.sampled_from(["hit", "peek"]))
def test_any_bad_cost_is_refused_before_anything_is_written(
    r: redis.Redis, ns: Namespace, algorithm: str, cost: object, method: str
) -> None:
    limiter = make(algorithm, r, 5, 1.0, prefix=ns.prefix)
    with refused("cost"):
        getattr(limiter, method)("u", cost=cost, now=1.0)
    with refused("cost"):
        replay(limiter, "u", [1.0, 2.0], cost=cost)  # type: ignore[arg-type]
    assert ns.keys() == []


@FAST
@given(algorithm=algorithms, now=bad_epochs(), method=st.sampled_from(["hit", "peek"]))
def test_any_bad_now_is_refused_before_anything_is_written(
    r: redis.Redis, ns: Namespace, algorithm: str, now: object, method: str
) -> None:
    """Regression: now=time.time_ns() admitted every request (8 of 8 at limit 5)."""
    limiter = make(algorithm, r, 5, 1.0, prefix=ns.prefix)
    with refused("now"):
        getattr(limiter, method)("u", now=now)
    with refused("now"):  # one bad time in a trace: nothing of the trace is sent
        replay(limiter, "u", [1.0, now, 2.0])  # type: ignore[list-item]
    assert ns.keys() == []


@FAST
@given(batch=bad_counts(2**63 - 1))
def test_any_bad_batch_is_refused(r: redis.Redis, ns: Namespace, batch: object) -> None:
    limiter = SlidingLog(r, 5, 1.0, prefix=ns.prefix)
    with refused("batch"):
        replay(limiter, "u", [1.0], batch=batch)  # type: ignore[arg-type]
    assert ns.keys() == []


@FAST
@given(algorithm=algorithms, data=st.data())
def test_first_hit_leaves_limit_minus_cost_up_to_the_largest_limit(
    r: redis.Redis, ns: Namespace, algorithm: str, data: st.DataObject
) -> None:
    """Regression: a limit near 2**63 answered remaining=0 on the first hit."""
    cls = ALGORITHMS[algorithm]
    most = cls.MAX_LIMIT
    limit = data.draw(st.integers(1, most) | st.integers(most - 16, most), label="limit")
    # a sliding-log hit adds one member per unit: keep the drawn costs small there
    cost = data.draw(st.integers(1, min(limit, 1000) if cls is SlidingLog else limit), "cost")
    if cls is TokenBucket:  # the slowest rate whose refill time still fits, or 1 per second
        limiter: Limiter = TokenBucket(
            r, max(1.0, 2 * limit * 1e6 / MAX_WINDOW_US), limit, prefix=ns.prefix
        )
    else:
        limiter = cls(r, limit, 60.0, prefix=ns.prefix)
    key = fresh_key()
    assert limiter.peek(key, cost=cost, now=1000.0).remaining == limit
    decision = limiter.hit(key, cost=cost, now=1000.0)
    assert decision.allowed and decision.remaining == limit - cost


@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
@pytest.mark.parametrize("window", [1e-6, 1.0, MAX_WINDOW_US / 1e6])
@pytest.mark.parametrize("now", [0.0, 1_764_800_000.123457, MAX_NOW - 1e-6, MAX_NOW])
def test_every_limiter_is_exact_at_the_extremes_of_now_and_window(
    r: redis.Redis, ns: Namespace, algorithm: str, window: float, now: float
) -> None:
    """Regression: at now = 2**34 s (past 2**53 µs, doubles 2 µs apart) a 1 µs sliding log,
    sliding-window counter and token bucket admitted every request; a bucket refilling 5
    tokens a µs did so even at today's time (its TAT, one double, was 0.25 µs coarse)."""
    limiter = make(algorithm, r, 5, window, prefix=ns.prefix)
    decisions = [limiter.hit("u", now=now) for _ in range(6)]
    assert [d.allowed for d in decisions] == [True] * 5 + [False]
    assert [d.remaining for d in decisions] == [4, 3, 2, 1, 0, 0]
    assert 0 < decisions[-1].retry_after <= 2 * window


def test_now_past_the_exact_range_is_refused(r: redis.Redis, ns: Namespace) -> None:
    limiter = SlidingLog(r, 5, 1.0, prefix=ns.prefix)
    for now in (MAX_NOW + 1e-3, 2.0**34, time.time() * 1000):
        with pytest.raises(ValueError, match=r"now must be seconds since the epoch in \[0, "):
            limiter.hit("u", now=now)
    assert ns.keys() == []


def test_lua_virtual_ttl_matches_the_python_constant() -> None:
    prelude = scripts.load("prelude/ratelimit_clock")
    [ms] = re.findall(r"local VIRTUAL_TTL_MS = (\d+)", prelude)
    assert int(ms) == VIRTUAL_TTL * 1000


def test_every_limiter_script_uses_the_shared_clock_prelude() -> None:
    clock = scripts.load("prelude/clock")
    for cls in ALGORITHMS.values():
        assert cls.SCRIPT.startswith(clock)
        assert cls.SCRIPT.count("local function now_us()") == 1


# -- the shared interface -----------------------------------------------------------------
@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
def test_admits_limit_then_denies_with_retry_after(
    r: redis.Redis, ns: Namespace, algorithm: str
) -> None:
    limiter = make(algorithm, r, 3, 10.0, prefix=ns.prefix)
    decisions = [limiter.hit("u", now=100.0 + i * 0.001) for i in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining for d in decisions] == [2, 1, 0, 0]
    assert decisions[0].retry_after == 0
    assert decisions[3].retry_after > 0
    assert all(d.reset_after > 0 for d in decisions)


@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
def test_peek_does_not_consume(r: redis.Redis, ns: Namespace, algorithm: str) -> None:
    limiter = make(algorithm, r, 2, 10.0, prefix=ns.prefix)
    assert limiter.peek("u", now=5.0) == Decision(True, 2, 0.0, 0.0)
    assert ns.keys() == []
    limiter.hit("u", now=5.0)
    for _ in range(5):
        assert limiter.peek("u", now=5.0).remaining == 1
    assert limiter.peek("u", cost=2, now=5.0).allowed is False
    assert limiter.hit("u", now=5.0).allowed is True


@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
def test_is_allowed_returns_allowed_and_remaining(
    r: redis.Redis, ns: Namespace, algorithm: str
) -> None:
    limiter = make(algorithm, r, 2, 3600.0, prefix=ns.prefix)
    assert limiter.is_allowed("u") == (True, 1)
    assert limiter.is_allowed("u") == (True, 0)
    assert limiter.is_allowed("u") == (False, 0)


@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
def test_server_clock_is_the_default_and_keys_expire(
    r: redis.Redis, ns: Namespace, algorithm: str
) -> None:
    limiter = make(algorithm, r, 5, 30.0, prefix=ns.prefix)
    assert limiter.hit("u").allowed
    for key in ns.keys():
        assert 0 < r.pttl(key) <= 60_000


@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
def test_virtual_time_state_outlives_real_time(
    r: redis.Redis, ns: Namespace, algorithm: str
) -> None:
    """Regression: with now= the keys expired in real time, so a slow replay over-admitted.

    Real time passes (longer than the window) while virtual time stands still: the limiter
    must still count what it admitted, and forget it only when virtual time moves on.
    """
    limiter = make(algorithm, r, 5, 0.2, prefix=ns.prefix)
    assert [limiter.hit("u", now=100.0).allowed for _ in range(6)] == [True] * 5 + [False]
    time.sleep(0.4)  # two windows of real time, zero of virtual time
    assert limiter.hit("u", now=100.0).allowed is False
    assert limiter.peek("u", now=100.0).remaining == 0
    assert [d.allowed for d in replay(limiter, "u", [100.0, 100.0])] == [False, False]
    assert limiter.hit("u", now=101.0).allowed is True  # virtual time moved on: forgotten
    ttls = [r.pttl(key) for key in ns.keys()]
    assert ttls and all(VIRTUAL_TTL * 1000 - 60_000 < ttl <= VIRTUAL_TTL * 1000 for ttl in ttls)


@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
def test_fractional_window_gets_a_millisecond_ttl(
    r: redis.Redis, ns: Namespace, algorithm: str
) -> None:
    limiter = make(algorithm, r, 5, 0.5, prefix=ns.prefix)
    assert limiter.hit("u").allowed
    ttls = [r.pttl(key) for key in ns.keys()]
    assert ttls and all(0 < ttl <= 1000 for ttl in ttls)


@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
def test_cost_spends_several_units(r: redis.Redis, ns: Namespace, algorithm: str) -> None:
    limiter = make(algorithm, r, 10, 60.0, prefix=ns.prefix)
    assert limiter.hit("u", cost=7, now=1.0).remaining == 3
    assert limiter.hit("u", cost=4, now=1.0).allowed is False
    assert limiter.hit("u", cost=3, now=1.0).remaining == 0


@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
def test_keys_of_one_client_share_one_hash_slot(
    r: redis.Redis, ns: Namespace, algorithm: str
) -> None:
    limiter = make(algorithm, r, 5, 1.0, prefix=ns.prefix)
    keys = limiter.keys("user:42")
    assert all(key.startswith(ns.prefix + "{user:42}") for key in keys)
    assert len({key_slot(key.encode()) for key in keys}) == 1


@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
def test_replay_matches_hit_in_a_loop(r: redis.Redis, ns: Namespace, algorithm: str) -> None:
    limiter = make(algorithm, r, 7, 1.0, prefix=ns.prefix)
    times = np.sort(np.random.default_rng(6).uniform(0, 5, 120))
    looped = [limiter.hit("loop", now=float(t)) for t in times]
    assert replay(limiter, "batched", times, batch=16) == looped


def test_decision_headers_carry_retry_after_only_on_denial() -> None:
    allowed = Decision(True, 4, 0.0, 12.2).headers(5)
    assert allowed == {
        "X-RateLimit-Limit": "5",
        "X-RateLimit-Remaining": "4",
        "X-RateLimit-Reset": "13",
    }
    denied = Decision(False, 0, 0.2, 0.9).headers(5)
    assert denied["Retry-After"] == "1"


# -- per algorithm ------------------------------------------------------------------------
def test_fixed_windows_are_aligned_to_multiples_of_window(r: redis.Redis, ns: Namespace) -> None:
    limiter = FixedWindow(r, 1, 10.0, prefix=ns.prefix)
    assert limiter.hit("u", now=1009.0).allowed
    denied = limiter.hit("u", now=1009.99)
    assert not denied.allowed
    assert denied.retry_after == pytest.approx(0.01)
    assert limiter.hit("u", now=1010.0).allowed  # 1010 is a multiple of 10: a new window


def test_fixed_window_passes_twice_the_limit_across_a_boundary(
    r: redis.Redis, ns: Namespace
) -> None:
    limiter = FixedWindow(r, 5, 1.0, prefix=ns.prefix)
    times = [0.95 + i * 0.01 for i in range(10)]  # 0.95 .. 1.04: a span of 0.09 s
    assert sum(d.allowed for d in replay(limiter, "u", times)) == 10


def test_sliding_log_does_not_record_rejected_requests(r: redis.Redis, ns: Namespace) -> None:
    limiter = SlidingLog(r, 5, 1.0, prefix=ns.prefix)
    times = [i * 0.1 for i in range(40)]  # a client retrying every 100 ms for 4 s
    admitted = [t for t, d in zip(times, replay(limiter, "u", times), strict=True) if d.allowed]
    assert len(admitted) == 20  # 5 per second, every second
    assert r.zcard(limiter.keys("u")[0]) <= 5


def test_sliding_log_members_are_unique_within_one_microsecond(
    r: redis.Redis, ns: Namespace
) -> None:
    limiter = SlidingLog(r, 50, 1.0, prefix=ns.prefix)
    for _ in range(30):
        limiter.hit("u", now=7.000001)
    limiter.hit("u", cost=20, now=7.000001)
    assert r.zcard(limiter.keys("u")[0]) == 50
    assert not limiter.hit("u", now=7.000001).allowed


def test_sliding_log_memory_is_bounded_by_limit(r: redis.Redis, ns: Namespace) -> None:
    limiter = SlidingLog(r, 10, 60.0, prefix=ns.prefix)
    decisions = replay(limiter, "u", [i * 0.001 for i in range(2000)])
    assert sum(d.allowed for d in decisions) == 10
    assert r.zcard(limiter.keys("u")[0]) == 10


def test_sliding_log_work_per_decision_is_bounded_after_a_full_window_expires(
    r: redis.Redis, ns: Namespace
) -> None:
    """Regression: the first hit after a full window expired removed every entry in one call
    (a 100,000-entry log took ~75 ms of server time, blocking every other client)."""
    limit = 5_000
    limiter = SlidingLog(r, limit, 10.0, prefix=ns.prefix)
    assert limiter.hit("u", cost=limit, now=100.0).allowed
    log = limiter.keys("u")[0]
    assert r.zcard(log) == limit
    first = limiter.hit("u", now=200.0)  # the whole window has expired
    assert first.allowed and first.remaining == limit - 1
    assert r.zcard(log) == limit + 1 - (1 + SlidingLog.TRIM_BATCH)  # removed cost + batch
    for _ in range(limit // SlidingLog.TRIM_BATCH + 1):
        limiter.hit("u", now=200.0)
    assert r.zcount(log, "(190000000", "+inf") == r.zcard(log)  # the backlog is gone


def _sliding_log_model(
    events: list[tuple[int, int]], limit: int, window_us: int
) -> list[tuple[bool, int, int, int]]:
    """The exact sliding log, in integer µs: (allowed, remaining, retry_us, reset_us) per
    (time, cost), times in order. Denied: retry when the (limit - cost + 1)-th newest live
    unit leaves; reset when the newest unit does."""
    units: list[int] = []
    out = []
    for t, cost in events:
        live = [u for u in units if u > t - window_us]
        if len(live) + cost <= limit:
            units += [t] * cost
            out.append((True, limit - len(live) - cost, 0, window_us))
        else:
            blocker = live[-(limit - cost + 1)]
            out.append((False, limit - len(live), blocker + window_us - t,
                        max(0, units[-1] + window_us - t)))
    return out


class _NoSpareTrim(SlidingLog):
    TRIM_BATCH = 0  # each hit removes only as many expired entries as its cost


@FAST
@given(times=st.lists(st.integers(0, 10_000_000), min_size=1, max_size=40).map(sorted),
       limit=st.integers(1, 8), window_ms=st.integers(50, 4000))
def test_sliding_log_stays_exact_when_expired_entries_linger(
    r: redis.Redis, ns: Namespace, times: list[int], limit: int, window_ms: int
) -> None:
    limiter = _NoSpareTrim(r, limit, window_ms / 1000, prefix=ns.prefix)
    decisions = replay(limiter, fresh_key(), [t / 1e6 for t in times])
    model = _sliding_log_model([(t, 1) for t in times], limit, window_ms * 1000)
    for decision, (allowed, remaining, _, _) in zip(decisions, model, strict=True):
        assert decision.allowed == allowed
        assert decision.remaining == max(0, remaining)


@FAST
@given(times=st.lists(st.integers(0, 10_000_000), min_size=1, max_size=40).map(sorted),
       costs=st.lists(st.integers(1, 4), min_size=40, max_size=40),
       limit=st.integers(1, 8), window_ms=st.integers(50, 4000), batch=st.integers(0, 2))
def test_sliding_log_matches_the_exact_model_in_every_field(
    r: redis.Redis, ns: Namespace, times: list[int], costs: list[int], limit: int,
    window_ms: int, batch: int,
) -> None:
    """Every field of every decision, costs above 1 included: the full-window shortcut (the
    newest member names the limit-th newest unit) answers as the whole log would."""

    class Limiter(SlidingLog):
        TRIM_BATCH = batch

    limiter = Limiter(r, limit, window_ms / 1000, prefix=ns.prefix)
    key = fresh_key()
    events = [(t, min(c, limit)) for t, c in zip(times, costs, strict=False)]
    got = [limiter.hit(key, cost=c, now=t / 1e6) for t, c in events]
    want = _sliding_log_model(events, limit, window_ms * 1000)
    for decision, (allowed, remaining, retry_us, reset_us) in zip(got, want, strict=True):
        assert decision == Decision(allowed, remaining, retry_us / 1e6, reset_us / 1e6)


@FAST
@given(times=st.lists(st.integers(0, 10_000_000), min_size=1, max_size=40),
       costs=st.lists(st.integers(1, 3), min_size=40, max_size=40),
       limit=st.integers(1, 6), window_ms=st.integers(50, 4000))
def test_sliding_log_with_a_clock_that_runs_back_never_admits_more_than_limit(
    r: redis.Redis, ns: Namespace, times: list[int], costs: list[int], limit: int,
    window_ms: int,
) -> None:
    """Times in any order: a unit is recorded at the newest time seen (max(now, newest)),
    and no window of the recorded times holds more than limit units."""
    limiter = SlidingLog(r, limit, window_ms / 1000, prefix=ns.prefix)
    key = fresh_key()
    window_us = window_ms * 1000
    stamps: list[int] = []
    for t, cost in zip(times, costs, strict=False):
        cost = min(cost, limit)
        decision = limiter.hit(key, cost=cost, now=t / 1e6)
        if decision.allowed:
            stamps += [max([t, *stamps])] * cost
            assert decision.remaining >= 0
        else:
            assert decision.retry_after > 0
    scores = [int(score) for _, score in r.zrange(limiter.keys(key)[0], 0, -1, withscores=True)]
    assert scores == stamps[len(stamps) - len(scores):]  # the log: the newest recorded units
    for end in stamps:
        assert sum(1 for s in stamps if end - window_us < s <= end) <= limit


def test_sliding_log_retry_after_is_when_the_oldest_entry_leaves(
    r: redis.Redis, ns: Namespace
) -> None:
    limiter = SlidingLog(r, 2, 10.0, prefix=ns.prefix)
    limiter.hit("u", now=1.0)
    limiter.hit("u", now=4.0)
    denied = limiter.hit("u", now=5.0)
    assert denied.retry_after == pytest.approx(6.0)  # the entry at 1.0 leaves at 11.0
    assert limiter.hit("u", cost=2, now=5.0).retry_after == pytest.approx(9.0)
    assert limiter.hit("u", now=11.0).allowed


def test_sliding_window_counter_weights_the_previous_window(r: redis.Redis, ns: Namespace) -> None:
    limiter = SlidingWindowCounter(r, 10, 1.0, prefix=ns.prefix)
    limiter.hit("u", cost=10, now=0.5)
    # at 1.25 the previous window counts 10 * 0.75 = 7.5, so 2 more fit
    assert limiter.peek("u", now=1.25).remaining == 2
    assert [limiter.hit("u", now=1.25).allowed for _ in range(3)] == [True, True, False]
    assert limiter.peek("u", now=2.0).remaining == 8  # previous window now holds the 2


def test_token_bucket_refills_at_its_rate(r: redis.Redis, ns: Namespace) -> None:
    bucket = TokenBucket(r, rate=2.0, burst=4, prefix=ns.prefix)
    assert bucket.limit == 4 and bucket.window == 2.0
    assert sum(bucket.hit("u", now=10.0).allowed for _ in range(6)) == 4
    denied = bucket.hit("u", now=10.0)
    assert denied.retry_after == pytest.approx(0.5)
    assert bucket.hit("u", now=10.5).allowed
    assert bucket.peek("u", now=12.5).remaining == 4


def test_token_bucket_per_matches_limit_per_window(r: redis.Redis, ns: Namespace) -> None:
    bucket = TokenBucket.per(r, 30, 60.0, prefix=ns.prefix)
    assert (bucket.rate, bucket.burst, bucket.limit, bucket.window) == (0.5, 30, 30, 60.0)


# -- properties over random request times -------------------------------------------------
times_us = st.lists(st.integers(0, 10_000_000), min_size=1, max_size=40).map(sorted)


@FAST
@given(times=times_us, limit=st.integers(1, 8), window_ms=st.integers(50, 4000))
def test_sliding_log_never_admits_more_than_limit_in_any_window(
    r: redis.Redis, ns: Namespace, times: list[int], limit: int, window_ms: int
) -> None:
    limiter = SlidingLog(r, limit, window_ms / 1000, prefix=ns.prefix)
    decisions = replay(limiter, fresh_key(), [t / 1e6 for t in times])
    window_us = window_ms * 1000
    model = _sliding_log_model([(t, 1) for t in times], limit, window_us)
    assert [d.allowed for d in decisions] == [m[0] for m in model]  # exact: the model agrees
    admitted = [t for t, d in zip(times, decisions, strict=True) if d.allowed]
    for end in admitted:
        assert sum(1 for a in admitted if end - window_us < a <= end) <= limit


@FAST
@given(
    times=times_us,
    burst=st.integers(1, 8),
    rate=st.floats(0.1, 50.0),
    costs=st.lists(st.integers(1, 3), min_size=40, max_size=40),
)
def test_token_bucket_never_exceeds_its_burst(
    r: redis.Redis, ns: Namespace, times: list[int], burst: int, rate: float, costs: list[int]
) -> None:
    bucket = TokenBucket(r, rate, burst, prefix=ns.prefix)
    key = fresh_key()
    admitted: list[tuple[float, int]] = []
    for t, cost in zip(times, costs, strict=False):
        cost = min(cost, burst)
        if bucket.hit(key, cost=cost, now=t / 1e6).allowed:
            admitted.append((t / 1e6, cost))
    for i, (start, _) in enumerate(admitted):
        spent = 0
        for end, cost in admitted[i:]:
            spent += cost
            assert spent <= burst + rate * (end - start) + 1e-6


@FAST
@given(times=times_us, limit=st.integers(1, 8), window_ms=st.integers(50, 4000))
def test_fixed_window_never_exceeds_limit_within_one_aligned_window(
    r: redis.Redis, ns: Namespace, times: list[int], limit: int, window_ms: int
) -> None:
    limiter = FixedWindow(r, limit, window_ms / 1000, prefix=ns.prefix)
    decisions = replay(limiter, fresh_key(), [t / 1e6 for t in times])
    per_window: dict[int, int] = {}
    for t, decision in zip(times, decisions, strict=True):
        w = t // (window_ms * 1000)
        assert decision.allowed == (per_window.get(w, 0) < limit)
        per_window[w] = per_window.get(w, 0) + decision.allowed


# -- concurrency --------------------------------------------------------------------------
def _admitted_by_threads(
    limiter: Limiter, key: str, n_requests: int, n_threads: int, now: float | None
) -> int:
    barrier = threading.Barrier(n_threads)
    counts = [0] * n_threads

    def work(i: int) -> None:
        barrier.wait()
        for _ in range(i, n_requests, n_threads):
            counts[i] += limiter.hit(key, now=now).allowed

    threads = [threading.Thread(target=work, args=(i,)) for i in range(n_threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts)


@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
def test_hundred_threads_at_a_limit_of_five_admit_exactly_five(
    r: redis.Redis, ns: Namespace, algorithm: str
) -> None:
    limiter = make(algorithm, r, 5, 3600.0, prefix=ns.prefix)
    # the log and the bucket have no window edge to straddle: use the server clock there
    now = None if algorithm in ("sliding log", "token bucket") else 1800.0
    assert _admitted_by_threads(limiter, "u", 100, 100, now) == 5


@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
def test_admitted_count_is_the_same_from_one_or_sixteen_threads(
    r: redis.Redis, ns: Namespace, algorithm: str
) -> None:
    limiter = make(algorithm, r, 37, 60.0, prefix=ns.prefix)
    one = _admitted_by_threads(limiter, "one", 200, 1, now=30.0)
    sixteen = _admitted_by_threads(limiter, "sixteen", 200, 16, now=30.0)
    assert one == sixteen == 37


def test_a_sliding_log_shared_by_two_limits_counts_for_each_its_own(
    r: redis.Redis, ns: Namespace
) -> None:
    # The mark a full window leaves on the newest member is for the limit that filled it: a
    # limiter with a larger limit on the same log (a plan upgraded mid-window) still counts.
    small = SlidingLog(r, 3, 60, prefix=ns.prefix_for("shared"))
    large = SlidingLog(r, 5, 60, prefix=ns.prefix_for("shared"))
    assert [small.hit("u", now=100.0).allowed for _ in range(4)] == [True, True, True, False]
    assert [large.hit("u", now=101.0).allowed for _ in range(3)] == [True, True, False]
    assert small.hit("u", now=102.0) == Decision(False, 0, 58.0, 59.0)
