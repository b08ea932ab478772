"""The notebook 04 rig: each driver measures what it says, on a real server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from labkit.experiments import streams as rig
from labkit.keys import namespace
from labkit.server import address
from labkit.streams import StreamQueue, Worker


@pytest.fixture
def single(single_client: Any) -> Iterator[tuple[Any, str]]:
    ns = namespace(single_client, "test-experiments-streams")
    ns.cleanup()
    yield single_client, ns.prefix
    ns.cleanup()


def test_ledger_fails_flaky_messages_once_and_crashes_on_schedule() -> None:
    ledger = rig.Ledger({(0, "w"): 2})
    ledger.start_tick(0)
    ledger.handle(1, "w")
    with pytest.raises(rig.Crash):
        ledger.handle(2, "w")  # the second message of the tick
    with pytest.raises(ValueError, match="downstream"):
        ledger.handle(3, "w")  # 3 % 10 == 3: the first delivery fails
    ledger.handle(3, "w")  # the second succeeds
    assert ledger.attempts == {1: 1, 3: 2}
    assert ledger.successes == [(1, "w", 0), (3, "w", 1)]  # one crash: its second life
    assert ledger.handled(min_life=1) == {3}
    assert ledger.handled(by_other_than="w") == set()


def test_defect_run_shows_q1_to_q3_on_the_article_and_none_on_labkit(single: Any) -> None:
    r, prefix = single
    runs = {v: rig.defect_run(r, prefix, v, ticks=4, per_tick=10, crash_a=1, crash_b=2)
            for v in rig.VARIANTS}  # fmt: skip
    naive_run, labkit_run = runs["naive"], runs["labkit"]
    # every tick adds one flaky message (n % 10 == 3); a crash holds the batch's last 3
    assert naive_run.held == {"worker-a": {12, 13, 14}, "worker-b": {22, 23, 24}}
    assert labkit_run.held == naive_run.held
    assert naive_run.stuck() == {"Q1": 2, "Q2": 3, "Q3": 3}  # 13 and 23 were never tried
    assert labkit_run.stuck() == {"Q1": 0, "Q2": 0, "Q3": 0}
    assert [row["pending"] for row in naive_run.timeline] == [1, 4, 7, 8]
    assert {row["pending"] for row in labkit_run.timeline} == {0}
    assert naive_run.errors_printed == 2
    assert labkit_run.deadline_hits == 0  # every step drained its group before its deadline
    rows = {row["defect"]: row for row in rig.defect_rows(naive_run, labkit_run)}
    assert "Q4" not in rows  # nothing to trim at this size: measured at scale in the notebook
    assert (rows["Q1-Q3"]["naive"], rows["Q1-Q3"]["labkit"]) == (8, 0)
    # a labkit Worker on the article's own stream and group drains it, and leaves the
    # article's run as its workers left it
    fixed = rig.takeover(r, naive_run)
    assert (fixed["pending before"], fixed["pending after"]) == (8, 0)
    assert fixed["stopped by deadline"] is False
    assert fixed["claimed"] >= 8
    assert naive_run.stuck() == {"Q1": 2, "Q2": 3, "Q3": 3}


def test_run_for_returns_a_number_instead_of_hanging_when_the_group_never_drains(
    single: Any,
) -> None:
    r, prefix = single
    queue = StreamQueue(r, prefix + "{stuck}", "g", max_deliveries=1_000)
    queue.setup()
    queue.add({"n": 1})

    def always_fails(message: Any) -> None:
        raise ValueError("downstream down")

    worker = Worker(queue, "w", always_fails, block_ms=5, min_idle_ms=0, claim_every_s=0.01,
                    exit_when_idle=True)  # fmt: skip
    stats, stopped = rig.run_for(worker, 0.3)
    assert stopped is True
    assert queue.pending().count == 1  # what a claim on "nothing pending" would see
    assert stats.failed >= 2
    quick = Worker(queue, "w2", lambda m: None, block_ms=5, min_idle_ms=0, exit_when_idle=True)
    assert rig.run_for(quick, 5.0)[1] is False  # drained: not stopped by the deadline
    with pytest.raises(ValueError, match="deadline_s"):
        rig.run_for(quick, 0)


def test_recording_handler_records_the_consumer_with_the_delivery(single: Any) -> None:
    r, prefix = single
    handle = rig.recording_handler(r, prefix + "seen", owner_key=prefix + "by", consumer="w1")
    queue = StreamQueue(r, prefix + "{rec}", "g")
    queue.setup()
    mid = queue.add({"n": 1})
    (message,) = queue.consume("w1", count=1)
    handle(message)
    handle(message)
    assert r.hgetall(prefix + "seen") == {mid: "2"}
    assert r.hgetall(prefix + "by") == {mid: "w1"}
    with pytest.raises(ValueError, match="owner_key"):
        rig.recording_handler(r, prefix + "seen", owner_key=prefix + "by")


def test_defect_run_refuses_bad_arguments_before_any_command(single: Any) -> None:
    r, prefix = single
    with pytest.raises(ValueError, match="variant"):
        rig.defect_run(r, prefix, "other")
    with pytest.raises(ValueError, match="crash_b"):
        rig.defect_run(r, prefix, "naive", ticks=4, crash_a=2, crash_b=2)
    assert not r.keys(prefix + "*")


def test_kill_workers_records_what_victims_held_and_that_it_was_handled_again(
    single: Any,
) -> None:
    r, prefix = single
    host, port = address(r)
    queue = StreamQueue(r, prefix + "orders", "g")
    queue.setup()
    run = rig.kill_workers(
        r, f"redis://{host}:{port}", queue, prefix + "seen", n_orders=1000, rate=2000,
        n_workers=2, kill_times=[0.1], seed=1,
        worker_opts={"count": 50, "block_ms": 50, "min_idle_ms": 200, "claim_every_s": 0.1},
    )  # fmt: skip
    assert len(run.kills) + run.not_done == 1
    assert min(run.held_per_victim) >= 1  # a victim that acked all before the kill is re-picked
    assert all(m["pending_it_held"] == 0 for m in run.missed)
    assert len(run.held) == run.kills[0]["pending_it_held"]
    assert set(run.held_by.values()) == {run.kills[0]["killed"]}
    assert run.handled_again == len(run.held)
    assert run.run_by_victim <= set(run.held)
    assert run.run_by_victim <= run.handled_twice  # run before the death, again after it
    assert run.handled_twice == {i for i, n in run.seen.items() if n > 1}
    # the server's record: every entry the victim held was last run by another consumer
    assert run.taken_over == len(run.held)
    assert set(run.handled_by) == set(run.ids)
    assert run.kills[0]["cleared_after_s"] >= 0
    assert run.timeline[-1]["victims_pending"] == 0
    assert run.lost == 0 and len(run.ids) == 1000


def test_throughput_handles_every_message_in_every_run(single: Any) -> None:
    r, prefix = single
    rows = rig.throughput(r, prefix, consumers=(1, 2), batches=(5,), n_messages=50,
                          work_s=0, repeats=2)  # fmt: skip
    assert [(row["consumers"], row["repeat"]) for row in rows] == [(1, 0), (2, 0), (1, 1), (2, 1)]
    assert all(row["msgs_per_s"] > 0 for row in rows)
    assert not r.keys(prefix + "bench:*:*")  # every bench stream deleted


def test_slow_handler_runs_a_message_twice_only_when_it_outlasts_min_idle(single: Any) -> None:
    r, prefix = single
    short = rig.slow_handler(r, prefix, slow_s=0.2, min_idle_ms=20)
    safe = rig.slow_handler(r, prefix, slow_s=0.2, min_idle_ms=600)
    assert short["run twice or more"] >= 1
    assert (safe["run twice or more"], safe["handler runs"]) == (0, 4)


def test_trim_unacked_loses_the_entry_a_worker_is_still_on(single: Any) -> None:
    r, prefix = single
    out = rig.trim_unacked(r, prefix, maxlen=100, more=500)
    assert out["unacked entry still stored"] is False
    assert out["still pending"] is True
    assert (out["handled after restart"], out["acked unhandled (trimmed)"]) == (0, 1)
    with pytest.raises(ValueError, match="policy"):
        rig.trim_unacked(r, prefix, policy="NEVER")


def test_trim_policies_probe_matches_the_server_and_leaves_no_key(single: Any) -> None:
    r, prefix = single
    version = tuple(int(p) for p in r.info("server")["redis_version"].split(".")[:2])
    assert rig.trim_policies_supported(r, prefix + "probe") == (version >= (8, 2))
    assert not r.exists(prefix + "probe")
    if version >= (8, 2):  # the ACKED run keeps the unacked entry
        out = rig.trim_unacked(r, prefix, policy="ACKED")
        assert out["unacked entry still stored"] is True
        assert out["handled after restart"] == 1


def test_reliable_list_keeps_a_dead_workers_item_until_requeued(single: Any) -> None:
    r, prefix = single
    lst = rig.ReliableList(r, prefix + "{jobs}")
    lst.push_many(["a", "b"])
    assert lst.take("w1") == "a"  # oldest first
    assert r.lrange(lst.processing("w1"), 0, -1) == ["a"]
    assert lst.take("w2") == "b"
    lst.done("w2", "b")
    assert lst.take("w2") is None  # w1's item is not visible to w2
    assert lst.requeue("w1") == 1
    assert lst.take("w2") == "a"


def test_list_vs_stream_counts_losses(single: Any) -> None:
    r, prefix = single
    out = rig.list_vs_stream(r, prefix, n_messages=100, crash_on=10, repeats=2)
    rows = {row["queue"]: row for row in out}
    assert set(rows) == set(rig.LIST_VARIANTS)
    assert all(row["msgs/s (1 worker, no handler work, median)"] > 0 for row in out)
    assert not r.keys(prefix + "speed*")  # the timed queues are deleted
    lpop, lmove, stream = rows["list + LPOP"], rows["list + LMOVE"], rows["stream + Worker"]
    assert (
        lpop["held by the dead worker"],
        lpop["lost, no help"],
        lpop["lost after a reaper"],
    ) == (1, 1, 1)
    assert (
        lmove["held by the dead worker"],
        lmove["lost, no help"],
        lmove["lost after a reaper"],
    ) == (1, 1, 0)
    assert stream["held by the dead worker"] >= 1
    assert (stream["lost, no help"], stream["lost after a reaper"]) == (0, 0)
    assert stream["held by the dead worker"] == 1  # count=1: one message per read, like the lists


def test_list_vs_stream_refuses_a_bad_count(single: Any) -> None:
    r, prefix = single
    with pytest.raises(ValueError, match="count"):
        rig.list_vs_stream(r, prefix, count=0)


def test_probe_refuses_an_empty_key(single: Any) -> None:
    r, _ = single
    with pytest.raises(ValueError, match="key"):
        rig.trim_policies_supported(r, "")
