"""Experiments for notebook 01 (caching): trace replay, exact LRU, the TTL-cache model, and
stampede measurement.

- ``replay(streams, value, times=...)``: a key trace replayed against real servers, in real
  time (so Redis's own expiry and eviction decide every hit) or flat out;
- ``lru_hits(trace, capacity)``: exact LRU simulated in Python, the yardstick for Redis's
  sampled LRU;
- ``ttl_hit_ratio(weights, rate, ttl)``: the textbook hit ratio of a TTL cache under
  Poisson requests;
- ``hammer(call, n_threads, duration)`` and ``recompute_bursts(starts, window)``: drive a
  ``labkit.cache.CacheAside`` from many threads and count the loads each expiry caused.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from labkit import checks
from labkit.client import Client


@dataclass(frozen=True)
class Stream:
    """One trace to replay: ``keys[i]`` is requested at ``times[i]`` on client ``r``.

    Each request is ``SET key value NX GET PX ttl_ms``: one command that returns the cached
    value (a hit) or stores ``value`` (a miss, then the entry lives ``ttl_ms``), which is
    cache-aside's get-then-set in one atomic step, so a pipeline of them has the same
    semantics as issuing them one by one. Needs Redis/Valkey >= 7.0 (SET with NX and GET).
    """

    r: Client
    keys: Sequence[str]
    ttl_ms: int


def replay(
    streams: Sequence[Stream],
    value: str,
    *,
    times: np.ndarray | None = None,
    chunk: int = 200,
    progress: bool = False,
) -> list[np.ndarray]:
    """Replay every stream (all the same length) and return one hit/miss array per stream.

    With ``times`` (seconds from the start, sorted) requests go out in real time: each loop
    sends every request whose time has come, one pipeline per client, so expiry and eviction
    happen on the server's own clock. Without ``times`` requests go out as fast as possible
    in pipelines of ``chunk``. A pipeline holds few commands, so client query buffers stay
    small (they count towards ``maxmemory``).
    """
    if not streams:
        raise ValueError("streams must not be empty")
    n = len(streams[0].keys)
    if any(len(s.keys) != n for s in streams):
        raise ValueError("every stream must have the same number of keys")
    if times is not None and len(times) != n:
        raise ValueError(f"times must have one entry per request ({n}), got {len(times)}")
    chunk = checks.integer("chunk", chunk, low=1)
    for stream in streams:
        checks.integer("ttl_ms", stream.ttl_ms, low=1, high=checks.MAX_MS)
    by_client: dict[int, list[int]] = {}
    for index, stream in enumerate(streams):
        by_client.setdefault(id(stream.r), []).append(index)
    hits = [np.zeros(n, dtype=bool) for _ in streams]
    bar = _progress_bar(n) if progress else None
    start, done = time.perf_counter(), 0
    while done < n:
        if times is None:
            upto = min(n, done + chunk)
        else:
            upto = int(np.searchsorted(times, time.perf_counter() - start, side="right"))
            upto = min(upto, done + chunk)
            if upto == done:
                time.sleep(max(0.0, min(0.002, times[done] - (time.perf_counter() - start))))
                continue
        for indexes in by_client.values():
            pipe = streams[indexes[0]].r.pipeline(transaction=False)
            for index in indexes:
                stream = streams[index]
                for key in stream.keys[done:upto]:
                    pipe.set(key, value, nx=True, get=True, px=stream.ttl_ms)
            replies = pipe.execute()
            for slot, index in enumerate(indexes):
                part = replies[slot * (upto - done) : (slot + 1) * (upto - done)]
                hits[index][done:upto] = [reply is not None for reply in part]
        if bar is not None:
            bar.update(upto - done)
        done = upto
    if bar is not None:
        bar.close()
    return hits


def _progress_bar(total: int) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="req", leave=False)


def lru_hits(trace: Sequence[Any] | np.ndarray, capacity: int) -> np.ndarray:
    """Exact LRU in Python: which requests of ``trace`` hit a cache of ``capacity`` keys."""
    capacity = checks.integer("capacity", capacity, low=1)
    cache: OrderedDict[Any, None] = OrderedDict()
    hits = np.zeros(len(trace), dtype=bool)
    for i, key in enumerate(trace):
        if key in cache:
            cache.move_to_end(key)
            hits[i] = True
        else:
            cache[key] = None
            if len(cache) > capacity:
                cache.popitem(last=False)
    return hits


def ttl_hit_ratio(weights: np.ndarray, rate: float, ttl: float) -> float:
    """Expected hit ratio of a TTL cache (no refresh on hit) under Poisson requests.

    Key k is requested at ``rate * weights[k]`` per second; each miss starts a ``ttl``-long
    window whose requests all hit, so key k hits with probability ``x / (1 + x)``,
    ``x = rate * weights[k] * ttl``.
    """
    x = rate * np.asarray(weights, dtype=float) * ttl
    return float(np.sum(np.asarray(weights) * x / (1 + x)))


def hammer(
    call: Callable[[], object], n_threads: int, duration: float, think: float = 0.001
) -> int:
    """Call ``call`` from ``n_threads`` threads for ``duration`` seconds, pausing ``think``
    seconds between calls; return how many calls completed. Threads start together."""
    n_threads = checks.integer("n_threads", n_threads, low=1, high=10_000)
    duration = checks.seconds("duration", duration)
    think = checks.seconds("think", think, allow_zero=True)
    barrier = threading.Barrier(n_threads)
    counts = [0] * n_threads
    errors: list[BaseException] = []

    def run(slot: int) -> None:
        barrier.wait()
        stop = time.perf_counter() + duration
        try:
            while time.perf_counter() < stop:
                call()
                counts[slot] += 1
                time.sleep(think)
        except BaseException as exc:  # re-raised in the caller's thread below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(slot,)) for slot in range(n_threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return sum(counts)


def recompute_bursts(starts: Sequence[float], window: float) -> list[int]:
    """Group loader start times into bursts: a load starting within ``window`` seconds of
    the first load of the current burst joins it. Returns the size of each burst, i.e. the
    recomputations each expiry (or early refresh) caused."""
    bursts: list[int] = []
    first = -math.inf
    for t in sorted(starts):
        if t - first <= window:
            bursts[-1] += 1
        else:
            bursts.append(1)
            first = t
    return bursts
