"""Measuring what a pattern costs: latency samples and round trips.

``time_calls`` times a callable many times (perf_counter, after a warm-up) and returns the
samples; ``summarize`` turns samples into the percentiles the notebooks report.
``counting_client`` gives a client whose every network round trip is counted on the client
side, exactly: a pipeline of 100 commands counts 1, a GET-then-SET counts 2.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import redis

from labkit.client import is_cluster


def time_calls(fn: Callable[[], object], n: int, *, warmup: int = 20) -> np.ndarray:
    """Seconds taken by each of ``n`` calls of ``fn`` (after ``warmup`` untimed calls)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if warmup < 0:
        raise ValueError(f"warmup must be >= 0, got {warmup}")
    for _ in range(warmup):
        fn()
    samples = np.empty(n)
    clock = time.perf_counter
    for i in range(n):
        t0 = clock()
        fn()
        samples[i] = clock() - t0
    return samples


def summarize(samples: np.ndarray, unit: float = 1e-6) -> dict[str, float]:
    """p50, p90, p99, mean, min and max of ``samples`` expressed in ``unit`` (default µs)."""
    values = np.asarray(samples, dtype=float) / unit
    if values.size == 0:
        raise ValueError("samples is empty")
    return {
        "p50": float(np.percentile(values, 50)),
        "p90": float(np.percentile(values, 90)),
        "p99": float(np.percentile(values, 99)),
        "mean": float(values.mean()),
        "min": float(values.min()),
        "max": float(values.max()),
    }


class RoundTripCounter:
    """How many requests a client sent (one per command, one per pipeline)."""

    def __init__(self) -> None:
        self.count = 0

    def reset(self) -> None:
        self.count = 0


def _cluster_kwargs(node_kwargs: dict[str, Any]) -> dict[str, Any]:
    keep = ("decode_responses", "username", "password", "socket_timeout", "encoding")
    return {k: node_kwargs[k] for k in keep if k in node_kwargs}


def counting_client(r: Any) -> tuple[Any, RoundTripCounter]:
    """A new client to the same server (or cluster) as ``r`` that counts its round trips.

    Connection handshakes are not counted, so it counts only your calls. On a cluster a
    pipeline costs one round trip per node it touches.
    """
    counter = RoundTripCounter()

    class CountingConnection(redis.Connection):
        def send_packed_command(self, command: Any, check_health: bool = True) -> None:
            counter.count += 1
            super().send_packed_command(command, check_health)

        def connect(self) -> None:
            # The handshake (CLIENT SETINFO, AUTH, ...) is not the caller's round trip.
            before = counter.count
            super().connect()
            counter.count = before

    client: Any
    if is_cluster(r):  # a cluster: every node's pool counts into one total
        from redis.cluster import RedisCluster

        node = r.get_default_node()
        client = RedisCluster.from_url(
            f"redis://{node.host}:{node.port}",
            connection_class=CountingConnection,
            **_cluster_kwargs(node.redis_connection.connection_pool.connection_kwargs),
        )
    else:
        pool = redis.ConnectionPool(
            connection_class=CountingConnection, **r.connection_pool.connection_kwargs
        )
        client = redis.Redis(connection_pool=pool)
    client.ping()
    counter.reset()
    return client, counter
