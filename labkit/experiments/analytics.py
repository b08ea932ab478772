"""Notebook 07's experiments: the event sample, the unique-user trade-off sweep (memory and
error of SET, HyperLogLog and bitmap from 10^3 to 10^6 users), and DAU/WAU/MAU windows
checked against pandas.

These drive :class:`labkit.analytics.Analytics`; the pattern itself imports nothing from
here (and no numpy: its bulk loader takes any integer array by duck typing).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from labkit import data_path
from labkit.analytics import METHODS, Analytics
from labkit.keys import Namespace, escape_glob, scan_unlink


def load_events() -> pd.DataFrame:
    """The event sample (``data/events_sample.csv.gz``: event, user_id, ts, platform, ...)
    with a ``day`` column: the UTC calendar day of ``ts``, as ``Analytics`` counts it."""
    events = pd.read_csv(data_path("events_sample.csv.gz"))
    events["day"] = pd.to_datetime(events["ts"], unit="s", utc=True).dt.strftime("%Y-%m-%d")
    return events


def unique_user_tradeoff(
    ns: Namespace,
    sizes: Sequence[int],
    *,
    id_space: int,
    day: str,
    rng: np.random.Generator,
    methods: Sequence[str] = METHODS,
) -> pd.DataFrame:
    """Load ``n`` distinct random ids (from ``0 .. id_space - 1``) into one day of each
    method, for every ``n`` in ``sizes``; measure the count, its error, the memory and the
    load time. Each structure is deleted right after it is measured (a million-member SET
    is ~50 MB).

    Columns: users, method, estimate, relative error %, bytes (MEMORY USAGE), value bytes
    (STRLEN of the HLL), load (s).
    """
    rows = []
    for n in sizes:
        ids = rng.choice(id_space, size=n, replace=False)
        for method in methods:
            counter = Analytics(ns.r, prefix=ns.key("tradeoff", n, method) + ":", methods=(method,))
            started = time.perf_counter()
            counter.add_users(day, ids, batch=50_000)
            load = time.perf_counter() - started
            estimate = counter.unique_users(day)
            value_bytes = ns.r.strlen(counter.key(day, "hll")) if method == "hll" else None
            rows.append(
                {
                    "users": n,
                    "method": method,
                    "estimate": estimate,
                    "relative error %": 100 * (estimate - n) / n,
                    "bytes": counter.memory_usage(day),
                    "value bytes": value_bytes,
                    "load (s)": load,
                }
            )
            scan_unlink(ns.r, escape_glob(ns.key("tradeoff", n, method)) + "*")
    return pd.DataFrame(rows)


def active_user_windows(
    analytics: Analytics,
    events: pd.DataFrame,
    windows: Mapping[str, int],
    *,
    first: int = 6,
) -> pd.DataFrame:
    """``active_users`` for every window (e.g. DAU 1, WAU 7, MAU 30 days) ending on each day
    of ``events`` from the ``first``-th on, with the exact answer from pandas beside it.

    Columns: day, window, exact (pandas), one per method the ``Analytics`` maintains, and
    ``hll error %`` when it maintains the HLL.
    """
    users_on = events.groupby("day")["user_id"].agg(set)
    days = list(users_on.index)
    rows = []
    for i in range(first, len(days)):
        for name, span in windows.items():
            exact = len(set().union(*users_on.iloc[max(0, i - span + 1) : i + 1]))
            row: dict[str, object] = {
                "day": pd.Timestamp(days[i]),
                "window": name,
                "exact (pandas)": exact,
            }
            for method in analytics.methods:
                row[method] = analytics.active_users(days[i], span, method)
            rows.append(row)
    frame = pd.DataFrame(rows)
    if "hll" in analytics.methods:
        exact_col = frame["exact (pandas)"]
        frame["hll error %"] = 100 * (frame["hll"] - exact_col) / exact_col
    return frame
