"""The client and clock types shared by every pattern: the client, the clock, and telling a cluster apart.

``Client`` is what every pattern class takes first: a ``redis.Redis`` (single node) or a
``redis.cluster.RedisCluster``. Patterns keep each operation's keys in one hash slot, so the
same code runs on both. ``Clock`` is an injectable source of seconds (``time.time``,
``time.monotonic`` or a :class:`labkit.workloads.VirtualClock`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeAlias, TypeGuard

import redis
from redis.cluster import RedisCluster

Client: TypeAlias = "redis.Redis | RedisCluster"
Clock: TypeAlias = Callable[[], float]


def is_cluster(r: object) -> TypeGuard[RedisCluster]:
    """True when ``r`` is a ``redis.cluster.RedisCluster`` (the only cluster client labkit uses)."""
    return isinstance(r, RedisCluster)
