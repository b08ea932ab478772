"""labkit.workloads: seeded, reproducible traces and a virtual clock."""

from __future__ import annotations

import numpy as np
import pytest

from labkit.workloads import (
    VirtualClock,
    bursty_arrivals,
    poisson_arrivals,
    zipf_keys,
    zipf_weights,
)


def test_zipf_is_reproducible_and_skewed() -> None:
    a = zipf_keys(1000, 20000, 1.0, seed=7)
    assert np.array_equal(a, zipf_keys(1000, 20000, 1.0, seed=7))
    assert not np.array_equal(a, zipf_keys(1000, 20000, 1.0, seed=8))
    assert a.min() >= 0 and a.max() < 1000
    counts = np.bincount(a, minlength=1000)
    assert counts[0] > counts[9] > counts[500]


def test_higher_alpha_concentrates_traffic() -> None:
    top10 = [zipf_weights(1000, alpha)[:10].sum() for alpha in (0.0, 0.6, 0.8, 1.0)]
    assert top10 == sorted(top10)
    assert top10[0] == pytest.approx(0.01)


def test_poisson_rate_and_span() -> None:
    times = poisson_arrivals(200.0, 50.0, seed=1, start=10.0)
    assert np.all(np.diff(times) >= 0)
    assert times[0] >= 10.0 and times[-1] < 60.0
    assert len(times) == pytest.approx(10000, rel=0.05)


def test_bursty_has_more_traffic_than_its_base() -> None:
    base = poisson_arrivals(10.0, 100.0, seed=3)
    bursty = bursty_arrivals(10.0, 200.0, 100.0, seed=3, burst_every=10.0, burst_length=1.0)
    assert np.all(np.diff(bursty) >= 0)
    assert len(bursty) > 2 * len(base)
    assert np.array_equal(bursty, bursty_arrivals(10.0, 200.0, 100.0, seed=3))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rate": 0, "duration": 1, "seed": 1}, "rate must be > 0"),
        ({"rate": 1, "duration": -1, "seed": 1}, "duration must be > 0"),
    ],
)
def test_bad_arrival_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        poisson_arrivals(**kwargs)


def test_bad_zipf_arguments() -> None:
    with pytest.raises(ValueError, match="n_keys must be > 0"):
        zipf_keys(0, 10, 1.0, seed=1)
    with pytest.raises(ValueError, match="alpha must be >= 0"):
        zipf_keys(10, 10, -1.0, seed=1)
    with pytest.raises(TypeError, match="n_requests must be a number"):
        zipf_keys(10, "10", 1.0, seed=1)  # type: ignore[arg-type]


def test_virtual_clock_moves_only_forward() -> None:
    clock = VirtualClock(100.0)
    assert clock() == 100.0
    clock.advance(0.25)
    clock.sleep(0.25)
    assert clock.now() == 100.5
    with pytest.raises(ValueError, match="seconds must be >= 0"):
        clock.advance(-1)
    with pytest.raises(ValueError, match="cannot go back"):
        clock.set(50.0)
