"""Notebook 09's experiments: buckets computed in separate processes (labkit's SHA-256 bucket
against the naive ``hash() % 100``), the rollout sweep over a population of users (labkit's
stable buckets, and the article's ``random()`` rollout), the count of users whose answer
flips from one request to the next, a learner's function run in another process, and
client-side caching by hand (``CLIENT TRACKING ... REDIRECT``) for a flag hash.

These drive :mod:`labkit.flags`; the pattern itself imports nothing from here.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import redis
from redis.cluster import RedisCluster

from labkit import checks, naive
from labkit.client import Client
from labkit.flags import FeatureFlags

# Run in a fresh interpreter: Python's hash() of a str is salted per process (PYTHONHASHSEED),
# which is exactly what the experiment shows.
_BUCKETS_SCRIPT = """
import json, sys
from labkit.flags import bucket
flag, n = sys.argv[1], int(sys.argv[2])
users = [f"user-{i}" for i in range(n)]
print(json.dumps({
    "naive": [hash(flag + u) % 100 for u in users],
    "labkit": [bucket(flag, u) for u in users],
}))
"""


def buckets_in_a_new_process(
    seed: int, flag: str = "new-checkout", users: int = 10_000
) -> dict[str, np.ndarray]:
    """Buckets of ``user-0 .. user-<users-1>`` computed by a new Python process.

    ``"naive"``: ``hash(flag + user) % 100`` (0..99); ``"labkit"``: ``labkit.flags.bucket``
    (0..9999). ``seed`` sets PYTHONHASHSEED, only so a run is repeatable: two app servers
    started without it get two random seeds.
    """
    env = {**os.environ, "PYTHONHASHSEED": str(seed)}
    out = subprocess.run(
        [sys.executable, "-c", _BUCKETS_SCRIPT, flag, str(users)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return {name: np.array(values) for name, values in json.loads(out.stdout).items()}


def disagreement(
    a: dict[str, np.ndarray], b: dict[str, np.ndarray], percents: Sequence[float]
) -> pd.DataFrame:
    """Percent of users who get a different answer from two processes, per rollout percent."""
    rollout = np.asarray(percents, dtype=float)
    return pd.DataFrame(
        {
            "naive hash() % 100": [
                np.mean((a["naive"] < p) != (b["naive"] < p)) * 100 for p in rollout
            ],
            "labkit bucket": [
                np.mean((a["labkit"] < p * 100) != (b["labkit"] < p * 100)) * 100 for p in rollout
            ],
        },
        index=pd.Index(np.asarray(percents), name="rollout %"),
    )


def rollout_sweep(
    flags: FeatureFlags,
    flag: str,
    population: Sequence[str],
    percents: Sequence[float],
    *,
    spot_every: int = 50,
) -> pd.DataFrame:
    """Set ``flag`` to each percent in turn and measure who is on.

    Per step: the enabled share (``is_enabled_many`` over the population), users turned off
    since the previous step, and how many of a spot sample (every ``spot_every``-th user)
    ``is_enabled`` answers differently from ``is_enabled_many``. Adds the error against the
    target and the binomial 3-sigma a fair coin per user would show.
    """
    spot = list(population[::spot_every])
    previous = np.zeros(len(population), dtype=bool)
    rows = []
    for p in percents:
        flags.set_rollout(flag, float(p))
        on = np.array(flags.is_enabled_many(flag, population))
        single = [flags.is_enabled(flag, u) for u in spot]
        rows.append(
            {
                "target %": p,
                "enabled %": on.mean() * 100,
                "turned off since last step": int((previous & ~on).sum()),
                f"is_enabled disagrees (of {len(spot)})": int(
                    sum(a != b for a, b in zip(single, on[::spot_every], strict=True))
                ),
            }
        )
        previous = on
    frame = pd.DataFrame(rows).set_index("target %")
    frame["error (points)"] = frame["enabled %"] - frame.index
    share = np.asarray(percents, dtype=float) / 100
    # a fair coin per user misses the target by sqrt(p(1-p)/n): the binomial sigma
    frame["3 sigma (points)"] = 3 * np.sqrt(share * (1 - share) / len(population)) * 100
    return frame


def users_who_flip(check: Callable[[str], bool], users: Sequence[str], requests: int) -> int:
    """How many of ``users`` get a different answer from ``check`` on two consecutive requests.

    Each user asks ``requests`` times in a row, as one page view after another would.
    """
    requests = checks.integer("requests", requests, low=2)
    flipped = 0
    for user in users:
        answers = [check(user) for _ in range(requests)]
        flipped += any(a != b for a, b in itertools.pairwise(answers))
    return flipped


def naive_rollout_sweep(
    flags: naive.FeatureFlags, flag: str, population: Sequence[str], percents: Sequence[float]
) -> pd.DataFrame:
    """The article's ``is_enabled_for_percentage`` at each percent in turn, once per user.

    The same columns as :func:`rollout_sweep`'s first two: the enabled share and the users
    who had the feature at the previous step and lost it at this one.
    """
    previous = np.zeros(len(population), dtype=bool)
    rows = []
    for p in percents:
        on = np.array([flags.is_enabled_for_percentage(flag, u, float(p)) for u in population])
        rows.append(
            {
                "target %": p,
                "enabled %": on.mean() * 100,
                "turned off since last step": int((previous & ~on).sum()),
            }
        )
        previous = on
    return pd.DataFrame(rows).set_index("target %")


# The learner's function arrives as source text and runs in a fresh interpreter with its own
# PYTHONHASHSEED: an answer that depends on hash() changes there, one from hashlib does not.
_CALL_SCRIPT = """
import hashlib, json, sys
spec = json.load(sys.stdin)
scope = {"hashlib": hashlib}
exec(spec["source"], scope)
function = scope[spec["function"]]
print(json.dumps([bool(function(*args)) for args in spec["calls"]]))
"""


def answers_in_a_new_process(
    source: str, function: str, calls: Sequence[Sequence[Any]], seed: int
) -> list[bool]:
    """``bool(function(*args))`` for each of ``calls``, computed by a new Python process.

    ``source`` defines ``function`` (``inspect.getsource`` of a notebook function; ``hashlib``
    is already imported for it). ``seed`` is that process's PYTHONHASHSEED, so its ``hash()``
    of a str differs from this process's, as another app server's would.
    """
    seed = checks.integer("seed", seed, low=0, high=4_294_967_295)
    spec = json.dumps({"source": source, "function": function, "calls": [list(a) for a in calls]})
    out = subprocess.run(
        [sys.executable, "-c", _CALL_SCRIPT],
        input=spec,
        env={**os.environ, "PYTHONHASHSEED": str(seed)},
        capture_output=True,
        text=True,
        check=True,
    )
    return [bool(answer) for answer in json.loads(out.stdout)]


_INVALIDATE_CHANNEL = "__redis__:invalidate"


def _node_kwargs(r: Client, key: str) -> dict[str, Any]:
    """Connection settings of the server that holds ``key`` (a cluster's node for its slot)."""
    if isinstance(r, RedisCluster):
        kwargs = r.get_node_from_key(key).redis_connection.connection_pool.connection_kwargs
    else:
        kwargs = r.connection_pool.connection_kwargs
    names = ("host", "port", "username", "password")
    return {name: kwargs[name] for name in names if name in kwargs}


def tracking_invalidation(
    r: Client, key: str, change: Callable[[], object], *, track: bool = True, timeout: float = 2.0
) -> dict[str, Any]:
    """Does a write to ``key`` reach a process that has it cached? Client-side caching by hand.

    A listener connection subscribes to ``__redis__:invalidate``; a reader connection sends
    ``CLIENT TRACKING on REDIRECT <listener id>`` (skipped when ``track`` is False: the
    control) and reads ``key`` with HGETALL, as a process filling its flag cache would. Then
    ``change()`` writes the key through any client. Returns ``delivered`` (the push naming
    ``key`` arrived within ``timeout`` s) and ``latency (ms)`` from the start of the write to
    the push (NaN when none came). Both connections go to the server holding ``key``.
    """
    timeout = checks.number("timeout", timeout, low=0, high=60, low_open=True)
    settings = _node_kwargs(r, key)
    # RESP2 on purpose: a RESP3 connection gets the invalidation as a push, which redis-py's
    # parser hands to its push handlers instead of returning it; REDIRECT is how a
    # RESP2 client receives them, as a pub/sub message on a second connection.
    listener = redis.Connection(**settings, protocol=2)
    reader = redis.Connection(**settings, protocol=2)
    try:
        listener.send_command("CLIENT", "ID")
        listener_id = int(listener.read_response())
        listener.send_command("SUBSCRIBE", _INVALIDATE_CHANNEL)
        listener.read_response()  # the subscribe confirmation
        if track:
            reader.send_command("CLIENT", "TRACKING", "on", "REDIRECT", listener_id)
            reader.read_response()
        reader.send_command("HGETALL", key)
        reader.read_response()
        start = time.perf_counter()
        change()
        deadline = start + timeout
        while (left := deadline - time.perf_counter()) > 0 and listener.can_read(timeout=left):
            kind, _channel, keys = listener.read_response()
            # keys None is "flush everything": the cached flag is gone too
            if kind == b"message" and (keys is None or key.encode() in keys):
                return {"delivered": True, "latency (ms)": (time.perf_counter() - start) * 1000}
        return {"delivered": False, "latency (ms)": float("nan")}
    finally:
        listener.disconnect()
        reader.disconnect()
