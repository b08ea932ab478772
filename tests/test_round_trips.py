"""labkit.experiments.round_trips: fair timing, the MULTI/EXEC interleaving, lost updates."""

from __future__ import annotations

from typing import Any

import pytest

from labkit.experiments import round_trips as rt
from labkit.keys import Namespace


def test_interleaved_times_every_call_round_robin() -> None:
    order: list[str] = []
    calls = {name: (lambda name=name: order.append(name)) for name in "abc"}
    samples = rt.interleaved(calls, 3, warmup=0)
    assert {name: s.shape for name, s in samples.items()} == {n: (3,) for n in "abc"}
    # The first call of each round rotates, so no variant always runs first.
    assert order == list("abc" "bca" "cab")
    with pytest.raises(ValueError, match="rounds"):
        rt.interleaved(calls, 0)
    with pytest.raises(ValueError, match="calls"):
        rt.interleaved({}, 3)


def test_server_usec_is_the_mean_over_the_calls_between_readings(r: Any, ns: Namespace) -> None:
    before = rt.command_stats(r)
    for _ in range(20):
        r.get(ns.key("x"))
    after = rt.command_stats(r)
    assert after["get"][0] - before.get("get", (0, 0))[0] >= 20
    assert rt.server_usec(before, after, "get") >= 0
    assert rt.server_usec(before, before, "get") != rt.server_usec(before, before, "get")  # nan


def test_a_plain_pipeline_is_interleaved_and_a_transaction_is_not(r: Any, ns: Namespace) -> None:
    log, gate = ns.key("{il}:log"), ns.key("{il}:gate")
    plain = rt.interleaving(r, log, gate, transaction=False)
    assert plain.seen == ["A1"] and plain.final == ["A1", "B1", "A2"]
    multi = rt.interleaving(r, log, gate, transaction=True)
    assert multi.seen == ["A1", "A2"] and multi.final == ["A1", "A2", "B1"]
    assert ns.keys() == []


def test_plain_read_modify_write_loses_updates_watch_and_lua_do_not(
    r: Any, ns: Namespace
) -> None:
    key = ns.key("doc")
    plain = rt.contend(r, key, rt.plain_update(0.0005), threads=4, per_thread=25)
    assert plain.lost > 0 and plain.retries == 0
    watched = rt.contend(r, key, rt.watch_update(0.0005), threads=4, per_thread=25)
    assert watched.lost == 0 and watched.final == 100 and watched.retries > 0
    scripted = rt.contend(r, key, rt.lua_update(), threads=4, per_thread=25)
    assert scripted.lost == 0 and scripted.retries == 0


def test_round_trips_per_update(r: Any, ns: Namespace) -> None:
    key = ns.key("doc")
    assert rt.trips_per_update(r, key, rt.plain_update()) == 2
    assert rt.trips_per_update(r, key, rt.watch_update()) == 3  # WATCH, GET, MULTI+SET+EXEC
    assert rt.trips_per_update(r, key, rt.lua_update()) == 1


def test_traced_counts_round_trips_and_server_commands(r: Any, ns: Namespace) -> None:
    def three_sets(client: Any) -> None:
        pipe = client.pipeline(transaction=False)
        for i in range(3):
            pipe.set(ns.key("{t}", i), i)
        pipe.execute()

    trips, sets = rt.traced(r, three_sets, "set")
    assert sets >= 3
    assert trips == 1  # the keys share a hash tag, so a cluster sends the batch to one node
    assert rt.traced(r, lambda client: None, "set")[0] == 0


def test_concurrently_runs_every_call_and_reraises() -> None:
    results, seconds = rt.concurrently(lambda t, i: (t, i), threads=3, per_thread=4)
    assert sorted(results) == [(t, i) for t in range(3) for i in range(4)] and seconds >= 0

    def boom(t: int, i: int) -> None:
        if t == 1 and i == 2:
            raise KeyError("thread 1 failed")

    with pytest.raises(KeyError, match="thread 1 failed"):
        rt.concurrently(boom, threads=3, per_thread=4)
    with pytest.raises(ValueError, match="threads"):
        rt.concurrently(lambda t, i: None, threads=0)


def test_interleaved_calls_after_round_outside_the_timing() -> None:
    ticks: list[int] = []
    samples = rt.interleaved({"a": lambda: None}, 4, warmup=1, after_round=lambda: ticks.append(1))
    assert len(ticks) == 4 and samples["a"].shape == (4,)


def test_foreign_writes_land_inside_a_plain_batch_never_inside_multi(r: Any, ns: Namespace) -> None:
    result = rt.foreign_writes(r, ns.key("fw"), batch=5_000, attempts=1, max_attempts=10)
    assert result[True].inside == 0 and result[True].attempts == result[False].attempts
    assert result[False].inside > 0  # the writer ran concurrently with the plain batches
    assert result[True].outside > 0  # ... and during the transaction arm too
    assert ns.keys() == []
    with pytest.raises(ValueError, match="max_attempts"):
        rt.foreign_writes(r, ns.key("fw"), attempts=3, max_attempts=2)
