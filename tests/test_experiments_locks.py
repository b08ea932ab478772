"""labkit.experiments.locks: the drivers notebook 06 runs, checked on what they count."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from labkit import naive
from labkit.experiments import locks as xl
from labkit.keys import Namespace
from labkit.locks import FencedStore
from labkit.server import RedisServer


@pytest.fixture(scope="module")
def five() -> Iterator[list[RedisServer]]:
    servers = [RedisServer().start() for _ in range(5)]
    yield servers
    for server in servers:
        server.stop()


def test_offered_load_is_capped_by_the_loop_and_by_the_lock() -> None:
    assert xl.offered_load(8, 0.001, 0.03) == pytest.approx(8 / 0.031)
    assert xl.offered_load(100, 0.01, 0.0) == pytest.approx(100)  # the lock serves 1 / hold


def test_compressed_clock_is_restored() -> None:
    real = naive.time
    with xl.compressed_naive_clock() as fake:
        assert naive.time is fake  # type: ignore[comparison-overlap]
    assert naive.time is real


def test_l1_naive_runs_bodies_unlocked_and_labkit_refuses(r: Any, ns: Namespace) -> None:
    article = xl.unlocked_bodies(r, prefix=ns.prefix, variant="naive", workers=3, entries=3)
    fixed = xl.unlocked_bodies(r, prefix=ns.prefix, variant="labkit", workers=3, entries=3)
    assert article["ran without the lock"] >= 1 and article["most bodies inside at once"] >= 2
    assert fixed["ran without the lock"] == 0 and fixed["most bodies inside at once"] == 1
    assert fixed["entries"] + fixed["refused (LockNotAcquired)"] == 9


def test_l5_shared_object_lets_an_outsider_in_only_for_the_article(r: Any, ns: Namespace) -> None:
    assert xl.shared_object_rounds(r, prefix=ns.prefix, variant="naive", rounds=2)["outsider got in"] == 2
    fixed = xl.shared_object_rounds(r, prefix=ns.prefix, variant="labkit", rounds=2)
    assert fixed["outsider got in"] == 0 and fixed["second thread's with refused"] == 2


def test_l3_l4_labkit_tells_the_holder_and_fences_the_stale_write(r: Any, ns: Namespace) -> None:
    (round_,) = xl.overrun_rounds(r, prefix=ns.prefix, variant="labkit", rounds=1, ttl=0.1)
    assert round_ == {"second holder got in": True, "holder told": True, "stale write landed": False}


def test_waiter_load_counts_round_trips(five: list[RedisServer]) -> None:
    rows = {row["variant"]: row for row in xl.waiter_loads(five[:2], ("naive", "notify"), waiters=2)}
    assert rows["naive"]["round trips per s per waiter"] > 20  # a SET every 10 ms
    assert rows["notify"]["round trips per s per waiter"] < 5  # one BLPOP per max_block


def test_counter_goes_back_without_persistence_not_with_aof(r: Any, ns: Namespace) -> None:
    lost = xl.counter_after_restart(FencedStore(r, ns.key("a")), persist=False)
    kept = xl.counter_after_restart(FencedStore(r, ns.key("b")), persist=True)
    assert lost["B's token after the restart"] == 1 and not lost["B's write landed"]
    assert kept["B's token after the restart"] == 4 and kept["B's write landed"]
    assert not kept["A's stale write landed"]


def test_redlock_issues_no_token_and_lets_the_stale_write_land(
    five: list[RedisServer], r: Any, ns: Namespace
) -> None:
    (round_,) = xl.redlock_pause_rounds(five, r, prefix=ns.prefix, rounds=1)
    assert round_["what acquire returned"] == "True"  # a bool, nothing a storage can compare
    assert round_["B granted during A's stall"] and round_["stale write landed"]
    cost = xl.redlock_acquire_cost(five, five[0].client(), pairs=3)
    assert [row["variant"] for row in cost] == ["labkit Lock (1 server)", "pottery Redlock (5 servers)"]


def test_row_marks_a_maximum_that_was_still_open() -> None:
    cut = xl.ContentionResult("spin", 2, "threads", 1.0, waits=[[0.01], [0.02]], censored=[0.5])
    done = xl.ContentionResult("spin", 2, "threads", 2.0, waits=[[0.01], [0.9]], censored=[0.5])
    assert cut.row()["max_wait_open"] and cut.row()["still_waiting"] == 1
    assert not done.row()["max_wait_open"] and done.row()["max_wait_ms"] == pytest.approx(900)
    whole = xl.ContentionResult("spin", 2, "threads", 0.4, waits=[[0.01], [0.39]])
    assert whole.row()["max_wait_open"]  # as long as the run: the run's end bounds it
