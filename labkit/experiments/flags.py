"""Notebook 09's experiments: buckets computed in separate processes (labkit's SHA-256 bucket
against the naive ``hash() % 100``), the rollout sweep over a population of users (labkit's
stable buckets, and the article's ``random()`` rollout), and the count of users whose answer
flips from one request to the next.

These drive :mod:`labkit.flags`; the pattern itself imports nothing from here.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from labkit import checks, naive
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
