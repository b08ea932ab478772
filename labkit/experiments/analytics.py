"""Notebook 07's experiments: the event sample, the article's tracker replayed on a chosen
server clock, the unique-user trade-off sweep (memory and error of SET, HyperLogLog and
bitmap from 10^3 to 10^6 users), DAU/WAU/MAU windows checked against pandas, and what a
multi-day union copies through the client on a cluster.

These drive :class:`labkit.analytics.Analytics`; the pattern itself imports nothing from
here (and no numpy: its bulk loader takes any integer array by duck typing).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from types import SimpleNamespace
from typing import Any
from unittest import mock
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from labkit import data_path, naive
from labkit.analytics import METHODS, Analytics
from labkit.client import Client
from labkit.keys import Namespace, escape_glob, scan_unlink


def load_events() -> pd.DataFrame:
    """The event sample (``data/events_sample.csv.gz``: event, user_id, ts, platform, ...)
    with a ``day`` column: the UTC calendar day of ``ts``, as ``Analytics`` counts it."""
    events = pd.read_csv(data_path("events_sample.csv.gz"))
    events["day"] = pd.to_datetime(events["ts"], unit="s", utc=True).dt.strftime("%Y-%m-%d")
    return events


def naive_replay(
    tracker: naive.RedisAnalytics,
    rows: Iterable[Mapping[str, Any]],
    *,
    zone: str,
    arrival: float | None = None,
) -> int:
    """Feed ``rows`` (event, user_id, ts, ...) to the article's ``track_event`` as a server in
    time zone ``zone`` would: ``time.time()`` and ``time.strftime`` inside ``labkit.naive``
    read a clock standing at the moment the event arrives, each row's own ``ts`` (recorded
    live) or the one instant ``arrival`` (a backlog drained at once). Nothing else changes:
    the article's commands, in its order. Returns how many events were sent.
    """
    local = ZoneInfo(zone)
    clock = SimpleNamespace(now=0.0)
    fake_time = SimpleNamespace(
        time=lambda: clock.now,
        strftime=lambda fmt: datetime.fromtimestamp(clock.now, tz=local).strftime(fmt),
    )
    sent = 0
    with mock.patch.object(naive, "time", fake_time):
        for row in rows:
            clock.now = float(row["ts"] if arrival is None else arrival)
            extra = {k: v for k, v in row.items() if k not in ("event", "user_id", "ts")}
            tracker.track_event(row["event"], row["user_id"], extra)
            sent += 1
    return sent


@contextmanager
def _process_zone(zone: str) -> Iterator[None]:
    """The process's local time zone set to ``zone`` (``TZ`` + ``time.tzset``), then restored."""
    ZoneInfo(zone)  # an unknown zone fails here, before TZ is touched
    saved = os.environ.get("TZ")
    os.environ["TZ"] = zone
    time.tzset()
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = saved
        time.tzset()


def labkit_replay(
    tracker: Analytics,
    rows: Iterable[Mapping[str, Any]],
    *,
    zone: str,
    arrival: float | None = None,
    with_ts: bool = True,
) -> int:
    """Feed ``rows`` to ``tracker.track_event``, one event per call, under the conditions
    :func:`naive_replay` gives the article's tracker: the process's local time zone is
    ``zone`` and ``tracker.clock`` stands at the moment each event arrives (its own ``ts``,
    or the one instant ``arrival``). ``with_ts=False`` sends the events without their
    ``ts``, so ``Analytics`` can only fall back to that clock. Both are restored afterwards.
    Returns how many events were sent.
    """
    now = SimpleNamespace(at=0.0)
    saved_clock = tracker.clock
    tracker.clock = lambda: now.at
    sent = 0
    try:
        with _process_zone(zone):
            for row in rows:
                now.at = float(row["ts"] if arrival is None else arrival)
                extra = {k: v for k, v in row.items() if k not in ("event", "user_id", "ts")}
                ts = row["ts"] if with_ts else None
                tracker.track_event(row["event"], row["user_id"], ts=ts, **extra)
                sent += 1
    finally:
        tracker.clock = saved_clock
    return sent


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
    (STRLEN of the HLL or the bitmap: the string itself, before the allocator rounds it up),
    load (s).
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
            value_bytes = (
                ns.r.strlen(counter.key(day, method)) if method in ("hll", "bitmap") else None
            )
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


def cluster_union_cost(
    single: Client,
    cluster: Client,
    prefix: str,
    *,
    days: Sequence[str],
    users_per_day: int,
    id_space: int,
    rng: np.random.Generator,
    repeats: int = 3,
) -> pd.DataFrame:
    """Load the same random users into ``days`` on a single node and on a cluster (every
    method), then time ``active_users`` over all of them on each (best of ``repeats``) and
    add up what the cluster path copies through the client: the DUMP payload of every day
    key, which it reads and then RESTOREs (so twice that crosses the network).

    Columns: method, days, users per day, answer, DUMP bytes per call, single node (ms),
    cluster (ms).
    """
    boards = {
        where: Analytics(client, prefix=prefix, methods=METHODS)
        for where, client in (("single node", single), ("cluster", cluster))
    }
    for day in days:
        ids = rng.choice(id_space, size=users_per_day, replace=False)
        for board in boards.values():
            board.add_users(day, ids)
    rows = []
    for method in METHODS:
        keys = [boards["cluster"].key(day, method) for day in days]
        dumped = sum(len(cluster.dump(key) or b"") for key in keys)
        row: dict[str, object] = {
            "method": method,
            "days": len(days),
            "users per day": users_per_day,
            "DUMP bytes per call": dumped,
        }
        for where, board in boards.items():
            best = float("inf")
            for _ in range(repeats):
                started = time.perf_counter()
                row["answer"] = board.active_users(days[-1], len(days), method)
                best = min(best, time.perf_counter() - started)
            row[f"{where} (ms)"] = 1000 * best
        rows.append(row)
    return pd.DataFrame(rows)
