"""Seeded workloads and a virtual clock, so every experiment is reproducible.

Every generator takes a ``seed`` and returns the same trace for the same arguments. Times
are seconds (float). Nothing here talks to Redis.

- ``zipf_keys``: key popularity that follows a bounded Zipf law, the shape of web request
  popularity (Breslau et al., INFOCOM 1999: exponent 0.64-0.83).
- ``poisson_arrivals``: independent requests at a steady mean rate.
- ``bursty_arrivals``: an on/off modulated Poisson process: quiet stretches, then bursts.
- ``VirtualClock``: a clock you advance by hand, injected where code reads the time.
"""

from __future__ import annotations

import numpy as np


def _check_positive(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, not {type(value).__name__}")
    if not value > 0:
        raise ValueError(f"{name} must be > 0, got {value}")


def zipf_weights(n_keys: int, alpha: float) -> np.ndarray:
    """Probability of each key rank 0..n_keys-1 under a bounded Zipf law (rank 0 hottest)."""
    _check_positive("n_keys", n_keys)
    if alpha < 0:
        raise ValueError(f"alpha must be >= 0, got {alpha}")
    weights = 1.0 / np.arange(1, int(n_keys) + 1) ** alpha
    return weights / weights.sum()


def zipf_keys(n_keys: int, n_requests: int, alpha: float, seed: int) -> np.ndarray:
    """``n_requests`` key ids in ``0..n_keys-1``; key k is requested with weight 1/(k+1)^alpha.

    ``alpha = 0`` is uniform; larger alpha concentrates traffic on the first few keys.
    """
    _check_positive("n_requests", n_requests)
    rng = np.random.default_rng(seed)
    return rng.choice(int(n_keys), size=int(n_requests), p=zipf_weights(n_keys, alpha))


def poisson_arrivals(rate: float, duration: float, seed: int, start: float = 0.0) -> np.ndarray:
    """Sorted arrival times in ``[start, start + duration)`` at mean ``rate`` per second."""
    _check_positive("rate", rate)
    _check_positive("duration", duration)
    rng = np.random.default_rng(seed)
    expected = rate * duration
    gaps = rng.exponential(1.0 / rate, size=int(expected + 10 * np.sqrt(expected) + 20))
    times = start + np.cumsum(gaps)
    while times[-1] < start + duration:  # rare: draw more until the span is covered
        more = times[-1] + np.cumsum(rng.exponential(1.0 / rate, size=len(gaps)))
        times = np.concatenate([times, more])
    return times[times < start + duration]


def bursty_arrivals(
    base_rate: float,
    burst_rate: float,
    duration: float,
    seed: int,
    *,
    burst_every: float = 10.0,
    burst_length: float = 1.0,
    start: float = 0.0,
) -> np.ndarray:
    """Poisson traffic at ``base_rate`` with bursts at ``burst_rate`` per second.

    Bursts last ``burst_length`` seconds and start at random times, on average once every
    ``burst_every`` seconds.
    """
    for name, value in (
        ("base_rate", base_rate),
        ("burst_rate", burst_rate),
        ("burst_every", burst_every),
        ("burst_length", burst_length),
    ):
        _check_positive(name, value)
    rng = np.random.default_rng(seed)
    times = [poisson_arrivals(base_rate, duration, seed=int(rng.integers(2**31)), start=start)]
    t = start + rng.exponential(burst_every)
    while t < start + duration:
        length = min(burst_length, start + duration - t)
        times.append(poisson_arrivals(burst_rate, length, seed=int(rng.integers(2**31)), start=t))
        t += burst_length + rng.exponential(burst_every)
    return np.sort(np.concatenate(times))


class VirtualClock:
    """A clock that moves only when told to: ``clock()`` reads it, ``advance(dt)`` moves it.

    Pass ``clock`` wherever labkit accepts a ``Clock`` (any zero-argument callable returning
    seconds) to make time-dependent code reproducible. ``sleep`` advances instead of waiting.
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)

    def __call__(self) -> float:
        return self._now

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> float:
        if seconds < 0:
            raise ValueError(f"seconds must be >= 0, got {seconds}")
        self._now += seconds
        return self._now

    sleep = advance

    def set(self, when: float) -> None:
        if when < self._now:
            raise ValueError(f"a clock cannot go back: {when} < {self._now}")
        self._now = float(when)

    def __repr__(self) -> str:
        return f"VirtualClock({self._now})"
