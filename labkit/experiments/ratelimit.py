"""Rate-limit experiments (notebook 05): replaying a trace of request times through a limiter.

A trace replay runs in virtual time (``now=`` on every hit), so an hour of traffic takes a
second and the same trace gives the same decisions on every run and every server.
"""

from __future__ import annotations

from collections.abc import Iterable

from labkit import checks
from labkit.client import is_cluster
from labkit.ratelimit import Decision, Limiter


def replay(
    limiter: Limiter, key: str, times: Iterable[float], cost: int = 1, *, batch: int = 1000
) -> list[Decision]:
    """``limiter.hit(key, cost, now=t)`` for each ``t`` in order, ``batch`` hits per round trip.

    Each hit is still one atomic script; pipelining only saves the waiting, so the decisions
    are exactly those of calling ``hit`` in a loop. Every argument (each time included) is
    checked before the first command is sent.
    """
    keys = limiter.keys(key)
    size = checks.integer("batch", batch, low=1)
    argv = [limiter._args(cost, t, True) for t in times]
    # redis-py refuses scripts in a cluster pipeline; all keys share one slot, so pipeline on
    # the node that owns it.
    client = limiter.r
    if is_cluster(client):
        client = client.get_redis_connection(client.get_node_from_key(keys[0]))
    out: list[Decision] = []
    for start in range(0, len(argv), size):
        pipe = client.pipeline(transaction=False)
        for args in argv[start : start + size]:
            limiter._script(keys=keys, args=args, client=pipe)
        out.extend(limiter._parse(reply) for reply in pipe.execute())
    return out
