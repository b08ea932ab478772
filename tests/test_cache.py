"""labkit.cache: page cache, cache-aside, negative caching, jitter, single-flight, XFetch."""

from __future__ import annotations

import math
import random
import threading
import time
from typing import Any

import numpy as np
import pytest
import redis
from helpers import is_duration
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.cluster import RedisCluster

from labkit.cache import (
    MAX_TTL_MS,
    CacheAside,
    CacheStats,
    CacheWaitTimeout,
    PageCache,
    cached,
)
from labkit.errors import LabkitError
from labkit.experiments.cache import (
    Stream,
    hammer,
    lru_hits,
    recompute_bursts,
    replay,
    ttl_hit_ratio,
)
from labkit.keys import Namespace
from labkit.measure import counting_client
from labkit.server import address

# ------------------------------------------------------------------------------ PageCache


def test_page_round_trips_json(r: redis.Redis, ns: Namespace) -> None:
    pages = PageCache(r, prefix=ns.prefix_for("page"))
    pages.set_page("/p/1", {"title": "Kettle", "price": 12.5, "tags": ["a", "b"]})
    assert pages.get_page("/p/1") == {"title": "Kettle", "price": 12.5, "tags": ["a", "b"]}
    assert r.get(ns.key("page", "/p/1")) is not None  # key layout: <prefix>:<url>


def test_page_miss_returns_none(r: redis.Redis, ns: Namespace) -> None:
    assert PageCache(r, prefix=ns.prefix_for("page")).get_page("/nothing") is None


@pytest.mark.parametrize("empty", ["", [], {}, 0, 0.0, False])
def test_cached_empty_value_is_a_hit(r: redis.Redis, ns: Namespace, empty: Any) -> None:
    pages = PageCache(r, prefix=ns.prefix_for("page"))
    pages.set_page("/empty", empty)
    got = pages.get_page("/empty")
    assert got is not None
    assert got == empty and type(got) is type(empty)


def test_page_default_ttl_and_override(r: redis.Redis, ns: Namespace) -> None:
    pages = PageCache(r, prefix=ns.prefix_for("page"), ttl=100)
    pages.set_page("/a", "x")
    pages.set_page("/b", "x", ttl=5)
    assert 95_000 < r.pttl(ns.key("page", "/a")) <= 100_000
    assert 0 < r.pttl(ns.key("page", "/b")) <= 5_000


def test_page_expires(r: redis.Redis, ns: Namespace) -> None:
    pages = PageCache(r, prefix=ns.prefix_for("page"))
    pages.set_page("/short", "x", ttl=0.02)
    time.sleep(0.05)
    assert pages.get_page("/short") is None


def test_invalidate_page(r: redis.Redis, ns: Namespace) -> None:
    pages = PageCache(r, prefix=ns.prefix_for("page"))
    pages.set_page("/a", 1)
    assert pages.invalidate_page("/a") is True
    assert pages.get_page("/a") is None
    assert pages.invalidate_page("/a") is False


def test_invalidate_pattern_removes_prefix_and_counts(r: redis.Redis, ns: Namespace) -> None:
    pages = PageCache(r, prefix=ns.prefix_for("page"))
    for i in range(1200):  # more than one SCAN/UNLINK batch
        pages.set_page(f"/shop/{i}", i)
    pages.set_page("/blog/1", "keep")
    assert pages.invalidate_pattern("/shop/", batch=100) == 1200
    assert pages.get_page("/shop/7") is None
    assert pages.get_page("/blog/1") == "keep"


def test_invalidate_pattern_escapes_glob_in_user_input(r: redis.Redis, ns: Namespace) -> None:
    pages = PageCache(r, prefix=ns.prefix_for("page"))
    for url in ("/a", "/b", "*literal", "/q?x=1", "/q[1]"):
        pages.set_page(url, url)
    assert pages.invalidate_pattern("*") == 1  # only the page whose URL starts with "*"
    assert pages.invalidate_pattern("/q?") == 1
    assert pages.get_page("/a") == "/a"
    assert pages.get_page("/q[1]") == "/q[1]"


def test_invalidate_pattern_glob_when_asked_stays_in_prefix(r: redis.Redis, ns: Namespace) -> None:
    pages = PageCache(r, prefix=ns.prefix_for("page"))
    other = PageCache(r, prefix=ns.prefix_for("other"))
    for url in ("/a", "/b", "/c"):
        pages.set_page(url, 1)
    other.set_page("/a", 1)
    r.set(ns.key("unrelated"), 1)
    assert pages.invalidate_pattern("*", glob=True) == 3
    assert other.get_page("/a") == 1
    assert r.get(ns.key("unrelated")) == "1"


def test_page_operations_are_one_round_trip(r: redis.Redis, ns: Namespace) -> None:
    client, counter = counting_client(r)
    try:
        pages = PageCache(client, prefix=ns.prefix_for("page"))
        pages.set_page("/a", [1])
        pages.get_page("/a")
        pages.get_page("/missing")
        pages.invalidate_page("/a")
        assert counter.count == 4
    finally:
        client.close()


@pytest.mark.parametrize("bad", [0, -1, -0.0001, float("nan"), float("inf"), 2**63])
def test_page_rejects_bad_ttl(r: redis.Redis, ns: Namespace, bad: float) -> None:
    with pytest.raises(ValueError, match="ttl must be"):
        PageCache(r, prefix=ns.prefix_for("page"), ttl=bad)
    with pytest.raises(ValueError, match="ttl must be"):
        PageCache(r, prefix=ns.prefix_for("page")).set_page("/a", 1, ttl=bad)
    assert ns.keys() == []


@pytest.mark.parametrize("bad", ["10", None, True])
def test_page_rejects_non_numeric_ttl(r: redis.Redis, ns: Namespace, bad: Any) -> None:
    with pytest.raises(TypeError, match="ttl must be a number"):
        PageCache(r, prefix=ns.prefix_for("page"), ttl=bad)


@pytest.mark.parametrize("bad", [1, b"/a", None, ("/a",)])
def test_page_rejects_non_string_url(r: redis.Redis, ns: Namespace, bad: Any) -> None:
    pages = PageCache(r, prefix=ns.prefix_for("page"))
    with pytest.raises(TypeError, match="url must be a str"):
        pages.get_page(bad)
    with pytest.raises(TypeError, match="url must be a str"):
        pages.set_page(bad, "x")
    with pytest.raises(TypeError, match="url must be a str"):
        pages.invalidate_page(bad)


def test_page_rejects_non_json_content(r: redis.Redis, ns: Namespace) -> None:
    pages = PageCache(r, prefix=ns.prefix_for("page"))
    with pytest.raises(TypeError, match="content is not JSON-serialisable"):
        pages.set_page("/a", {1, 2})
    with pytest.raises(TypeError, match="content is not JSON-serialisable"):
        pages.set_page("/a", object())
    with pytest.raises(ValueError, match="content cannot be stored as JSON"):
        pages.set_page("/a", float("nan"))
    assert ns.keys() == []


def test_page_rejects_none_content(r: redis.Redis, ns: Namespace) -> None:
    with pytest.raises(ValueError, match="content must not be None"):
        PageCache(r, prefix=ns.prefix_for("page")).set_page("/a", None)


def test_invalidate_pattern_rejects_empty_or_bad_pattern(r: redis.Redis, ns: Namespace) -> None:
    pages = PageCache(r, prefix=ns.prefix_for("page"))
    pages.set_page("/a", 1)
    with pytest.raises(ValueError, match="prefix must be a non-empty string"):
        pages.invalidate_pattern("")
    with pytest.raises(TypeError, match="prefix must be a str"):
        pages.invalidate_pattern(None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="batch must be between 1 and 100000"):
        pages.invalidate_pattern("/", batch=0)
    assert pages.get_page("/a") == 1


def test_page_cache_rejects_empty_prefix(r: redis.Redis) -> None:
    with pytest.raises(ValueError, match="prefix must be a non-empty string"):
        PageCache(r, prefix="")


# ------------------------------------------------------------------------------ CacheAside


class Source:
    """A loader that counts its calls (thread-safe) and can be slowed down."""

    def __init__(self, data: dict[str, Any] | None = None, delay: float = 0.0) -> None:
        self.data = data if data is not None else {}
        self.delay = delay
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self, key: str) -> Any:
        with self._lock:
            self.calls += 1
        if self.delay:
            time.sleep(self.delay)
        return self.data.get(key)


def test_get_loads_on_miss_then_hits(r: redis.Redis, ns: Namespace) -> None:
    source = Source({"p1": {"name": "Kettle"}})
    cache = CacheAside(r, source, ttl=60, prefix=ns.prefix_for("ca"))
    assert cache.get("p1") == {"name": "Kettle"}
    assert cache.get("p1") == {"name": "Kettle"}
    assert source.calls == 1
    stats = cache.stats()
    assert (stats.hits, stats.misses, stats.loads) == (1, 1, 1)
    assert stats.hit_ratio == pytest.approx(0.5)


def test_entry_and_lock_share_a_hash_tag(r: redis.Redis, ns: Namespace) -> None:
    cache = CacheAside(r, Source({"k": 1}), ttl=60, prefix=ns.prefix_for("ca"))
    entry, lock, marker = cache._keys("k")
    assert entry == ns.prefix_for("ca") + "{k}"
    assert (lock, marker) == (entry + ":lock", entry + ":invalidated")
    cache.get("k")
    assert r.hget(entry, "v") == "1"


@pytest.mark.parametrize("empty", ["", [], 0, False])
def test_cache_aside_empty_value_is_a_hit(r: redis.Redis, ns: Namespace, empty: Any) -> None:
    source = Source({"k": empty})
    cache = CacheAside(r, source, ttl=60, prefix=ns.prefix_for("ca"))
    assert cache.get("k") == empty
    assert cache.get("k") == empty
    assert source.calls == 1


def test_miss_returns_the_json_round_tripped_value(r: redis.Redis, ns: Namespace) -> None:
    cache = CacheAside(r, lambda key: (1, 2), ttl=60, prefix=ns.prefix_for("ca"))
    assert cache.get("t") == [1, 2]  # same type on a miss as on the hit that follows
    assert cache.get("t") == [1, 2]


def test_hit_is_one_round_trip_and_miss_two(r: redis.Redis, ns: Namespace) -> None:
    client, counter = counting_client(r)
    try:
        cache = CacheAside(client, Source({"k": 1}), ttl=60, prefix=ns.prefix_for("ca"))
        cache.get("k")  # warm the script cache; a miss: fetch + store
        cache.invalidate("k")
        counter.reset()
        cache.get("k")
        assert counter.count == 2
        counter.reset()
        assert cache.invalidate("k") is True
        assert counter.count == 1  # dropping the entry and marking the drop: one script
        cache.get("k")
        counter.reset()
        cache.get("k")
        assert counter.count == 1
    finally:
        client.close()


def test_entries_expire_after_ttl(r: redis.Redis, ns: Namespace) -> None:
    source = Source({"k": 1})
    cache = CacheAside(r, source, ttl=0.03, prefix=ns.prefix_for("ca"))
    cache.get("k")
    time.sleep(0.06)
    cache.get("k")
    assert source.calls == 2


def test_invalidate_forces_a_reload(r: redis.Redis, ns: Namespace) -> None:
    source = Source({"k": 1})
    cache = CacheAside(r, source, ttl=60, prefix=ns.prefix_for("ca"))
    cache.get("k")
    source.data["k"] = 2
    assert cache.get("k") == 1
    assert cache.invalidate("k") is True
    assert cache.get("k") == 2
    assert cache.invalidate("nope") is False


def test_not_found_is_not_cached_by_default(r: redis.Redis, ns: Namespace) -> None:
    source = Source()
    cache = CacheAside(r, source, ttl=60, prefix=ns.prefix_for("ca"))
    assert cache.get("ghost") is None
    assert cache.get("ghost") is None
    assert source.calls == 2
    assert ns.keys() == []


def test_negative_caching_uses_its_own_short_ttl(r: redis.Redis, ns: Namespace) -> None:
    source = Source()
    cache = CacheAside(r, source, ttl=60, negative_ttl=0.05, prefix=ns.prefix_for("ca"))
    assert cache.get("ghost") is None
    assert cache.get("ghost") is None
    assert source.calls == 1
    entry, *_ = cache._keys("ghost")
    assert 0 < r.pttl(entry) <= 50
    time.sleep(0.08)
    source.data["ghost"] = "now here"
    assert cache.get("ghost") == "now here"
    assert 59_000 < r.pttl(entry) <= 60_000


def test_jitter_spreads_ttls_within_bounds(r: redis.Redis, ns: Namespace) -> None:
    cache = CacheAside(
        r, lambda k: 1, ttl=100, jitter=0.2, rng=random.Random(7), prefix=ns.prefix_for("ca")
    )
    ttls = []
    for i in range(40):
        cache.get(f"k{i}")
        ttls.append(r.pttl(cache._keys(f"k{i}")[0]))
    assert all(79_000 <= t <= 120_000 for t in ttls)
    assert max(ttls) - min(ttls) > 10_000


def test_loader_error_propagates_and_caches_nothing(r: redis.Redis, ns: Namespace) -> None:
    def broken(key: str) -> Any:
        raise LookupError("db down")

    cache = CacheAside(r, broken, ttl=60, single_flight=True, prefix=ns.prefix_for("ca"))
    with pytest.raises(LookupError, match="db down"):
        cache.get("k")
    assert ns.keys() == []  # the lock was released too


def test_stats_reset(r: redis.Redis, ns: Namespace) -> None:
    cache = CacheAside(r, Source({"k": 1}), ttl=60, prefix=ns.prefix_for("ca"))
    cache.get("k")
    cache.get("k")
    cache.reset_stats()
    assert cache.stats() == CacheStats()
    assert cache.stats().hit_ratio == 0.0
    assert set(cache.stats().as_dict()) >= {"hits", "misses", "hit_ratio"}


def test_works_with_bytes_responses(ns: Namespace, redis_client: redis.Redis) -> None:
    host, port = address(redis_client)
    raw: Any
    if hasattr(redis_client, "get_default_node"):
        raw = RedisCluster(host=host, port=port, decode_responses=False)
    else:
        raw = redis.Redis(host=host, port=port, decode_responses=False)
    try:
        cache = CacheAside(
            raw, Source({"k": {"a": 1}}), ttl=60, beta=1.0, prefix=ns.prefix_for("ca")
        )
        assert cache.get("k") == {"a": 1}
        assert cache.get("k") == {"a": 1}
        assert cache.stats().hits + cache.stats().early_recomputes == 1
    finally:
        raw.close()


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    value=st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | st.text()
        | st.floats(allow_nan=False, allow_infinity=False),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
        max_leaves=10,
    )
)
def test_any_json_value_round_trips(r: redis.Redis, ns: Namespace, value: Any) -> None:
    cache = CacheAside(r, lambda k: value, ttl=60, negative_ttl=60, prefix=ns.prefix_for("ca"))
    cache.invalidate("v")
    first = cache.get("v")
    second = cache.get("v")
    assert first == second == value
    assert cache.stats().loads == 1


# ------------------------------------------------------------------------------ stampede guards


def _hammer(fn: Any, n_threads: int) -> list[Any]:
    barrier = threading.Barrier(n_threads)
    results: list[Any] = [None] * n_threads
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait()
            results[i] = fn()
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


def test_without_single_flight_concurrent_misses_all_load(r: redis.Redis, ns: Namespace) -> None:
    source = Source({"hot": "v"}, delay=0.1)
    cache = CacheAside(r, source, ttl=60, prefix=ns.prefix_for("ca"))
    results = _hammer(lambda: cache.get("hot"), 8)
    assert results == ["v"] * 8
    assert source.calls > 1  # the stampede single-flight prevents


def test_single_flight_loads_once_for_concurrent_misses(r: redis.Redis, ns: Namespace) -> None:
    source = Source({"hot": "v"}, delay=0.1)
    cache = CacheAside(r, source, ttl=60, single_flight=True, prefix=ns.prefix_for("ca"))
    results = _hammer(lambda: cache.get("hot"), 16)
    assert results == ["v"] * 16
    assert source.calls == 1
    stats = cache.stats()
    assert (stats.misses, stats.hits) == (1, 15)
    assert stats.lock_waits >= 1
    assert r.exists(cache._keys("hot")[1]) == 0  # lock released


def test_single_flight_serves_stale_while_one_refreshes(r: redis.Redis, ns: Namespace) -> None:
    source = Source({"hot": "old"})
    cache = CacheAside(
        r, source, ttl=0.05, single_flight=True, stale_ttl=5, prefix=ns.prefix_for("ca")
    )
    cache.get("hot")
    time.sleep(0.08)  # now stale, still in Redis
    source.data["hot"], source.delay = "new", 0.1
    results = _hammer(lambda: cache.get("hot"), 8)
    assert source.calls == 2  # one initial load, one refresh
    assert results.count("new") == 1 and results.count("old") == 7
    assert cache.stats().stale_hits == 7
    assert cache.get("hot") == "new"


def test_single_flight_waiter_raises_after_wait_timeout(r: redis.Redis, ns: Namespace) -> None:
    source = Source({"k": 1})
    cache = CacheAside(
        r,
        source,
        ttl=60,
        single_flight=True,
        lock_ttl=5,
        wait_timeout=0.05,
        prefix=ns.prefix_for("ca"),
    )
    entry, lock, _ = cache._keys("k")
    r.set(lock, "someone-else", px=5000)  # a lock holder that never finishes
    with pytest.raises(CacheWaitTimeout, match=r"waited 0\.05 s"):
        cache.get("k")
    assert source.calls == 0  # no load without the lock
    assert cache.stats().lock_waits == 1
    assert r.exists(entry) == 0
    assert r.get(lock) == "someone-else"  # not ours to release
    assert issubclass(CacheWaitTimeout, TimeoutError) and issubclass(CacheWaitTimeout, LabkitError)


def test_single_flight_waiter_takes_over_a_lapsed_lock(r: redis.Redis, ns: Namespace) -> None:
    source = Source({"k": 1})
    cache = CacheAside(
        r, source, ttl=60, single_flight=True, lock_ttl=0.2, prefix=ns.prefix_for("ca")
    )
    lock = cache._keys("k")[1]
    r.set(lock, "crashed-holder", px=100)  # its holder died: the lock lapses in 100 ms
    started = time.monotonic()
    assert cache.get("k") == 1
    assert time.monotonic() - started >= 0.08
    assert source.calls == 1
    stats = cache.stats()
    assert (stats.lock_waits, stats.misses, stats.loads) == (1, 1, 1)
    assert r.exists(lock) == 0  # the waiter took the lock, stored, and released it


def test_single_flight_slow_loader_starts_at_most_one_load_per_lock_ttl(
    r: redis.Redis, ns: Namespace
) -> None:
    """A loader slower than lock_ttl: waiters keep trying the lock instead of all loading."""
    starts: list[float] = []

    def slow(key: str) -> str:
        starts.append(time.monotonic())
        time.sleep(0.45)
        return "v"

    cache = CacheAside(
        r,
        slow,
        ttl=60,
        single_flight=True,
        lock_ttl=0.2,
        wait_timeout=5,
        prefix=ns.prefix_for("ca"),
    )
    results = _hammer(lambda: cache.get("k"), 20)
    assert results == ["v"] * 20
    # loads start at ~0, ~0.2 and ~0.4 s (each after the previous lock lapsed); the first
    # stores at ~0.45 s and everyone still waiting reads it (before, all 20 loaded)
    assert 1 <= len(starts) <= 3
    gaps = np.diff(sorted(starts))
    assert (gaps >= 0.2 - 0.03).all()
    assert cache.stats().loads == len(starts)


def test_default_wait_timeout_covers_a_takeover(r: redis.Redis) -> None:
    cache = CacheAside(r, Source(), ttl=60, single_flight=True, lock_ttl=0.5)
    assert cache.wait_timeout == pytest.approx(1.5)  # 3 x lock_ttl
    assert CacheAside(r, Source(), ttl=60, wait_timeout=0.25).wait_timeout == 0.25


def _store_args(payload: str, ttl_ms: object, token: str) -> list[Any]:
    """cache/store's ARGV for a load that saw no invalidation marker, with no age limit."""
    return [payload, "1.0", ttl_ms, token, "", 0, 2**53]


def test_lock_not_released_by_a_caller_that_does_not_own_it(r: redis.Redis, ns: Namespace) -> None:
    cache = CacheAside(r, Source(), ttl=60, single_flight=True, prefix=ns.prefix_for("ca"))
    keys = cache._keys("k")
    r.set(keys[1], "other", px=5000)
    assert cache._store(keys=keys, args=_store_args("1", 60_000, "mine")) == 1
    assert r.get(keys[1]) == "other"


def test_xfetch_recomputes_early_near_expiry(r: redis.Redis, ns: Namespace) -> None:
    clock_values = iter([0.0, 10.0] * 100)  # every load "takes" 10 s: huge delta
    source = Source({"k": 1})
    cache = CacheAside(
        r,
        source,
        ttl=5,
        beta=1.0,
        rng=random.Random(1),
        clock=lambda: next(clock_values),
        prefix=ns.prefix_for("ca"),
    )
    cache.get("k")
    for _ in range(20):
        cache.get("k")
    # delta (10 s) > remaining TTL (5 s): -delta*ln(U) >= 5 has probability e^-0.5 ~ 0.6
    assert cache.stats().early_recomputes > 3
    assert source.calls == 1 + cache.stats().early_recomputes


def test_xfetch_with_single_flight_recomputes_early_once(r: redis.Redis, ns: Namespace) -> None:
    source = Source({"k": 1})
    cache = CacheAside(
        r,
        source,
        ttl=5,
        beta=1.0,
        single_flight=True,
        rng=random.Random(1),
        prefix=ns.prefix_for("ca"),
    )
    cache.get("k")
    entry, lock, _ = cache._keys("k")
    r.hset(entry, "d", "1000000")  # pretend the last recompute took 1000 s: always due
    r.set(lock, "another-caller", px=5000)  # someone is already recomputing early
    assert [cache.get("k") for _ in range(5)] == [1] * 5
    assert source.calls == 1 and cache.stats().early_recomputes == 0
    r.delete(lock)
    cache.get("k")
    assert source.calls == 2 and cache.stats().early_recomputes == 1
    assert r.exists(lock) == 0


def test_xfetch_with_single_flight_refreshes_once_under_concurrency(
    r: redis.Redis, ns: Namespace
) -> None:
    source = Source({"hot": "v"})
    cache = CacheAside(r, source, ttl=60, beta=1.0, single_flight=True, prefix=ns.prefix_for("ca"))
    cache.get("hot")
    r.hset(cache._keys("hot")[0], "d", "1e12")  # every reader now draws "recompute early"
    source.delay = 0.05
    results = _hammer(lambda: [cache.get("hot") for _ in range(5)], 16)
    assert results == [["v"] * 5] * 16
    assert source.calls == 2  # the first load, then exactly one early refresh
    assert cache.stats().early_recomputes == 1


def test_xfetch_leaves_a_fresh_entry_alone(r: redis.Redis, ns: Namespace) -> None:
    source = Source({"k": 1})
    cache = CacheAside(
        r, source, ttl=60, beta=1.0, rng=random.Random(1), prefix=ns.prefix_for("ca")
    )
    for _ in range(50):
        cache.get("k")
    assert source.calls == 1  # delta ~ 0 ms against 60 s left: never early


# ------------------------------------------------------------------------------ decorator


def test_cached_decorator_caches_by_key(r: redis.Redis, ns: Namespace) -> None:
    calls: list[int] = []

    @cached(r, ttl=60, key=lambda pid: f"product:{pid}", prefix=ns.prefix_for("fn"))
    def product(pid: int) -> dict[str, int]:
        calls.append(pid)
        return {"id": pid}

    assert product(1) == {"id": 1}
    assert product(1) == {"id": 1}
    assert product(2) == {"id": 2}
    assert calls == [1, 2]
    assert product.stats().hits == 1
    assert product.__name__ == "product"
    assert product.invalidate(1) is True
    product(1)
    assert calls == [1, 2, 1]


def test_cached_default_key_uses_arguments(r: redis.Redis, ns: Namespace) -> None:
    calls: list[tuple[int, int]] = []

    @cached(r, ttl=60, prefix=ns.prefix_for("fn"))
    def add(a: int, b: int = 0) -> int:
        calls.append((a, b))
        return a + b

    assert add(1, b=2) == 3 and add(1, b=2) == 3 and add(2, b=1) == 3
    assert calls == [(1, 2), (2, 1)]


def test_cached_default_key_accepts_arguments_with_braces(r: redis.Redis, ns: Namespace) -> None:
    calls: list[Any] = []

    @cached(r, ttl=60, prefix=ns.prefix_for("fn"))
    def search(filters: Any, *, page: Any = 1) -> list[str]:
        calls.append(filters)
        return ["result"]

    arguments = [{"color": "red"}, "{draft}", {1, 2}, "}{", ("a", {"b": 1})]
    for argument in arguments:
        assert search(argument) == ["result"]
        assert search(argument) == ["result"]
    assert search("x", page={"n": 2}) == ["result"] and search("x", page={"n": 2}) == ["result"]
    assert len(calls) == len(arguments) + 1  # each distinct call loaded once, then hit
    assert search.invalidate({"color": "red"}) is True
    # the key stays readable: the function's qualified name, then a hash of the arguments
    key = search._key({"color": "red"})
    name = f"{__name__}.test_cached_default_key_accepts_arguments_with_braces.<locals>.search"
    assert key.startswith(name + ":") and "{" not in key and "}" not in key
    assert len(key) == len(name) + 1 + 64  # sha256 hex digest
    assert search._key(1) != search._key("1")  # repr tells 1 from "1"


def test_cached_passes_options_through(r: redis.Redis, ns: Namespace) -> None:
    calls: list[str] = []

    @cached(r, ttl=60, key=lambda k: k, negative_ttl=30, prefix=ns.prefix_for("fn"))
    def lookup(k: str) -> None:
        calls.append(k)
        return None

    assert lookup("x") is None and lookup("x") is None
    assert calls == ["x"]


# ------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize("bad", [0, -1, float("nan")])
@pytest.mark.parametrize("name", ["ttl", "negative_ttl", "lock_ttl", "wait_timeout"])
def test_cache_aside_rejects_non_positive_durations(r: redis.Redis, name: str, bad: float) -> None:
    kwargs: dict[str, Any] = {"ttl": 60, name: bad}
    with pytest.raises(ValueError, match=f"{name} must be"):
        CacheAside(r, Source(), **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"ttl": "60"}, TypeError, "ttl must be a number"),
        ({"jitter": 1.0}, ValueError, "jitter must be in"),
        ({"jitter": -0.1}, ValueError, "jitter must be in"),
        ({"beta": 0}, ValueError, r"beta must be in \(0, "),
        ({"beta": "1"}, TypeError, "beta must be a number"),
        ({"stale_ttl": 5}, ValueError, "stale_ttl needs single_flight"),
        ({"stale_ttl": -1, "single_flight": True}, ValueError, "stale_ttl must be >= 0"),
        ({"single_flight": 1}, TypeError, "single_flight must be a bool"),
        ({"prefix": "a{b}"}, ValueError, "prefix must not contain"),
        ({"poll_interval": 0}, ValueError, "poll_interval must be > 0"),
    ],
)
def test_cache_aside_rejects_bad_options(
    r: redis.Redis, kwargs: dict[str, Any], error: type, message: str
) -> None:
    options: dict[str, Any] = {"ttl": 60, **kwargs}
    with pytest.raises(error, match=message):
        CacheAside(r, Source(), **options)


@pytest.mark.parametrize(
    "name", ["ttl", "negative_ttl", "lock_ttl", "wait_timeout", "stale_ttl", "poll_interval"]
)
def test_cache_aside_rejects_oversized_durations(r: redis.Redis, ns: Namespace, name: str) -> None:
    kwargs: dict[str, Any] = {"ttl": 60, "single_flight": True, name: 1e16}
    with pytest.raises(ValueError, match=f"^{name} must be at most"):
        CacheAside(r, Source(), prefix=ns.prefix_for("ca"), **kwargs)
    kwargs[name] = (MAX_TTL_MS + 1) / 1000
    with pytest.raises(ValueError, match=f"^{name} must be at most"):
        CacheAside(r, Source(), prefix=ns.prefix_for("ca"), **kwargs)
    assert ns.keys() == []


def test_page_rejects_oversized_ttl(r: redis.Redis, ns: Namespace) -> None:
    with pytest.raises(ValueError, match=r"^ttl must be at most"):
        PageCache(r, prefix=ns.prefix_for("page"), ttl=1e16)
    with pytest.raises(ValueError, match=r"^ttl must be at most"):
        PageCache(r, prefix=ns.prefix_for("page")).set_page("/x", "x", ttl=1e16)
    assert ns.keys() == []


def test_longest_ttls_are_stored_with_an_expiry(r: redis.Redis, ns: Namespace) -> None:
    longest = MAX_TTL_MS / 1000
    cache = CacheAside(
        r,
        lambda k: "v",
        ttl=longest,
        jitter=0.9,
        single_flight=True,
        stale_ttl=longest,
        lock_ttl=longest,
        negative_ttl=longest,
        prefix=ns.prefix_for("ca"),
    )
    assert cache.get("k") == "v" and cache.get("k") == "v"
    assert r.pttl(cache._keys("k")[0]) > MAX_TTL_MS // 2
    pages = PageCache(r, prefix=ns.prefix_for("page"), ttl=longest)
    pages.set_page("/x", "x")
    assert pages.get_page("/x") == "x" and r.pttl(ns.key("page", "/x")) > MAX_TTL_MS // 2


def test_store_writes_nothing_when_the_ttl_is_refused(r: redis.Redis, ns: Namespace) -> None:
    """STORE checks the TTL before HSET: an entry can never be left without an expiry."""
    cache = CacheAside(r, Source(), ttl=60, single_flight=True, prefix=ns.prefix_for("ca"))
    keys = cache._keys("k")
    entry, lock, _ = keys
    r.set(lock, "mine", px=5000)
    for bad in [10**19, 0, -5, "1.5", "x"]:
        with pytest.raises(redis.ResponseError, match="entry TTL"):
            cache._store(keys=keys, args=_store_args('"v"', bad, "mine"))
        assert r.exists(entry) == 0
    assert r.get(lock) == "mine"  # the failed store released nothing either


def test_sub_millisecond_durations_round_up_to_one_ms(r: redis.Redis) -> None:
    """A positive duration never becomes 0 ms (which PX refuses, or would mean "no TTL")."""
    tiny = CacheAside(r, Source(), ttl=0.0004, single_flight=True, stale_ttl=0.0004)
    assert (tiny._ttl_ms, tiny._stale_ms) == (1, 1)
    assert CacheAside(r, Source(), ttl=60, single_flight=True, stale_ttl=0)._stale_ms == 0
    assert CacheAside(r, Source(), ttl=60, single_flight=True, stale_ttl=0.001)._stale_ms == 1


def test_cache_aside_rejects_non_callable_loader(r: redis.Redis) -> None:
    with pytest.raises(TypeError, match="loader must be callable"):
        CacheAside(r, "not a function", ttl=60)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("bad", "error"), [(1, TypeError), (b"k", TypeError), ("", ValueError), ("a{b}", ValueError)]
)
def test_cache_aside_rejects_bad_keys(r: redis.Redis, ns: Namespace, bad: Any, error: type) -> None:
    source = Source()
    cache = CacheAside(r, source, ttl=60, prefix=ns.prefix_for("ca"))
    with pytest.raises(error, match="key must"):
        cache.get(bad)
    with pytest.raises(error, match="key must"):
        cache.invalidate(bad)
    assert source.calls == 0


def test_cache_aside_rejects_non_json_loaded_value(r: redis.Redis, ns: Namespace) -> None:
    cache = CacheAside(r, lambda k: {1, 2}, ttl=60, single_flight=True, prefix=ns.prefix_for("ca"))
    with pytest.raises(TypeError, match="the loaded value is not JSON-serialisable"):
        cache.get("k")
    assert ns.keys() == []


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), [1.0, float("-inf")]])
def test_cache_aside_rejects_nan_loaded_value(r: redis.Redis, ns: Namespace, bad: Any) -> None:
    cache = CacheAside(r, lambda k: bad, ttl=60, single_flight=True, prefix=ns.prefix_for("ca"))
    with pytest.raises(ValueError, match="the loaded value cannot be stored as JSON"):
        cache.get("k")
    assert ns.keys() == []  # nothing stored, lock released


def test_fetch_rejects_non_callable_load(r: redis.Redis, ns: Namespace) -> None:
    cache: CacheAside[Any] = CacheAside(r, None, ttl=60, prefix=ns.prefix_for("ca"))
    with pytest.raises(TypeError, match="load must be callable"):
        cache.fetch("k", 5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="has no loader"):
        cache.get("k")


def test_cached_rejects_bad_arguments(r: redis.Redis, ns: Namespace) -> None:
    with pytest.raises(ValueError, match="ttl must be > 0"):
        cached(r, ttl=-1)
    with pytest.raises(TypeError, match="key must be callable"):
        cached(r, ttl=1, key="product")  # type: ignore[arg-type]

    @cached(r, ttl=60, key=lambda k: k, prefix=ns.prefix_for("fn"))
    def f(k: Any) -> int:
        return 1

    with pytest.raises(TypeError, match="key function must return a str"):
        f(5)


# ------------------------------------------------------------------------------ experiment helpers


def test_replay_reports_hits_and_misses(r: redis.Redis, ns: Namespace) -> None:
    keys = [ns.key(k) for k in ["a", "b", "a", "a", "c", "b"]]
    [hits] = replay([Stream(r, keys, ttl_ms=60_000)], "v", chunk=2)
    assert hits.tolist() == [False, False, True, True, False, True]
    assert 0 < r.pttl(ns.key("a")) <= 60_000


def test_replay_in_real_time_lets_redis_expire_keys(r: redis.Redis, ns: Namespace) -> None:
    keys = [ns.key("k")] * 3
    short, long = replay(
        [Stream(r, keys, ttl_ms=20), Stream(r, [k + "2" for k in keys], ttl_ms=60_000)],
        "v",
        times=np.array([0.0, 0.005, 0.06]),
    )
    assert short.tolist() == [False, True, False]  # expired by the third request
    assert long.tolist() == [False, True, True]


def test_replay_rejects_bad_arguments(r: redis.Redis, ns: Namespace) -> None:
    with pytest.raises(ValueError, match="streams must not be empty"):
        replay([], "v")
    with pytest.raises(ValueError, match="same number of keys"):
        replay([Stream(r, ["a"], 10), Stream(r, ["a", "b"], 10)], "v")
    with pytest.raises(ValueError, match="times must have one entry"):
        replay([Stream(r, ["a"], 10)], "v", times=np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="chunk must be between 1"):
        replay([Stream(r, ["a"], 10)], "v", chunk=0)


def test_lru_hits_evicts_least_recently_used() -> None:
    #          a      b      a     c (evicts b)  b (evicts a)  c
    assert lru_hits(list("abacbc"), 2).tolist() == [False, False, True, False, False, True]
    with pytest.raises(ValueError, match="capacity must be between 1"):
        lru_hits([1], 0)
    with pytest.raises(TypeError, match="capacity must be an int"):
        lru_hits([1], 1.5)  # type: ignore[arg-type]


@settings(max_examples=50, deadline=None)
@given(trace=st.lists(st.integers(0, 20), max_size=200), capacity=st.integers(1, 25))
def test_lru_hits_grow_with_capacity(trace: list[int], capacity: int) -> None:
    """LRU is a stack algorithm: a bigger cache never hits less (no Belady anomaly)."""
    assert lru_hits(trace, capacity + 1).sum() >= lru_hits(trace, capacity).sum()
    if capacity >= len(set(trace)):
        assert lru_hits(trace, capacity).sum() == len(trace) - len(set(trace))


def test_ttl_hit_ratio_model_limits() -> None:
    weights = np.array([0.5, 0.5])
    assert ttl_hit_ratio(weights, rate=10, ttl=1e-9) == pytest.approx(0, abs=1e-6)
    assert ttl_hit_ratio(weights, rate=10, ttl=1e6) == pytest.approx(1, abs=1e-5)
    assert ttl_hit_ratio(weights, rate=10, ttl=0.2) == pytest.approx(0.5)  # x = 1 per key


def test_hammer_runs_threads_and_counts_calls() -> None:
    seen: set[int] = set()
    lock = threading.Lock()

    def call() -> None:
        with lock:
            seen.add(threading.get_ident())

    assert hammer(call, n_threads=4, duration=0.05) >= 4
    assert len(seen) == 4
    with pytest.raises(ValueError, match="n_threads must be between 1"):
        hammer(call, n_threads=0, duration=0.05)


def test_hammer_reraises_errors() -> None:
    def boom() -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        hammer(boom, n_threads=2, duration=0.05)


def test_recompute_bursts_groups_by_window() -> None:
    assert recompute_bursts([0.0, 0.01, 0.02, 1.0, 2.0, 2.005], window=0.05) == [3, 1, 2]
    assert recompute_bursts([], window=0.05) == []


# ------------------------------------------------------------------------------ invalidate vs load


class HeldSource:
    """A source whose first load is held between reading the data and returning it, until
    ``writer_done`` is set; ``read_v1`` tells the test the read has happened."""

    def __init__(self) -> None:
        self.db = {"k": "v1"}
        self.read_v1, self.writer_done = threading.Event(), threading.Event()
        self.loads: list[str] = []

    def __call__(self, key: str) -> str:
        value = self.db[key]
        self.loads.append(value)
        if len(self.loads) == 1:
            self.read_v1.set()
            assert self.writer_done.wait(10), "the writer never finished"
        return value


@pytest.mark.parametrize("single_flight", [False, True], ids=["plain", "single_flight"])
def test_invalidate_during_load_is_not_undone(
    r: redis.Redis, ns: Namespace, single_flight: bool
) -> None:
    """Issue 19, bug 3: a load that read v1 before a writer wrote v2 and invalidated must not
    cache v1. The loader blocks on an Event, so the interleaving is forced, not timed."""
    source = HeldSource()
    cache = CacheAside(r, source, ttl=60, single_flight=single_flight, prefix=ns.prefix_for("ca"))
    first: list[Any] = []
    reader = threading.Thread(target=lambda: first.append(cache.get("k")))
    reader.start()
    try:
        assert source.read_v1.wait(10), "the loader never ran"
        source.db["k"] = "v2"  # the writer: update the source, then invalidate
        cache.invalidate("k")
    finally:
        source.writer_done.set()
        reader.join(10)
    assert first == ["v1"]  # the reader overlapped the write: either value is fair for it
    assert cache.get("k") == "v2"  # ...but v1 must not be what the cache serves afterwards
    assert source.loads == ["v1", "v2"]


def test_invalidate_during_load_hands_waiters_the_new_value(r: redis.Redis, ns: Namespace) -> None:
    """Single-flight: the refused store still frees the lock, and the waiter's load is new."""
    source = HeldSource()
    cache = CacheAside(r, source, ttl=60, single_flight=True, prefix=ns.prefix_for("ca"))
    results: dict[str, Any] = {}
    first = threading.Thread(target=lambda: results.update(first=cache.get("k")))
    first.start()
    assert source.read_v1.wait(10), "the loader never ran"
    waiter = threading.Thread(target=lambda: results.update(waiter=cache.get("k")))
    waiter.start()  # finds the key missing and locked (or, if late, missing): it loads v2
    source.db["k"] = "v2"
    cache.invalidate("k")
    source.writer_done.set()
    first.join(10)
    waiter.join(10)
    assert results == {"first": "v1", "waiter": "v2"}
    assert source.loads == ["v1", "v2"] and cache.get("k") == "v2"
    assert r.exists(cache._keys("k")[1]) == 0  # no lock left behind


def test_invalidate_leaves_a_marker_that_outlives_any_storable_load(
    r: redis.Redis, ns: Namespace
) -> None:
    cache = CacheAside(r, Source({"k": 1}), ttl=60, prefix=ns.prefix_for("ca"))
    entry, _, marker = cache._keys("k")
    assert cache.invalidate("k") is False  # nothing cached, but a load may be running
    first = r.get(marker)
    assert first and 59_000 < r.pttl(marker) <= 60_000  # max(60 s, lock_ttl)
    cache.get("k")
    assert cache.invalidate("k") is True and r.exists(entry) == 0
    assert r.get(marker) != first  # a fresh marker each time: an old one never matches again
    slow = CacheAside(r, Source(), ttl=60, lock_ttl=120, prefix=ns.prefix_for("ca"))
    slow.invalidate("k")
    assert 119_000 < r.pttl(marker) <= 120_000


def test_store_refuses_a_load_that_saw_another_marker(r: redis.Redis, ns: Namespace) -> None:
    cache = CacheAside(r, Source(), ttl=60, single_flight=True, prefix=ns.prefix_for("ca"))
    keys = cache._keys("k")
    entry, lock, marker = keys
    r.set(lock, "mine", px=5000)
    r.set(marker, "after-the-fetch", px=60_000)
    assert cache._store(keys=keys, args=_store_args('"old"', 60_000, "mine")) == 0
    assert r.exists(entry) == 0 and r.exists(lock) == 0  # refused, and the lock is freed


def test_store_accepts_a_load_whose_marker_expired_meanwhile(r: redis.Redis, ns: Namespace) -> None:
    """An expired marker is no objection: a newer invalidate would have left a live one."""
    cache = CacheAside(r, Source(), ttl=60, prefix=ns.prefix_for("ca"))
    keys = cache._keys("k")
    args = _store_args('"v"', 60_000, "")
    args[4] = "seen-at-fetch-time-and-gone-since"
    assert cache._store(keys=keys, args=args) == 1
    assert r.hget(keys[0], "v") == '"v"'


def test_store_refuses_a_load_older_than_the_marker_lives(r: redis.Redis, ns: Namespace) -> None:
    """Past the marker's lifetime an invalidate could have come and gone unseen."""
    cache = CacheAside(r, Source(), ttl=60, prefix=ns.prefix_for("ca"))
    keys = cache._keys("k")
    args = _store_args('"v"', 60_000, "")
    args[6] = 60_000_000  # the fetch was in 1970: far more than 60 s ago
    assert cache._store(keys=keys, args=args) == 0
    assert ns.keys() == []


def test_a_refused_store_still_returns_the_loaded_value(r: redis.Redis, ns: Namespace) -> None:
    calls: list[str] = []
    cache: CacheAside[str] = CacheAside(r, None, ttl=60, prefix=ns.prefix_for("ca"))

    def load() -> str:
        calls.append("load")
        cache.invalidate("k")  # a writer got in between this load's read and its store
        return "v1"

    assert cache.fetch("k", load) == "v1"
    assert cache.fetch("k", lambda: "v2") == "v2"
    assert cache.fetch("k", lambda: "v3") == "v2"  # stored, now a hit


# ------------------------------------------------------------------------------ bad input, properties

# Every numeric argument, drawn from everything Python calls a number (and a few things it
# does not), with the extremes always in play: 0, negatives, NaN, infinities, 2**63, ints
# too large for a float, and bool.
EXTREMES = [
    0,
    -0.0,
    -1,
    True,
    False,
    math.nan,
    math.inf,
    -math.inf,
    2**63,
    2**64,
    -(2**63),
    10**400,
    1e-9,
    0.0004,
    2**53,
    1e308,
    MAX_TTL_MS / 1000,
    MAX_TTL_MS / 1000 + 1,
]
NUMBERS = st.one_of(
    st.sampled_from(EXTREMES), st.integers(), st.floats(), st.sampled_from(["1", None, b"1"])
)
PROPERTY = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _duration_ok(value: object, *, allow_zero: bool = False) -> bool:
    """The contract: a real number of seconds (not bool), 0 < s (or 0 <= s), s <= 2**46 ms."""
    return is_duration(value, MAX_TTL_MS, allow_zero=allow_zero)


def _expires(r: redis.Redis, key: str, most_ms: int) -> bool:
    """The key has an expiry of at most ``most_ms`` (or is gone already): never ``-1``."""
    pttl = r.pttl(key)
    return pttl == -2 or 0 <= pttl <= most_ms


def _refused(arg: str, call: Any) -> bool:
    """Run ``call``; False if it went through, True if it raised a TypeError/ValueError that
    names ``arg`` first (anything else fails the test)."""
    try:
        call()
    except (TypeError, ValueError) as exc:
        assert str(exc).startswith(f"{arg} "), f"error does not name {arg}: {exc}"
        return True
    return False


@PROPERTY
@given(ttl=NUMBERS)
def test_page_cache_ttl_is_checked_before_any_write(
    r: redis.Redis, ns: Namespace, ttl: Any
) -> None:
    ns.cleanup()
    prefix = ns.prefix_for("page")
    refused = _refused("ttl", lambda: PageCache(r, prefix=prefix, ttl=ttl).set_page("/a", 1))
    assert refused is not _duration_ok(ttl)
    if refused:
        assert ns.keys() == []
    else:  # stored with an expiry (or already expired, for a TTL of a millisecond)
        assert _expires(r, prefix + "/a", MAX_TTL_MS)
    pages = PageCache(r, prefix=prefix)
    pages.invalidate_page("/b")
    refused = _refused("ttl", lambda: pages.set_page("/b", 1, ttl=ttl))
    assert refused is not (ttl is None or _duration_ok(ttl))  # None: the default TTL
    if refused:
        assert r.exists(prefix + "/b") == 0
    else:
        assert _expires(r, prefix + "/b", MAX_TTL_MS)


@PROPERTY
@given(batch=NUMBERS)
def test_invalidate_pattern_batch_is_checked_first(
    r: redis.Redis, ns: Namespace, batch: Any
) -> None:
    ns.cleanup()
    pages = PageCache(r, prefix=ns.prefix_for("page"))
    pages.set_page("/a", 1)
    refused = _refused("batch", lambda: pages.invalidate_pattern("/", batch=batch))
    ok = type(batch) is int and 1 <= batch <= 100_000
    assert refused is not ok
    assert (pages.get_page("/a") == 1) is refused  # refused: nothing deleted


DURATIONS = ["ttl", "negative_ttl", "lock_ttl", "wait_timeout", "poll_interval", "stale_ttl"]


@PROPERTY
@given(name=st.sampled_from(DURATIONS), value=NUMBERS)
def test_cache_aside_durations_are_checked_before_any_write(
    r: redis.Redis, ns: Namespace, name: str, value: Any
) -> None:
    ns.cleanup()
    options: dict[str, Any] = {"ttl": 60, "single_flight": True, name: value}
    cache: list[CacheAside[Any]] = []
    refused = _refused(
        name, lambda: cache.append(CacheAside(r, None, prefix=ns.prefix_for("ca"), **options))
    )
    optional = name in ("negative_ttl", "wait_timeout")  # None: no negative caching / default
    ok = (value is None and optional) or _duration_ok(value, allow_zero=name == "stale_ttl")
    assert refused is not ok
    if refused:
        assert ns.keys() == []
        return
    # accepted: a miss stores with an expiry (a TTL of 1 ms may be over already), so does a
    # "not found", and invalidate works
    entries = [cache[0]._keys(k)[0] for k in ("k", "none")]
    assert cache[0].fetch("k", lambda: "v") == "v"
    assert cache[0].fetch("none", lambda: None) is None
    assert all(_expires(r, entry, 4 * MAX_TTL_MS) for entry in entries)
    cache[0].invalidate("k")
    assert r.exists(entries[0]) == 0


@PROPERTY
@given(name=st.sampled_from(["jitter", "beta"]), value=NUMBERS)
def test_cache_aside_jitter_and_beta_are_checked(
    r: redis.Redis, ns: Namespace, name: str, value: Any
) -> None:
    ns.cleanup()
    cache: list[CacheAside[Any]] = []
    refused = _refused(
        name,
        lambda: cache.append(
            CacheAside(r, None, ttl=60, prefix=ns.prefix_for("ca"), **{name: value})
        ),
    )
    real = not isinstance(value, bool) and isinstance(value, (int, float))
    in_range = {"jitter": lambda v: 0 <= v < 1, "beta": lambda v: 0 < v <= 2**53}[name]
    assert refused is not ((name == "beta" and value is None) or (real and in_range(value)))
    if not refused:
        assert [cache[0].fetch("k", lambda: "v") for _ in range(3)] == ["v"] * 3
        assert 0 < r.pttl(cache[0]._keys("k")[0]) <= 120_000


@PROPERTY
@given(ttl=NUMBERS)
def test_cached_decorator_ttl_is_checked(r: redis.Redis, ns: Namespace, ttl: Any) -> None:
    ns.cleanup()
    refused = _refused("ttl", lambda: cached(r, ttl=ttl, prefix=ns.prefix_for("fn")))
    assert refused is not _duration_ok(ttl)
    assert ns.keys() == []


@settings(max_examples=60, deadline=None)
@given(capacity=NUMBERS)
def test_lru_hits_capacity_is_checked(capacity: Any) -> None:
    refused = _refused("capacity", lambda: lru_hits([1, 2, 1], capacity))
    assert refused is not (type(capacity) is int and 1 <= capacity < 2**63)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"n_threads": 0}, "n_threads"),
        ({"n_threads": True}, "n_threads"),
        ({"n_threads": 2**63}, "n_threads"),
        ({"duration": math.nan}, "duration"),
        ({"duration": math.inf}, "duration"),
        ({"duration": 0}, "duration"),
        ({"think": -1}, "think"),
        ({"think": 10**400}, "think"),
    ],
)
def test_hammer_checks_its_numbers(kwargs: dict[str, Any], name: str) -> None:
    options: dict[str, Any] = {"n_threads": 1, "duration": 0.01, **kwargs}
    assert _refused(name, lambda: hammer(lambda: None, **options))
