"""labkit.experiments.ratelimit: the replays, judges and sweeps notebook 05 runs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

import labkit
from labkit import naive
from labkit.errors import LabkitError
from labkit.experiments import ratelimit as xr
from labkit.keys import Namespace
from labkit.ratelimit import SlidingLog, TokenBucket
from labkit.server import RedisServer, is_private
from labkit.workloads import poisson_arrivals


@pytest.fixture
def space(single_client: Any, request: pytest.FixtureRequest) -> Iterator[Namespace]:
    """A namespace on the single server (these drivers are single-node experiments)."""
    ns = labkit.namespace(single_client, "test-xr-" + request.node.name[:60].replace("[", "-").replace("]", ""))
    ns.cleanup()
    yield ns
    ns.cleanup()


def test_max_in_any_window_counts_the_half_open_span() -> None:
    assert xr.max_in_any_window([0.0, 0.5, 1.0, 1.2], 1.0) == 3  # (0.2, 1.2] holds 0.5, 1.0, 1.2
    assert xr.max_in_any_window([], 1.0) == 0
    with pytest.raises(ValueError, match="window"):
        xr.max_in_any_window([0.0], 0)


def test_judge_finds_false_allows_and_false_denies() -> None:
    times = [0.0, 0.1, 0.2, 1.5]
    false_allow, false_deny = xr.judge(times, [True, True, True, False], 2, 1.0)
    assert false_allow.tolist() == [False, False, True, False]  # the third had no room
    assert false_deny.tolist() == [False, False, False, True]  # the last had room
    with pytest.raises(ValueError, match="one flag per request"):
        xr.judge(times, [True], 2, 1.0)
    with pytest.raises(ValueError, match="must not decrease"):
        xr.judge([1.0, 0.0], [True, True], 2, 1.0)


def test_judge_gcra_is_rate_plus_burst_and_labkit_keeps_it(single_client: Any, space: Namespace) -> None:
    times = [0.0, 0.0, 0.0, 1.0, 1.5, 2.0]  # rate 1/s, burst 2, worked by hand
    right = [True, True, False, True, False, True]
    assert [a.sum() for a in xr.judge_gcra(times, right, 1.0, 2)] == [0, 0]
    false_allow, false_deny = xr.judge_gcra(times, [True, True, True, True, False, True], 1.0, 2)
    # the third had no room, and admitting it left no room for the requests at 1 s and 2 s
    assert false_allow.tolist() == [False, False, True, True, False, True] and not false_deny.any()
    bucket = TokenBucket(single_client, rate=1.0, burst=2, prefix=space.prefix_for("tb"))
    assert xr.allowed(xr.replay(bucket, "c", times)).tolist() == right
    with pytest.raises(ValueError, match="rate"):
        xr.judge_gcra(times, right, 0, 2)


def test_naive_replay_runs_the_article_and_restores_its_clock(single_client: Any, space: Namespace) -> None:
    real = naive.time
    article = naive.RateLimiter(single_client, prefix=space.prefix)
    steady = xr.T0 + np.arange(20) / 100
    assert xr.naive_replay(article, "half", steady, 5, 0.5).all()  # R3: EXPIRE 0
    assert naive.time is real
    with pytest.raises(ValueError, match="window must be whole seconds"):
        xr.naive_replay(naive.FixedWindowLimiter(single_client, prefix=space.prefix), "f", steady, 5, 0.5)
    with pytest.raises(TypeError, match="limiter"):
        xr.naive_replay(SlidingLog(single_client, 5, 1.0, prefix=space.prefix), "k", steady, 5, 1.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="must not decrease"):
        xr.naive_replay(article, "k", [2.0, 1.0], 5, 1.0)


def test_defect_runs_show_every_defect_beside_a_labkit_that_keeps_the_rule(
    single_client: Any, space: Namespace
) -> None:
    runs = xr.defect_runs(single_client, prefix=space.prefix)
    assert {row["defect"] for row in runs.rows} == {f"R{i}" for i in range(1, 8)}
    for row in runs.rows:
        if row["defect"] == "R6":
            assert row["naive"] > 100 * row["labkit"]  # a log of 1,000 entries vs two counts
        elif row["counted"].startswith("TTL"):  # real time: PTTL read after the hit, a stall shortens it
            assert 1.2 <= row["labkit"] <= 1.5 and 0.5 < row["naive"] <= 1.0, row  # EXPIRE int(1.5) = 1 s
        else:
            assert row["labkit"] == pytest.approx(row["the rule allows"], abs=0.01), row
            assert row["naive"] != pytest.approx(row["the rule allows"], abs=0.01), row
    assert runs.value("R1", "naive") == 0 and runs.value("R5", "naive") == 60
    assert runs.memory["labkit"][1_000] <= 2 * runs.memory["labkit"][10]
    with pytest.raises(ValueError, match="side"):
        runs.value("R1", "peer")


def test_decide_trace_and_accuracy_rows(single_client: Any, space: Namespace) -> None:
    times = poisson_arrivals(30, 5, seed=7)
    decided = xr.decide_trace(single_client, times, 10, 1.0, prefix=space.prefix)
    rows = {row["algorithm"]: row for row in xr.accuracy_rows("t", times, decided, 10, 1.0)}
    assert rows["sliding log"]["false allow %"] == rows["sliding log"]["false deny %"] == 0
    assert rows["token bucket"]["false allow %"] == rows["token bucket"]["false deny %"] == 0
    assert rows["token bucket"]["judged by"].startswith("GCRA")
    assert rows[xr.ARTICLE_LOG]["false deny %"] > 0  # R1: its rejections count
    assert (decided[xr.ARTICLE_FIXED] == decided["fixed window"]).all()  # the same algorithm


def test_peer_replay_decides_like_labkit(single_client: Any, space: Namespace) -> None:
    times = xr.T0 + poisson_arrivals(30, 3, seed=3)
    moving, fixed = xr.peer_replay(single_client, times, 10, 1, key_prefix=space.key("limits"))
    log = xr.allowed(xr.replay(SlidingLog(single_client, 10, 1.0, prefix=space.prefix), "c", times))
    assert moving == log.tolist() and 0 < sum(fixed) < len(times)


def test_cost_sweep_times_decisions_and_the_worst_case() -> None:
    with RedisServer() as server:
        r = server.client()
        sweep = xr.cost_sweep(r, [10, 2_000], prefix="lab:test:", decisions=5, repeats=1, copies=1)
    assert len(sweep.cost) == 2 * 7 and all(row["server µs per decision"] > 0 for row in sweep.cost)
    worst = {row["limit"]: row for row in sweep.worst}
    assert worst[2_000]["entries that expired"] == 2_000
    control = "control: remove every expired entry (server µs)"
    assert worst[2_000][control] > worst[10][control]  # removing 2,000 entries vs 10
    assert worst[2_000]["labkit: first decision (server µs)"] > 0


def test_cost_sweep_refuses_a_shared_server(single_client: Any) -> None:
    if is_private(single_client):
        pytest.skip("connect() started a private server here")
    with pytest.raises(LabkitError, match="commandstats"):
        xr.cost_sweep(single_client, [10], prefix="lab:test:")


def test_http_replay_tells_the_true_wait_beside_the_article(single_client: Any, space: Namespace) -> None:
    from flask import Flask

    from labkit.workloads import VirtualClock

    clock, limiter = VirtualClock(xr.T0), SlidingLog(single_client, 2, 10.0, prefix=space.prefix_for("app"))
    app = Flask("test-http-replay")

    @app.get("/r")
    def view() -> Any:
        from flask import request

        decision = limiter.hit(request.headers["X-Api-Key"], now=clock())
        return ("no", 429, decision.headers(2)) if not decision.allowed else ("ok", 200, decision.headers(2))

    article = naive.RateLimiter(single_client, prefix=space.prefix_for("article"))
    sent = [("a", 0), ("a", 4), ("a", 6), ("a", 9), ("b", 9)]
    rows = xr.http_replay(app.test_client(), article, sent, limit=2, period=10, clock=clock, path="/r")
    assert [row["status"] for row in rows] == [200, 200, 429, 429, 200]
    assert [row["Retry-After (labkit)"] for row in rows] == ["", "", "4", "1", ""]
    assert [row["true wait (s)"] for row in rows] == ["", "", 4, 1, ""]
    assert [row["retry_after (article)"] for row in rows][2:4] == [10, 10]  # R5: the whole period
    with pytest.raises(TypeError, match="clock"):
        xr.http_replay(app.test_client(), article, sent, limit=2, period=10, clock=object())
    with pytest.raises(ValueError, match="must not decrease"):
        xr.http_replay(app.test_client(), article, [("a", 5), ("a", 1)], limit=2, period=10, clock=clock)
