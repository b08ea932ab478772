"""labkit.experiments.cache: the harness notebook 01 stands on (issue 18: a replay that fell
behind must not fail with OOM; the widget panel's server comes back on demand)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest

from labkit import naive
from labkit.cache import CacheAside
from labkit.experiments.cache import (
    ExpiryRecorder,
    IndexedPages,
    PanelServer,
    Stream,
    TrackingCache,
    cap_memory,
    invalidate_during_load,
    measure_tracking,
    peak_rate,
    replay,
    ttl_hits,
)
from labkit.keys import Namespace
from labkit.server import RedisServer

VALUE = "v" * 500


def per_key_bytes() -> float:
    with RedisServer() as server:
        r = server.client()
        before = r.info("memory")["used_memory"]
        replay([Stream(r, [f"k:{i}" for i in range(1000)], 3_600_000)], VALUE)
        return (r.info("memory")["used_memory"] - before) / 1000


def test_cap_memory_leaves_the_keys_the_room_it_says() -> None:
    # The baseline used to be read on a fresh connection, before its buffers existed: a
    # 200-key budget then held ~107 keys, and a catch-up pipeline could exhaust the rest.
    per_key = per_key_bytes()
    with RedisServer(maxmemory_policy="allkeys-lru") as server:
        r = server.client()
        cap_memory(r, int(200 * per_key), VALUE)
        hits = replay([Stream(r, [f"k:{i % 1000}" for i in range(4000)], 3_600_000)], VALUE)
        assert hits.refused == [0]
        assert 170 <= r.dbsize() <= 210, r.dbsize()


def test_replay_counts_oom_as_a_miss_instead_of_failing() -> None:
    with RedisServer(maxmemory_policy="allkeys-lru") as server:
        r = server.client()
        cap_memory(r, 1, VALUE)  # no room at all: every write is refused
        [hits] = replay([Stream(r, [f"k:{i % 10}" for i in range(50)], 60_000)], VALUE)
        assert not hits.any()
        refused = replay([Stream(r, ["a", "b"], 60_000)], VALUE).refused
        assert refused == [2]


def test_replay_pipelines_stay_under_max_bytes(r: Any, ns: Namespace) -> None:
    sizes: list[int] = []
    real = r.pipeline

    class Spy:
        def __init__(self, pipe: Any) -> None:
            self.pipe, self.n = pipe, 0

        def set(self, *args: Any, **kwargs: Any) -> None:
            self.n += 1
            self.pipe.set(*args, **kwargs)

        def execute(self, **kwargs: Any) -> Any:
            sizes.append(self.n)
            return self.pipe.execute(**kwargs)

    class Client:
        def pipeline(self, **kwargs: Any) -> Spy:
            return Spy(real(**kwargs))

    keys = [ns.key("k", i) for i in range(100)]
    late = np.zeros(len(keys))  # all due at once: a replay that has fallen far behind
    replay([Stream(Client(), keys, 60_000)], VALUE, times=late, max_bytes=5_000)  # type: ignore[arg-type]
    assert max(sizes) == 5_000 // (len(VALUE) + 64) and sum(sizes) == 100


def test_peak_rate_finds_the_burst() -> None:
    t = np.arange(0, 2, 0.05)
    counts = np.where(t >= 1.0, 100.0, 0.0)  # 100 events between 0.95 s and 1.0 s
    assert peak_rate(t, counts, window=0.1) == pytest.approx(100 / 0.1)
    assert peak_rate(t, np.zeros_like(t)) == 0


def test_invalidate_during_load_naive_keeps_stale_cache_aside_does_not(
    r: Any, ns: Namespace
) -> None:
    rows = {"1": {"name": "old"}}
    key = ns.prefix + "user:profile:1"
    invalidate_during_load(
        lambda load: naive.get_user_profile(r, lambda _: load(), 1, prefix=ns.prefix),
        rows, "1", {"name": "new"}, lambda: r.delete(key),
    )
    assert naive.get_user_profile(r, lambda _: rows["1"], 1, prefix=ns.prefix) == {"name": "old"}
    cache: CacheAside[Any] = CacheAside(r, lambda k: rows[k], ttl=60, prefix=ns.prefix_for("ca"))
    rows["1"] = {"name": "old"}
    got = invalidate_during_load(
        lambda load: cache.fetch("1", load), rows, "1", {"name": "new"},
        lambda: cache.invalidate("1"),
    )
    assert got == {"name": "old"}  # the racing reader itself overlapped the write
    assert cache.get("1") == {"name": "new"}


def test_tracking_cache_serves_locally_and_drops_on_write() -> None:
    with RedisServer() as server:
        writer = server.client()
        writer.set("k", "v1")
        local = TrackingCache(server.client())
        try:
            assert local.get("k") == "v1"
            writer.set("k", "gone-from-redis-but-not-yet-seen")  # invalidates
            deadline = time.monotonic() + 5
            while "k" in local.local and time.monotonic() < deadline:
                time.sleep(0.001)
            assert "k" not in local.local and local.dropped[-1][0] == "k"
            writer.set("k", "v2")
            assert local.get("k") == "v2"
            writer.execute_command("SET", "k", "v3")
        finally:
            local.close()


def test_panel_server_comes_back_after_stop() -> None:
    panel = PanelServer()
    try:
        assert panel.client().ping()
        panel.stop()  # what a notebook's clean-up cell does
        assert panel.client().ping()  # the next redraw starts it again
    finally:
        panel.stop()


def test_expiry_recorder_sees_every_expiry() -> None:
    with RedisServer(hz=100) as server:
        r = server.client()
        recorder = ExpiryRecorder([r], interval=0.01).start()
        for i in range(50):
            r.set(f"k:{i}", "v", px=200)
        assert recorder.wait_empty(5)
        t, counts = recorder.stop()
        assert counts.shape == (1, len(t)) and counts[0, 0] == 0 and counts[0, -1] == 50
        assert peak_rate(t, counts[0], window=0.1) >= 50 / 0.3


def test_ttl_hits_is_an_exact_ttl_cache() -> None:
    keys = ["a", "a", "b", "a", "a"]
    times = np.array([0.0, 0.05, 0.06, 0.11, 0.12])
    assert ttl_hits(keys, times, 0.1).tolist() == [False, True, False, False, True]


def test_replay_reports_when_each_request_went_out(r: Any, ns: Namespace) -> None:
    keys = [ns.key("s", i % 3) for i in range(30)]
    times = np.arange(30) * 0.005
    hits = replay([Stream(r, keys, ttl_ms=60_000)], "v", times=times)
    assert hits.sent.shape == (30,) and (np.diff(hits.sent) >= 0).all()
    assert (hits.sent >= times - 1e-9).all()  # never early
    assert hits[0].tolist() == ttl_hits(keys, hits.sent, 60.0).tolist()


def test_indexed_pages_invalidates_its_group_only(r: Any, ns: Namespace) -> None:
    pages = IndexedPages(r, prefix=ns.prefix_for("indexed"), ttl=60)
    for i in range(5):
        pages.set_page("catalog", f"/catalog/{i}", f"page {i}")
    pages.set_page("blog", "/blog/1", "post")
    assert pages.get_page("catalog", "/catalog/3") == "page 3"
    assert pages.invalidate_group("catalog") == 5
    assert all(pages.get_page("catalog", f"/catalog/{i}") is None for i in range(5))
    assert pages.get_page("blog", "/blog/1") == "post"
    assert pages.invalidate_group("catalog") == 0
    with pytest.raises(ValueError, match="group"):
        pages.set_page("a{b}", "/x", "y")


def test_measure_tracking_sees_every_invalidation() -> None:
    result = measure_tracking("v0", writes=3, calls=10)
    if result.local_hit is None:
        pytest.skip(f"server {result.version} has no CLIENT TRACKING")
    assert len(result.delays) == 3 and all(np.isfinite(result.delays))
    assert result.stale_after_drop == 0
    assert result.get is not None and result.local_hit["p50"] < result.get["p50"]
    with pytest.raises(ValueError, match="writes"):
        measure_tracking("v0", writes=0)
