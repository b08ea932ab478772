"""labkit.measure and labkit.plots: counting round trips, timing, one chart style."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import redis

from labkit.keys import Namespace
from labkit.measure import counting_client, summarize, time_calls
from labkit.plots import chart, color, finish


def test_counting_client_counts_round_trips_not_commands(r: redis.Redis, ns: Namespace) -> None:
    client, trips = counting_client(r)
    client.set(ns.key("a"), 1)
    client.get(ns.key("a"))
    assert trips.count == 2
    trips.reset()
    pipe = client.pipeline(transaction=False)
    for _i in range(100):
        pipe.incr(ns.key("n"))
    pipe.execute()
    assert trips.count == 1
    assert client.get(ns.key("n")) == "100"


def test_time_calls_and_summary() -> None:
    samples = time_calls(lambda: None, 50, warmup=0)
    assert samples.shape == (50,) and np.all(samples >= 0)
    stats = summarize(np.array([1e-6, 2e-6, 3e-6]))
    assert stats["p50"] == pytest.approx(2.0)
    assert stats["min"] == pytest.approx(1.0) and stats["max"] == pytest.approx(3.0)
    with pytest.raises(ValueError, match="n must be >= 1"):
        time_calls(lambda: None, 0)
    with pytest.raises(ValueError, match="samples is empty"):
        summarize(np.array([]))


def test_chart_is_titled_and_labelled() -> None:
    _fig, ax = chart("Latency", "pipeline depth (commands)", "ops/s", logx=True)
    ax.plot([1, 2], [3, 4], label="labkit", color=color("labkit"))
    finish(ax)
    assert ax.get_title() == "Latency" and ax.get_xscale() == "log"
    assert ax.get_legend() is not None
    with pytest.raises(ValueError, match="ylabel must be a non-empty string"):
        chart("t", "x", "")


def test_colours_are_stable_per_variant() -> None:
    assert color("notify") == color("notify")
    assert color("labkit") != color("naive")
