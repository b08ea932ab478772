"""labkit.experiments.analytics: the replay of the article's tracker on a chosen server clock."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest

from labkit import naive
from labkit.analytics import Analytics
from labkit.client import is_cluster
from labkit.experiments.analytics import labkit_replay, naive_replay
from labkit.keys import Namespace


def _days(r: Any, tracker: naive.RedisAnalytics) -> dict[str, int]:
    match = f"{tracker.prefix}analytics:events:*"
    return {
        key.rsplit(":", 1)[1]: sum(int(n) for n in r.hvals(key)) for key in r.scan_iter(match=match)
    }


def test_naive_replay_files_events_by_the_servers_local_day(r: Any, ns: Namespace) -> None:
    if is_cluster(r):
        pytest.skip("the article's pipeline spans slots (A5): single node only")
    at_3am_utc = datetime(2026, 10, 2, 3, 0, tzinfo=UTC).timestamp()
    rows = [{"event": "view", "user_id": 1, "ts": at_3am_utc}]
    la = naive.RedisAnalytics(r, prefix=ns.prefix_for("la"))
    assert naive_replay(la, rows, zone="America/Los_Angeles") == 1
    assert _days(r, la) == {"2026-10-01": 1}  # 20:00 the evening before, in Los Angeles
    late = naive.RedisAnalytics(r, prefix=ns.prefix_for("late"))
    arrival = datetime(2026, 10, 4, 6, 0, tzinfo=UTC).timestamp()
    naive_replay(late, rows, zone="UTC", arrival=arrival)
    assert _days(r, late) == {"2026-10-04": 1}  # the day it arrived, not the day it happened
    entry = r.xrange(late.prefix + "events:stream")[0][1]
    assert float(entry["timestamp"]) == arrival  # the article's time.time() read the same clock
    assert naive.time is time  # the real clock module is back in place


def test_labkit_replay_uses_the_events_ts_and_falls_back_to_the_arrival_clock(
    r: Any, ns: Namespace
) -> None:
    zone_before = time.strftime("%Z")
    at_3am_utc = datetime(2026, 10, 2, 3, 0, tzinfo=UTC).timestamp()
    rows = [{"event": "view", "user_id": 1, "ts": at_3am_utc, "platform": "web"}]
    arrival = datetime(2026, 10, 4, 6, 0, tzinfo=UTC).timestamp()
    la = Analytics(r, prefix=ns.prefix_for("la"), methods=("hll",))
    assert labkit_replay(la, rows, zone="America/Los_Angeles") == 1
    assert la.get_daily_stats("2026-10-02")["total_events"] == 1  # its own UTC day
    late = Analytics(r, prefix=ns.prefix_for("late"), methods=("hll",))
    labkit_replay(late, rows, zone="UTC", arrival=arrival)
    assert late.get_daily_stats("2026-10-02")["total_events"] == 1
    no_ts = Analytics(r, prefix=ns.prefix_for("no-ts"), methods=("hll",))
    labkit_replay(no_ts, rows, zone="UTC", arrival=arrival, with_ts=False)
    assert no_ts.get_daily_stats("2026-10-04")["total_events"] == 1  # only the clock is left
    assert no_ts.clock is time.time  # the tracker's own clock is back
    assert time.strftime("%Z") == zone_before  # the process zone is back
