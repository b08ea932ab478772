"""labkit.analytics against a real server: counters, unique users three ways, rollups."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest
import redis
from helpers import is_int, is_number, numbers, refused_cleanly_or_accepted
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.cluster import RedisCluster
from redis.crc import key_slot

import labkit.analytics as analytics
from labkit.analytics import Analytics, parse_date, utc_day
from labkit.measure import counting_client
from labkit.server import address

ALL = ("set", "hll", "bitmap")
DAY = "2026-11-29"
T0 = datetime(2026, 11, 29, tzinfo=UTC).timestamp()  # 2026-11-29 00:00:00 UTC
HYPOTHESIS = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def written(ns) -> list[str]:
    """Every key the test wrote (SCAN of its namespace)."""
    return ns.keys()


def make(r: redis.Redis, ns, **kwargs) -> Analytics:
    kwargs.setdefault("methods", ALL)
    return Analytics(r, ns.key("a") + ":", **kwargs)


def test_track_event_counts_each_event_type(r, ns):
    a = make(r, ns)
    for user, event in [(1, "view"), (2, "view"), (1, "click"), (1, "view")]:
        a.track_event(event, user, ts=T0 + 60)
    assert a.get_daily_stats(DAY) == {
        "total_events": 4,
        "unique_users": 2,
        "events": {"click": 1, "view": 3},
    }


def test_daily_stats_are_ints_and_zero_for_an_empty_day(r, ns):
    a = make(r, ns)
    a.track_event("view", 7, ts=T0)
    stats = a.get_daily_stats(DAY)
    assert all(type(v) is int for v in (stats["total_events"], stats["unique_users"]))
    assert all(type(v) is int for v in stats["events"].values())
    assert a.get_daily_stats("2026-11-28") == {"total_events": 0, "unique_users": 0, "events": {}}


def test_day_is_the_utc_day_of_the_event_timestamp(r, ns):
    a = make(r, ns)
    # 23:30 at UTC-2 on the 28th is 01:30 UTC on the 29th; 00:30 at UTC+3 on the 29th is
    # 21:30 UTC on the 28th.
    assert (
        a.track_event(
            "view", 1, ts=datetime(2026, 11, 28, 23, 30, tzinfo=timezone(timedelta(hours=-2)))
        )
        == DAY
    )
    assert (
        a.track_event(
            "view", 2, ts=datetime(2026, 11, 29, 0, 30, tzinfo=timezone(timedelta(hours=3)))
        )
        == "2026-11-28"
    )
    assert a.track_event("view", 3, ts=T0 - 1) == "2026-11-28"
    assert a.track_event("view", 4, ts=T0) == DAY
    assert a.get_daily_stats(DAY)["unique_users"] == 2
    assert a.get_daily_stats("2026-11-28")["unique_users"] == 2


def test_missing_ts_reads_the_injected_clock(r, ns):
    a = make(r, ns, clock=lambda: T0 + 86_400 + 5)
    assert a.track_event("view", 1) == "2026-11-30"
    assert a.get_daily_stats("2026-11-30")["total_events"] == 1


def test_track_event_is_one_round_trip(r, ns):
    client, counter = counting_client(r)
    a = Analytics(client, ns.key("a") + ":", methods=ALL, retention=3600)
    a.track_event("view", 1, ts=T0, platform="ios")
    assert counter.count == 1


def test_day_keys_share_one_hash_slot(r, ns):
    a = make(r, ns)
    a.track_event("view", 1, ts=T0, platform="web")
    keys = ns.keys()
    assert len(keys) == 5
    assert all("{2026-11-29}" in key for key in keys)
    assert len({key_slot(key.encode()) for key in keys}) == 1


def test_raw_event_with_metadata_goes_to_the_stream(r, ns):
    a = make(r, ns)
    a.track_event("purchase", 9, ts=T0 + 1.5, platform="ios", amount=12.5)
    assert a.events(DAY) == [
        {
            "event": "purchase",
            "user_id": "9",
            "ts": repr(T0 + 1.5),
            "platform": "ios",
            "amount": "12.5",
        }
    ]


def test_stream_is_trimmed_to_about_maxlen(r, ns):
    a = make(r, ns, stream_maxlen=10)
    a.track_events([{"event": "view", "user_id": i, "ts": T0 + i} for i in range(2_000)])
    length = r.xlen(a.key(DAY, "stream"))
    assert 10 <= length < 1_000  # MAXLEN ~ trims whole macro nodes, so at least 10 stay
    assert a.get_daily_stats(DAY)["total_events"] == 2_000  # counters are not trimmed


def test_retention_sets_an_expiry_on_every_day_key(r, ns):
    a = make(r, ns, retention=3600)
    a.track_event("view", 1, ts=T0)
    ttls = [r.ttl(key) for key in written(ns)]
    assert len(ttls) == 5 and all(0 < ttl <= 3600 for ttl in ttls)


def test_keys_never_expire_without_retention(r, ns):
    a = make(r, ns)
    a.track_event("view", 1, ts=T0)
    a.add_users("2026-11-28", range(200))
    assert all(r.ttl(key) == -1 for key in written(ns))


def test_add_users_sets_an_expiry_with_retention(r, ns):
    a = make(r, ns, retention=3600)
    a.add_users("2026-11-28", range(200), batch=100)  # dense ids: bitmap bytes + BITOP
    r.persist(a.key("2026-11-28", "set"))
    a.add_users("2026-11-28", [5_000])  # a second call re-arms the expiry
    keys = written(ns)
    assert sorted(keys) == sorted(a.key("2026-11-28", m) for m in ALL)
    assert all(0 < r.ttl(key) <= 3600 for key in keys)


@HYPOTHESIS
@given(users=st.lists(st.integers(min_value=0, max_value=5_000), max_size=300))
def test_unique_user_methods_agree(r, ns, users):
    ns.cleanup()
    a = make(r, ns)
    if users:
        a.track_events([{"event": "e", "user_id": u, "ts": T0 + i} for i, u in enumerate(users)])
    exact = len(set(users))
    assert a.unique_users(DAY, "set") == exact
    assert a.unique_users(DAY, "bitmap") == exact
    # HLL is exact-ish while sparse: allow 3 standard errors of 0.81% (and 1 user).
    assert abs(a.unique_users(DAY, "hll") - exact) <= max(1, 3 * 0.0081 * exact)


@HYPOTHESIS
@given(
    rows=st.lists(
        st.tuples(
            st.sampled_from(["view", "click", "buy"]),
            st.integers(min_value=0, max_value=200),
            st.integers(min_value=0, max_value=3 * 86_400),
        ),
        max_size=60,
    )
)
def test_track_events_matches_track_event_one_by_one(r, ns, rows):
    ns.cleanup()
    one = Analytics(r, ns.key("one") + ":", methods=ALL)
    bulk = Analytics(r, ns.key("bulk") + ":", methods=ALL)
    for event, user, dt in rows:
        one.track_event(event, user, ts=T0 + dt)
    bulk.track_events([{"event": e, "user_id": u, "ts": T0 + dt} for e, u, dt in rows], batch=7)
    for day in ("2026-11-29", "2026-11-30", "2026-12-01", "2026-12-02"):
        assert one.get_daily_stats(day) == bulk.get_daily_stats(day)
        for method in ALL:
            assert one.unique_users(day, method) == bulk.unique_users(day, method)


def test_track_events_validates_every_row_before_sending(r, ns):
    a = make(r, ns)
    rows = [{"event": "view", "user_id": 1, "ts": T0}, {"event": "view", "user_id": -1, "ts": T0}]
    with pytest.raises(ValueError, match="user_id"):
        a.track_events(rows)
    rows[1] = {"event": "view", "user_id": 2, "ts": T0, "amount": math.nan}
    with pytest.raises(ValueError, match="amount"):
        a.track_events(rows)
    assert ns.keys() == []


def test_track_events_reports_events_per_day(r, ns):
    a = make(r, ns)
    rows = [{"event": "v", "user_id": 1, "ts": T0 + dt} for dt in (0, 10, 86_400)]
    assert a.track_events(rows) == {"2026-11-29": 2, "2026-11-30": 1}


def test_active_users_counts_each_user_once_across_days(r, ns):
    a = make(r, ns)
    for day in range(7):
        a.add_users(utc_day(T0 + day * 86_400), range(day * 10, day * 10 + 100))
    # days 0..6: users 0..159
    for method in ("set", "bitmap"):
        assert a.active_users("2026-12-05", 7, method) == 160
        assert a.active_users("2026-12-05", 1, method) == 100
        assert a.active_users("2026-12-05", 30, method) == 160
    assert abs(a.active_users("2026-12-05", 7, "hll") - 160) <= 3
    assert all("rollup" not in key for key in written(ns))  # no scratch key left behind


def test_active_users_on_a_cluster_copies_days_under_one_hash_tag(r, ns, monkeypatch):
    a = make(r, ns)
    for day in range(3):
        a.add_users(utc_day(T0 + day * 86_400), range(day * 50, day * 50 + 100))
    expected = {m: a.active_users("2026-12-01", 3, m) for m in ALL}
    monkeypatch.setattr(analytics, "is_cluster", lambda client: True)
    assert {m: a.active_users("2026-12-01", 3, m) for m in ALL} == expected
    assert expected["set"] == 200
    assert a.active_users("2026-12-31", 3, "set") == 0  # no day exists
    assert all("rollup" not in key for key in written(ns))


def test_add_users_sets_dense_and_sparse_bitmaps_exactly(r, ns):
    a = make(r, ns, methods=("bitmap",))
    a.track_event("view", 3, ts=T0)  # a bit set before the bulk load must survive the OR
    dense = list(range(1_000, 200_000, 2))
    sparse = [10_000_000 + 100_000 * i for i in range(50)]
    a.add_users(DAY, dense + sparse)
    assert a.unique_users(DAY) == 1 + len(dense) + len(sparse)
    key = a.key(DAY, "bitmap")
    assert all(r.getbit(key, uid) == 1 for uid in (3, 1_000, 199_998, *sparse))
    assert r.getbit(key, 1_001) == 0
    assert all("scratch" not in key for key in written(ns))


def test_add_users_takes_a_numpy_array(r, ns):
    a = make(r, ns)
    assert a.add_users(DAY, np.arange(0, 30_000, 3, dtype=np.int64)) == 10_000
    assert a.unique_users(DAY, "set") == a.unique_users(DAY, "bitmap") == 10_000
    with pytest.raises(ValueError, match="user_id"):
        a.add_users("2026-11-30", np.array([5, -1]))
    with pytest.raises(ValueError, match="user_id"):
        a.add_users("2026-11-30", np.array([5, 2**32]))
    assert a.add_users("2026-11-30", np.array([], dtype=np.int64)) == 0
    assert all("2026-11-30" not in key for key in written(ns))


def test_hll_stays_within_12_kib_while_the_set_grows(r, ns):
    a = make(r, ns, methods=("set", "hll"))
    a.add_users(DAY, range(50_000))
    assert r.strlen(a.key(DAY, "hll")) <= 12 * 1024 + 16  # registers + 16-byte header
    set_small = a.memory_usage(DAY, "set")
    a.add_users(DAY, range(50_000, 100_000))
    assert a.memory_usage(DAY, "set") > 1.5 * set_small
    assert a.memory_usage("2026-01-01", "set") == 0


def test_works_with_a_client_that_does_not_decode(r, ns):
    host, port = address(r)
    cls = RedisCluster if hasattr(r, "nodes_manager") else redis.Redis
    raw = cls(host=host, port=port, decode_responses=False)
    a = Analytics(raw, ns.key("a") + ":", methods=ALL)
    a.track_event("view", 1, ts=T0, platform="web")
    assert a.get_daily_stats(DAY) == {"total_events": 1, "unique_users": 1, "events": {"view": 1}}
    assert a.events(DAY)[0]["platform"] == "web"
    raw.close()


def test_string_user_ids_work_without_the_bitmap(r, ns):
    a = Analytics(r, ns.key("a") + ":")
    a.track_event("view", "alice", ts=T0)
    a.track_event("view", "bob", ts=T0)
    a.track_event("view", "alice", ts=T0)
    assert a.unique_users(DAY, "set") == 2
    assert a.unique_users(DAY, "hll") == 2


def test_parse_date_accepts_strings_and_dates():
    assert parse_date("2026-02-28") == "2026-02-28"
    assert parse_date(datetime(2026, 2, 28).date()) == "2026-02-28"


# -- bad input: a ValueError/TypeError naming the argument, and nothing written -------------


@pytest.mark.parametrize(
    "bad", ["2026/11/29", "29-11-2026", "2026-13-01", "2026-02-30", "", "2026-1-1"]
)
def test_dates_in_the_wrong_format_are_refused(r, ns, bad):
    a = make(r, ns)
    for call in (a.get_daily_stats, a.unique_users, a.active_users, a.memory_usage, a.events):
        with pytest.raises(ValueError, match="date"):
            call(bad)


@pytest.mark.parametrize("bad", [20261129, None, datetime(2026, 11, 29)])
def test_dates_of_the_wrong_type_are_refused(r, ns, bad):
    with pytest.raises(TypeError, match="date"):
        make(r, ns).get_daily_stats(bad)


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"event": ""}, ValueError, "event"),
        ({"event": 3}, TypeError, "event"),
        ({"user_id": -1}, ValueError, "user_id"),
        ({"user_id": True}, TypeError, "user_id"),
        ({"user_id": None}, TypeError, "user_id"),
        ({"user_id": 2.5}, TypeError, "user_id"),
        ({"user_id": "alice"}, TypeError, "user_id"),  # the bitmap needs ints
        ({"user_id": 2**32}, ValueError, "user_id"),
        ({"ts": -5}, ValueError, "ts"),
        ({"ts": math.nan}, ValueError, "ts"),
        ({"ts": "yesterday"}, TypeError, "ts"),
        ({"ts": True}, TypeError, "ts"),
        ({"ts": datetime(2026, 11, 29, 12)}, ValueError, "ts"),  # naive
        ({"platform": None}, TypeError, "platform"),
        ({"tags": ["a"]}, TypeError, "tags"),
        ({"amount": math.nan}, ValueError, "amount"),
        ({"amount": math.inf}, ValueError, "amount"),
        ({"amount": -math.inf}, ValueError, "amount"),
    ],
)
def test_bad_track_event_input_is_refused_before_redis(r, ns, kwargs, error, name):
    a = make(r, ns)
    args = {"event": "view", "user_id": 1, "ts": T0, **kwargs}
    with pytest.raises(error, match=name):
        a.track_event(args.pop("event"), args.pop("user_id"), **args)
    assert ns.keys() == []


def test_empty_string_user_id_is_refused(r, ns):
    with pytest.raises(ValueError, match="user_id"):
        Analytics(r, ns.key("a") + ":").track_event("view", "", ts=T0)


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"prefix": "a{b}:"}, ValueError, "prefix"),
        ({"methods": ()}, ValueError, "methods"),
        ({"methods": ("set", "cms")}, ValueError, "methods"),
        ({"methods": ("set", "set")}, ValueError, "methods"),
        ({"methods": "set"}, TypeError, "methods"),
        ({"stream_maxlen": 0}, ValueError, "stream_maxlen"),
        ({"stream_maxlen": 1.5}, TypeError, "stream_maxlen"),
        ({"retention": 0}, ValueError, "retention"),
        ({"retention": "1h"}, TypeError, "retention"),
        ({"clock": 5}, TypeError, "clock"),
    ],
)
def test_bad_constructor_arguments_are_refused(r, kwargs, error, name):
    kwargs.setdefault("prefix", "lab:test:a:")
    with pytest.raises(error, match=name):
        Analytics(r, **kwargs)


def test_bad_query_arguments_are_refused(r, ns):
    a = make(r, ns, methods=("set", "hll"))
    with pytest.raises(ValueError, match="method"):
        a.unique_users(DAY, "count-min")
    with pytest.raises(ValueError, match="method"):
        a.unique_users(DAY, "bitmap")  # not maintained: refuse rather than answer 0
    with pytest.raises(ValueError, match="days"):
        a.active_users(DAY, 0)
    with pytest.raises(ValueError, match="days"):
        a.active_users(DAY, 367)
    with pytest.raises(TypeError, match="days"):
        a.active_users(DAY, 7.0)
    with pytest.raises(ValueError, match="count"):
        a.events(DAY, count=-1)
    with pytest.raises(ValueError, match="batch"):
        a.track_events([], batch=0)
    with pytest.raises(ValueError, match="batch"):
        a.add_users(DAY, [1], batch=-3)
    with pytest.raises(TypeError, match=r"events\[0\]"):
        a.track_events([("view", 1, T0)])
    with pytest.raises(ValueError, match="user_id"):
        a.track_events([{"event": "view"}])
    with pytest.raises(ValueError, match="kind"):
        a.key(DAY, "users")
    assert ns.keys() == []


# -- bad input from the issue: refused before anything is counted -------------------------


def test_out_of_range_stream_cap_or_retention_is_refused_before_anything_is_counted(r, ns):
    """Regression: stream_maxlen=2**63 was accepted, then every track_event counted the event
    (HINCRBY, SADD, PFADD ran) and failed at XADD; MULTI/EXEC does not roll back, so a
    retrying caller double-counted."""
    for kwargs, name in [
        ({"stream_maxlen": 2**63}, "stream_maxlen"),
        ({"stream_maxlen": 10**400}, "stream_maxlen"),
        ({"retention": 2**63}, "retention"),
        ({"retention": analytics.MAX_RETENTION + 1}, "retention"),
        ({"retention": -1}, "retention"),
    ]:
        with pytest.raises(ValueError, match=name):
            make(r, ns, **kwargs)
    assert ns.keys() == []
    # the extremes that are accepted work in full: every key written, every expiry set
    a = make(r, ns, stream_maxlen=2**63 - 1, retention=analytics.MAX_RETENTION)
    a.track_event("view", 1, ts=T0)
    assert a.get_daily_stats(DAY)["total_events"] == 1
    assert len(written(ns)) == 5 and all(r.ttl(key) > 0 for key in written(ns))


@pytest.mark.parametrize(
    "ts",
    [
        1_764_374_400_000_000_000,  # time.time_ns(): read as seconds, the year 5e10
        1_764_374_400_000,  # milliseconds
        2**34 + 1,
        10**400,
        1e300,
        datetime(1969, 12, 31, 23, 59, tzinfo=UTC),
    ],
)
def test_timestamps_out_of_range_are_refused_naming_ts(r, ns, ts):
    a = make(r, ns)
    with pytest.raises(ValueError, match=r"^ts "):
        a.track_event("view", 1, ts=ts)
    with pytest.raises(ValueError, match=r"events\[1\]\['ts'\]"):
        a.track_events(
            [{"event": "view", "user_id": 1, "ts": T0}, {"event": "v", "user_id": 1, "ts": ts}]
        )
    assert ns.keys() == []


def test_a_clock_in_nanoseconds_is_refused_naming_the_clock(r, ns):
    a = make(r, ns, clock=time.time_ns)
    with pytest.raises(ValueError, match=r"clock\(\)"):
        a.track_event("view", 1)
    assert ns.keys() == []


def test_active_users_before_1970_names_the_arguments_passed(r, ns):
    """Regression: a window reaching before 1970 failed with "ts must be ...", an argument
    the caller never passed."""
    a = make(r, ns)
    with pytest.raises(
        ValueError, match=r"^days must be between 1 and 3 for end_date='1970-01-03'"
    ):
        a.active_users("1970-01-03", 7)
    with pytest.raises(ValueError, match=r"^end_date"):
        a.active_users("1969-12-31", 1)
    with pytest.raises(ValueError, match=r"^end_date"):
        a.active_users("0001-01-01", 366)
    assert a.active_users("1970-01-03", 3, "set") == 0
    assert a.active_users("1970-01-01", 1) == 0
    assert ns.keys() == []


@pytest.mark.parametrize(
    ("call", "error", "words"),
    [
        (lambda a: a.events(DAY, count=2**63), ValueError, "count"),
        (lambda a: a.events(DAY, count=True), TypeError, "count"),
        (lambda a: a.track_event("v", 2**63, ts=T0), ValueError, "user_id"),
        (lambda a: a.track_event("v", 10**5000, ts=T0), ValueError, "user_id"),
        (lambda a: a.track_event("v", 1, ts=T0, n=2**63), ValueError, "'n'"),
        (lambda a: a.track_event("v", 1, ts=T0, n=True), TypeError, "'n'"),
        (lambda a: a.track_events([{"event": "v", "user_id": 1, 5: "x"}]), TypeError, "name"),
        (lambda a: a.track_events([], batch=2**63), ValueError, "batch"),
        (lambda a: a.add_users(DAY, [1, 2**63]), ValueError, r"user_ids\[1\]"),
        (lambda a: a.add_users(DAY, np.array([1, 2**63], dtype=np.uint64)), ValueError, "user_ids"),
        (lambda a: a.add_users(DAY, np.array([1.0, 2.0])), TypeError, r"user_ids\[0\]"),
        (lambda a: a.add_users(DAY, "123"), TypeError, "user_ids"),
        (lambda a: a.active_users(DAY, 2**63), ValueError, "days"),
        (lambda a: a.active_users(DAY, True), TypeError, "days"),
    ],
)
def test_huge_and_odd_numbers_are_refused_before_redis(r, ns, call, error, words):
    a = Analytics(r, ns.key("a") + ":", methods=("set", "hll"))
    with pytest.raises(error, match=words):
        call(a)
    assert ns.keys() == []


def test_the_64_bit_extremes_that_are_accepted_work(r, ns):
    a = Analytics(r, ns.key("a") + ":", methods=("set", "hll"))
    a.track_event("v", 2**63 - 1, ts=2**34, low=-(2**63), high=2**63 - 1)
    day = utc_day(2**34)
    assert a.unique_users(day) == 1
    assert a.events(day, count=2**63 - 1)[0]["low"] == str(-(2**63))
    assert a.add_users(DAY, (u for u in (0, 2**63 - 1))) == 2


# -- property: every numeric argument, extremes included, is refused cleanly or accepted ----

MAX_INT = 2**63 - 1
# method -> (the argument under test, the call, is the value in the documented range?)
CALLS = {
    "Analytics stream_maxlen": (
        "stream_maxlen",
        lambda a, r, p, v: Analytics(r, p, methods=ALL, stream_maxlen=v).track_event("e", 1, T0),
        lambda v: is_int(v, 1, MAX_INT),
    ),
    "Analytics retention": (
        "retention",
        lambda a, r, p, v: Analytics(r, p, methods=ALL, retention=v).track_event("e", 1, T0),
        lambda v: is_int(v, 1, analytics.MAX_RETENTION),
    ),
    "track_event ts": (
        "ts",
        lambda a, r, p, v: a.track_event("e", 1, ts=v),
        lambda v: is_number(v, 0, 2**34),
    ),
    "track_event user_id": (
        "user_id",
        lambda a, r, p, v: a.track_event("e", v, ts=T0),
        lambda v: is_int(v, 0, 2**32 - 1),
    ),
    "track_event metadata": (
        "metadata 'n'",
        lambda a, r, p, v: a.track_event("e", 1, ts=T0, n=v),
        lambda v: is_int(v, -(2**63), MAX_INT) or (type(v) is float and math.isfinite(v)),
    ),
    "track_events batch": (
        "batch",
        lambda a, r, p, v: a.track_events([{"event": "e", "user_id": 1, "ts": T0}], batch=v),
        lambda v: is_int(v, 1, MAX_INT),
    ),
    "add_users user_ids": (
        "user_ids[1]",
        lambda a, r, p, v: a.add_users(DAY, [7, v]),
        lambda v: is_int(v, 0, 2**32 - 1),
    ),
    "add_users batch": (
        "batch",
        lambda a, r, p, v: a.add_users(DAY, [7], batch=v),
        lambda v: is_int(v, 1, MAX_INT),
    ),
    "active_users days": (
        "days",
        lambda a, r, p, v: a.active_users(DAY, v),
        lambda v: is_int(v, 1, 366),
    ),
    "events count": (
        "count",
        lambda a, r, p, v: a.events(DAY, count=v),
        lambda v: is_int(v, 1, MAX_INT),
    ),
}


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    method=st.sampled_from(sorted(CALLS)),
    value=numbers(366, 367, analytics.MAX_RETENTION, analytics.MAX_RETENTION + 1),
)
def test_numeric_arguments_are_refused_before_any_write_or_accepted(r, ns, method, value):
    """Property: a value outside the documented range raises TypeError/ValueError naming the
    argument and leaves no key; a value inside it works, Redis included."""
    ns.cleanup()
    prefix = ns.prefix_for("p")
    a = Analytics(r, prefix, methods=ALL)
    arg, call, valid = CALLS[method]
    refused_cleanly_or_accepted(ns, arg, lambda v: call(a, r, prefix, v), valid(value), value)
