"""labkit.sessions against a real server: ids, per-field updates, timeouts, rotation, index."""

from __future__ import annotations

import base64
import math
import threading
import time
from typing import Any

import pytest
import redis
from extremes import bad_epochs, bad_positive, refused
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.cluster import RedisCluster
from redis.crc import key_slot

from labkit import scripts, server_info
from labkit.checks import MAX_EPOCH, MAX_MS
from labkit.keys import Namespace
from labkit.measure import counting_client
from labkit.sessions import (
    FieldExpiryUnsupportedError,
    SessionKeys,
    SessionStore,
)
from labkit.workloads import VirtualClock


@pytest.fixture
def store(r: redis.Redis, ns: Namespace) -> SessionStore:
    return SessionStore(r, idle_ttl=60, absolute_ttl=3600, prefix=ns.key("session:"))


def token_bits(sid: str) -> int:
    token = sid.split(".", 1)[1]
    return len(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))) * 8


# -- ids ---------------------------------------------------------------------------------


def test_session_ids_carry_at_least_128_random_bits(store: SessionStore) -> None:
    sid = store.create_session("alice")
    assert token_bits(sid) >= 128


def test_session_ids_are_unique(store: SessionStore) -> None:
    sids = [store.create_session("alice") for _ in range(200)]
    assert len(set(sids)) == 200


def test_unknown_id_returns_none(store: SessionStore) -> None:
    forged = "abc." + "A" * 43
    assert store.get_session(forged) is None
    assert store.update_session(forged, x=1) is False
    assert store.refresh_session(forged) is False
    assert store.destroy_session(forged) is False
    assert store.rotate_session(forged) is None


def test_real_token_under_a_forged_bucket_returns_none(store: SessionStore) -> None:
    sid = store.create_session("alice")
    bucket, token = sid.split(".")
    other = format((int(bucket, 16) + 1) % 4096, "03x")
    assert store.get_session(f"{other}.{token}") is None


@pytest.mark.parametrize(
    "sid",
    [None, 42, b"abc", "", "*", "abc.*", "abc." + "?" * 43, "ABC." + "A" * 43,
     "abc." + "A" * 42, "abc." + "A" * 10_000, "abc:" + "A" * 43, "{abc}." + "A" * 41],
)  # fmt: skip
def test_malformed_ids_return_none_without_reaching_redis(
    r: redis.Redis, ns: Namespace, sid: object
) -> None:
    client, counter = counting_client(r)
    store = SessionStore(client, prefix=ns.key("session:"))
    assert store.get_session(sid) is None
    assert store.update_session(sid, x=1) is False
    assert store.refresh_session(sid) is False
    assert store.destroy_session(sid) is False
    assert store.rotate_session(sid) is None
    assert store.keys.session_key(sid) is None
    assert counter.count == 0


# -- storage -----------------------------------------------------------------------------


def test_get_session_returns_user_and_data(store: SessionStore) -> None:
    sid = store.create_session("alice", theme="dark", cart=[3, 7], n=1.5, ok=True, none=None)
    session = store.get_session(sid)
    assert session is not None
    assert session.sid == sid
    assert session.user_id == "alice"
    assert session.data == {"theme": "dark", "cart": [3, 7], "n": 1.5, "ok": True, "none": None}


def test_session_is_stored_as_a_hash(r: redis.Redis, store: SessionStore) -> None:
    sid = store.create_session("alice", theme="dark")
    key = store.keys.session_key(sid)
    assert r.type(key) == "hash"
    assert r.hget(key, "theme") == '"dark"'


def test_integer_user_ids_are_accepted(store: SessionStore) -> None:
    sid = store.create_session(1234)
    session = store.get_session(sid)
    assert session is not None and session.user_id == "1234"
    assert store.list_user_sessions(1234) == [sid]


def test_update_session_changes_only_given_fields(store: SessionStore) -> None:
    sid = store.create_session("alice", theme="dark", lang="en")
    assert store.update_session(sid, theme="light") is True
    session = store.get_session(sid)
    assert session is not None and session.data == {"theme": "light", "lang": "en"}


def test_update_of_a_missing_session_creates_nothing(
    r: redis.Redis, ns: Namespace, store: SessionStore
) -> None:
    sid = store.create_session("alice")
    store.destroy_session(sid)
    assert store.update_session(sid, theme="dark") is False
    assert ns.keys() == []


def test_concurrent_updates_of_different_fields_all_survive(store: SessionStore) -> None:
    sid = store.create_session("alice")
    threads, per_thread = 8, 40
    barrier = threading.Barrier(threads)

    def work(t: int) -> None:
        barrier.wait()
        for k in range(per_thread):
            assert store.update_session(sid, **{f"w{t}_{k}": k})

    pool = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    session = store.get_session(sid)
    assert session is not None
    assert len(session.data) == threads * per_thread


def test_concurrent_read_then_write_of_one_field_loses_appends(store: SessionStore) -> None:
    # Why append_session exists: a Hash protects different fields, not one field that two
    # requests read and write back. Forced here: both read before either writes.
    sid = store.create_session("alice", cart=[])
    barrier = threading.Barrier(2)

    def add(item: int) -> None:
        session = store.get_session(sid)
        assert session is not None
        barrier.wait()
        store.update_session(sid, cart=[*session.data["cart"], item])

    pool = [threading.Thread(target=add, args=(i,)) for i in range(2)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    session = store.get_session(sid)
    assert session is not None and len(session.data["cart"]) == 1


def test_concurrent_appends_to_one_field_all_land(store: SessionStore) -> None:
    sid = store.create_session("alice", cart=[])
    threads, per_thread = 8, 25
    barrier = threading.Barrier(threads)

    def work(t: int) -> None:
        barrier.wait()
        for k in range(per_thread):
            assert store.append_session(sid, "cart", [t, k])

    pool = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    session = store.get_session(sid)
    assert session is not None
    cart = session.data["cart"]
    assert sorted(map(tuple, cart)) == [(t, k) for t in range(threads) for k in range(per_thread)]


def test_append_starts_a_missing_field_and_keeps_other_values_exact(store: SessionStore) -> None:
    sid = store.create_session("alice", cart=[{"sku": "x", "price": 0.1}, 2**60])
    assert store.append_session(sid, "cart", "y")
    assert store.append_session(sid, "seen", {"page": 1})
    session = store.get_session(sid)
    assert session is not None
    assert session.data == {"cart": [{"sku": "x", "price": 0.1}, 2**60, "y"], "seen": [{"page": 1}]}


def test_append_to_a_field_that_is_not_a_list_raises_and_writes_nothing(
    r: redis.Redis, store: SessionStore
) -> None:
    sid = store.create_session("alice", theme="dark", note="[x")
    key = store.keys.session_key(sid)
    assert key is not None
    for field in ("theme", "note"):
        before = r.hget(key, field)
        with pytest.raises(TypeError, match=field):
            store.append_session(sid, field, 1)
        assert r.hget(key, field) == before


def test_append_slides_the_idle_ttl_and_sees_a_gone_session(r: redis.Redis, ns: Namespace) -> None:
    clock = VirtualClock(1_000_000)
    store = SessionStore(r, idle_ttl=60, absolute_ttl=3600, prefix=ns.key("s:"), clock=clock)
    sid = store.create_session("alice")
    clock.advance(50)
    assert store.append_session(sid, "cart", 1)  # within the idle timeout: slides it
    clock.advance(50)
    assert store.append_session(sid, "cart", 2)
    clock.advance(61)
    assert store.append_session(sid, "cart", 3) is False  # idle: gone
    assert store.append_session("abc." + "A" * 43, "cart", 1) is False
    assert ns.keys() == []


def test_append_checks_its_arguments_before_reaching_redis(r: redis.Redis, ns: Namespace) -> None:
    client, counter = counting_client(r)
    store = SessionStore(client, prefix=ns.key("s:"))
    sid = "abc." + "A" * 43
    counter.reset()
    for field, value, error in [
        ("_uid", 1, ValueError),
        ("", 1, ValueError),
        (5, 1, TypeError),
        ("cart", float("nan"), ValueError),
        ("cart", object(), TypeError),
    ]:
        with pytest.raises(error, match="field"):
            store.append_session(sid, field, value)  # type: ignore[arg-type]
    assert counter.count == 0


def bytes_client(r: Any) -> Any:
    """A second client to the same server or cluster, with decode_responses=False."""
    if hasattr(r, "get_default_node"):
        node = r.get_default_node()
        return RedisCluster(host=node.host, port=node.port, decode_responses=False)
    kwargs = {**r.connection_pool.connection_kwargs, "decode_responses": False}
    return redis.Redis(connection_pool=redis.ConnectionPool(**kwargs))


def test_decode_responses_false_client_works(r: redis.Redis, ns: Namespace) -> None:
    raw = bytes_client(r)
    store = SessionStore(raw, prefix=ns.key("session:"))
    sid = store.create_session("alice", theme="dark")
    session = store.get_session(sid)
    assert session is not None and session.data == {"theme": "dark"}
    assert store.list_user_sessions("alice") == [sid]
    raw.close()


# -- timeouts ----------------------------------------------------------------------------


def test_access_slides_the_idle_ttl(r: redis.Redis, store: SessionStore) -> None:
    sid = store.create_session("alice")
    key = store.keys.session_key(sid)
    r.pexpire(key, 1000)
    assert store.get_session(sid) is not None
    assert r.pttl(key) > 50_000
    r.pexpire(key, 1000)
    assert store.refresh_session(sid)
    assert r.pttl(key) > 50_000
    r.pexpire(key, 1000)
    assert store.update_session(sid, x=1)
    assert r.pttl(key) > 50_000


def test_idle_session_expires(r: redis.Redis, ns: Namespace) -> None:
    store = SessionStore(r, idle_ttl=0.05, absolute_ttl=10, prefix=ns.key("session:"))
    sid = store.create_session("alice")
    time.sleep(0.12)
    assert store.get_session(sid) is None
    assert store.list_user_sessions("alice") == []


def test_absolute_timeout_holds_under_constant_activity(r: redis.Redis, ns: Namespace) -> None:
    clock = VirtualClock(1_000_000)
    store = SessionStore(r, idle_ttl=600, absolute_ttl=3600, prefix=ns.key("session:"), clock=clock)
    sid = store.create_session("alice")
    alive_until = 0.0
    for _ in range(100):  # a request every 5 minutes for 8 h 20 min
        clock.advance(300)
        if store.refresh_session(sid):
            alive_until = clock() - 1_000_000
    assert alive_until == 3300  # the last touch before 3600 s
    assert store.get_session(sid) is None
    assert r.exists(store.keys.session_key(sid)) == 0
    assert store.list_user_sessions("alice") == []


def test_key_ttl_never_passes_the_absolute_deadline(r: redis.Redis, ns: Namespace) -> None:
    clock = VirtualClock(1_000_000)
    store = SessionStore(r, idle_ttl=600, absolute_ttl=3600, prefix=ns.key("session:"), clock=clock)
    sid = store.create_session("alice")
    for _ in range(7):  # active every 500 s (within the idle timeout) up to 3500 s
        clock.advance(500)
        assert store.refresh_session(sid)
    clock.advance(98)
    session = store.get_session(sid)
    assert session is not None
    assert session.absolute_expires_in == pytest.approx(2.0)
    assert session.idle_expires_in == pytest.approx(2.0)
    assert 0 < r.pttl(store.keys.session_key(sid)) <= 2000


def test_idle_timeout_follows_an_injected_clock(r: redis.Redis, ns: Namespace) -> None:
    clock = VirtualClock(1_000_000)
    store = SessionStore(r, idle_ttl=30, absolute_ttl=3600, prefix=ns.key("session:"), clock=clock)
    sid = store.create_session("alice")
    for _ in range(4):  # a touch every 30 s (exactly the idle timeout) keeps it alive
        clock.advance(30)
        session = store.get_session(sid)
        assert session is not None and session.idle_expires_in == 30
    clock.advance(30.001)  # idle for longer than idle_ttl by the clock, not by real time
    key = store.keys.session_key(sid)
    assert r.exists(key) == 1  # the real-time TTL has not run out...
    assert store.get_session(sid) is None  # ...but the session is over
    assert r.exists(key) == 0
    assert r.zscore(store.keys.index("alice"), sid.split(".")[1]) is None


@pytest.mark.parametrize("call", ["update", "refresh", "rotate", "destroy", "list", "logout"])
def test_every_call_sees_an_idle_session_as_gone(r: redis.Redis, ns: Namespace, call: str) -> None:
    clock = VirtualClock(1_000_000)
    store = SessionStore(r, idle_ttl=30, absolute_ttl=3600, prefix=ns.key("session:"), clock=clock)
    sid = store.create_session("alice")
    clock.advance(600)
    gone: dict[str, Any] = {
        "update": (lambda: store.update_session(sid, x=1), False),
        "refresh": (lambda: store.refresh_session(sid), False),
        "rotate": (lambda: store.rotate_session(sid), None),
        "destroy": (lambda: store.destroy_session(sid), False),
        "list": (lambda: store.list_user_sessions("alice"), []),
        "logout": (lambda: store.destroy_user_sessions("alice"), 0),
    }
    run, expected = gone[call]
    assert run() == expected
    assert r.exists(store.keys.session_key(sid)) == 0
    assert r.zcard(store.keys.index("alice")) == 0


def test_created_at_is_stored_and_reported(ns: Namespace, r: redis.Redis) -> None:
    clock = VirtualClock(1_000_000)
    store = SessionStore(r, prefix=ns.key("session:"), clock=clock)
    sid = store.create_session("alice")
    clock.advance(10)
    session = store.get_session(sid)
    assert session is not None and session.created_at == 1_000_000
    assert session.absolute_expires_in == pytest.approx(8 * 3600 - 10)


# -- destroy, rotate, the user index -----------------------------------------------------


def test_destroy_session_removes_hash_and_index_entry(store: SessionStore, ns: Namespace) -> None:
    keep = store.create_session("alice")
    sid = store.create_session("alice")
    assert store.destroy_session(sid) is True
    assert store.get_session(sid) is None
    assert store.list_user_sessions("alice") == [keep]
    assert store.destroy_session(sid) is False


def test_rotate_session_kills_the_old_id_and_keeps_the_data(store: SessionStore) -> None:
    old = store.create_session("alice", cart=[1])
    new = store.rotate_session(old, role="admin")
    assert new is not None and new != old
    assert store.get_session(old) is None
    assert store.update_session(old, role="attacker") is False
    assert store.refresh_session(old) is False
    session = store.get_session(new)
    assert session is not None and session.data == {"cart": [1], "role": "admin"}
    assert store.list_user_sessions("alice") == [new]


def test_rotate_session_keeps_created_at(r: redis.Redis, ns: Namespace) -> None:
    clock = VirtualClock(1_000_000)
    store = SessionStore(r, idle_ttl=600, absolute_ttl=3600, prefix=ns.key("session:"), clock=clock)
    sid: str | None = store.create_session("alice")
    for _ in range(20):  # rotating every 5 minutes does not extend the session
        clock.advance(300)
        sid = store.rotate_session(sid) or sid
    assert store.get_session(sid) is None


def test_list_user_sessions_is_oldest_first_and_prunes_dead_entries(
    r: redis.Redis, ns: Namespace
) -> None:
    clock = VirtualClock(1_000_000)
    store = SessionStore(r, prefix=ns.key("session:"), clock=clock)
    sids = []
    for _ in range(3):
        sids.append(store.create_session("alice"))
        clock.advance(1)
    store.create_session("bob")
    r.delete(store.keys.session_key(sids[1]))  # as if its idle TTL ran out
    assert store.list_user_sessions("alice") == [sids[0], sids[2]]
    assert r.zcard(store.keys.index("alice")) == 2


def test_destroy_user_sessions_logs_out_everywhere_and_only_that_user(store: SessionStore) -> None:
    alice = [store.create_session("alice") for _ in range(3)]
    bob = store.create_session("bob")
    assert store.destroy_user_sessions("alice") == 3
    assert all(store.get_session(sid) is None for sid in alice)
    assert store.list_user_sessions("alice") == []
    assert store.get_session(bob) is not None
    assert store.destroy_user_sessions("alice") == 0


def test_user_index_expires_with_the_last_session(r: redis.Redis, ns: Namespace) -> None:
    store = SessionStore(r, idle_ttl=10, absolute_ttl=20, prefix=ns.key("session:"))
    store.create_session("alice")
    assert 0 < r.pttl(store.keys.index("alice")) <= 20_000


def test_user_index_outlives_each_session_whatever_the_clock(r: redis.Redis, ns: Namespace) -> None:
    clock = VirtualClock(1_000_000)
    store = SessionStore(r, idle_ttl=60, absolute_ttl=3600, prefix=ns.key("session:"), clock=clock)
    sid: str | None = store.create_session("alice")
    index = store.keys.index("alice")
    assert r.pttl(index) > 59_000
    touches = {
        "get": lambda: store.get_session(sid),
        "update": lambda: store.update_session(sid, x=1),
        "refresh": lambda: store.refresh_session(sid),
        "rotate": lambda: store.rotate_session(sid),
    }
    for name, touch in touches.items():
        r.pexpire(index, 100)  # the index's real-time TTL ran ahead of a slow clock
        clock.advance(1)
        result = touch()
        assert result, name
        sid = result if name == "rotate" else sid
        assert r.pttl(index) > 59_000, name  # at least the session's new TTL (60 s)
        assert r.pttl(store.keys.session_key(sid)) > 59_000, name
    assert store.list_user_sessions("alice") == [sid]


def test_rotate_leaves_the_user_index_with_a_ttl(r: redis.Redis, ns: Namespace) -> None:
    store = SessionStore(r, idle_ttl=60, absolute_ttl=3600, prefix=ns.key("session:"))
    sid = store.rotate_session(store.create_session("alice"))  # the user's only session
    assert sid is not None
    assert 59_000 < r.pttl(store.keys.index("alice")) <= 60_000


def test_slow_clock_keeps_a_live_session_listed(r: redis.Redis, ns: Namespace) -> None:
    t = [1_000.0]
    store = SessionStore(
        r, idle_ttl=0.3, absolute_ttl=0.6, prefix=ns.key("session:"), clock=lambda: t[0]
    )
    sid = store.create_session("alice")
    for _ in range(8):  # 0.8 s of real time, 0.08 s by the clock: the session lives on
        time.sleep(0.1)
        t[0] += 0.01
        assert store.get_session(sid) is not None
    assert store.list_user_sessions("alice") == [sid]
    assert store.destroy_user_sessions("alice") == 1
    assert store.get_session(sid) is None


# -- cluster-safety and round trips ------------------------------------------------------


def test_all_keys_of_a_user_share_one_slot(store: SessionStore) -> None:
    sids = [store.create_session("alice") for _ in range(5)]
    rotated = store.rotate_session(sids[0])
    assert rotated is not None
    keys = [store.keys.session_key(s) for s in [*sids, rotated]] + [store.keys.index("alice")]
    assert len({key_slot(k.encode()) for k in keys if k}) == 1


def test_each_call_is_one_round_trip(r: redis.Redis, ns: Namespace) -> None:
    client, counter = counting_client(r)
    store = SessionStore(client, prefix=ns.key("session:"))
    calls = {
        "create": lambda: store.create_session("alice", a=1),
        "get": lambda: store.get_session(sid),
        "update": lambda: store.update_session(sid, a=2),
        "append": lambda: store.append_session(sid, "cart", 1),
        "refresh": lambda: store.refresh_session(sid),
        "rotate": lambda: store.rotate_session(sid),
        "list": lambda: store.list_user_sessions("alice"),
        "destroy": lambda: store.destroy_session(sid),
        "destroy_user": lambda: store.destroy_user_sessions("alice"),
    }
    counts: dict[str, int] = {}
    for _ in ("the first pass loads the scripts on this node", "the second pass counts"):
        sid = store.create_session("alice")
        for name, call in calls.items():
            counter.reset()
            result = call()
            counts[name] = counter.count
            if name == "rotate":
                sid = result
    assert counts == dict.fromkeys(calls, 1)


# -- bad input ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "names"),
    [
        ({"idle_ttl": -1}, ValueError, "idle_ttl"),
        ({"idle_ttl": 0}, ValueError, "idle_ttl"),
        ({"absolute_ttl": -5}, ValueError, "absolute_ttl"),
        ({"idle_ttl": math.nan}, ValueError, "idle_ttl"),
        ({"idle_ttl": "30"}, TypeError, "idle_ttl"),
        ({"idle_ttl": True}, TypeError, "idle_ttl"),
        ({"idle_ttl": 1e15}, ValueError, "idle_ttl"),
        ({"absolute_ttl": 1e300}, ValueError, "absolute_ttl"),
        ({"idle_ttl": 10**400}, ValueError, "idle_ttl"),
        ({"idle_ttl": 100, "absolute_ttl": 10}, ValueError, "absolute_ttl"),
        ({"prefix": "session:{x}:"}, ValueError, "prefix"),
        ({"prefix": 5}, TypeError, "prefix"),
        ({"clock": 5}, TypeError, "clock"),
    ],
)
def test_bad_settings_raise_naming_the_argument(
    r: redis.Redis, kwargs: dict[str, object], error: type[Exception], names: str
) -> None:
    with pytest.raises(error, match=names):
        SessionStore(r, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("user_id", "error"),
    [("", ValueError), ("   ", ValueError), (None, TypeError), (True, TypeError),
     (1.5, TypeError), ("u" * 300, ValueError)],
)  # fmt: skip
def test_bad_user_ids_raise_before_reaching_redis(
    r: redis.Redis, ns: Namespace, user_id: object, error: type[Exception]
) -> None:
    client, counter = counting_client(r)
    store = SessionStore(client, prefix=ns.key("session:"))
    for call in (store.create_session, store.list_user_sessions, store.destroy_user_sessions):
        with pytest.raises(error, match="user_id"):
            call(user_id)  # type: ignore[arg-type]
    assert counter.count == 0


@pytest.mark.parametrize(
    ("fields", "error", "names"),
    [
        ({"when": object()}, TypeError, "when"),
        ({"tags": {1, 2}}, TypeError, "tags"),
        ({"x": math.inf}, ValueError, "'x'"),
        ({"_uid": "mallory"}, ValueError, "_uid"),
        ({"": 1}, ValueError, "field names"),
    ],
)
def test_bad_fields_raise_before_reaching_redis(
    r: redis.Redis, ns: Namespace, fields: dict[str, object], error: type[Exception], names: str
) -> None:
    client, counter = counting_client(r)
    store = SessionStore(client, prefix=ns.key("session:"))
    sid = "abc." + "A" * 43
    with pytest.raises(error, match=names):
        store.create_session("alice", **fields)
    with pytest.raises(error, match=names):
        store.update_session(sid, **fields)
    with pytest.raises(error, match=names):
        store.rotate_session(sid, **fields)
    assert counter.count == 0


# -- bad input, every numeric argument, extremes included (hypothesis) -------------------

TTL_MOST = MAX_MS / 1000  # seconds
BAD = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)



def snapshot(r: redis.Redis, ns: Namespace) -> dict[str, Any]:
    """Every key of the namespace with its value and whether it has a TTL."""
    out: dict[str, Any] = {}
    for key in ns.keys():
        value = r.hgetall(key) if r.type(key) == "hash" else r.zrange(key, 0, -1, withscores=True)
        out[key] = (value, r.pttl(key) > 0)
    return out


@BAD
@given(ttl=bad_positive(TTL_MOST), which=st.sampled_from(["idle_ttl", "absolute_ttl"]))
def test_any_bad_timeout_is_refused_naming_it(
    r: redis.Redis, ns: Namespace, ttl: object, which: str
) -> None:
    """Regression: idle_ttl=1e15 left a session Hash with no TTL (PEXPIRE failed after HSET)."""
    with refused(which):
        SessionStore(r, prefix=ns.key("session:"), **{which: ttl})  # type: ignore[arg-type]
    assert ns.keys() == []


@BAD
@given(ttl=bad_positive(TTL_MOST))
def test_any_bad_field_ttl_is_refused_before_anything_is_written(
    r: redis.Redis, ns: Namespace, store: SessionStore, ttl: object
) -> None:
    sid = store.create_session("alice", theme="dark")
    before = snapshot(r, ns)
    with refused("ttl"):
        store.set_expiring_fields(sid, ttl, step_up=True)  # type: ignore[arg-type]
    assert snapshot(r, ns) == before
    store.destroy_session(sid)


@BAD
@given(now=bad_epochs())
def test_a_clock_giving_anything_but_epoch_seconds_is_refused(
    r: redis.Redis, ns: Namespace, now: object
) -> None:
    """Regression: clock=time.time_ns created sessions stamped ~57 million years ahead."""
    store = SessionStore(r, prefix=ns.key("session:"), clock=lambda: now)  # type: ignore[arg-type,return-value]
    sid = "abc." + "A" * 43
    calls = {
        "create": lambda: store.create_session("alice", theme="dark"),
        "get": lambda: store.get_session(sid),
        "update": lambda: store.update_session(sid, theme="light"),
        "refresh": lambda: store.refresh_session(sid),
        "rotate": lambda: store.rotate_session(sid),
        "destroy": lambda: store.destroy_session(sid),
        "list": lambda: store.list_user_sessions("alice"),
        "logout": lambda: store.destroy_user_sessions("alice"),
    }
    for call in calls.values():
        with refused("clock()"):
            call()
    assert ns.keys() == []


def test_the_longest_timeouts_work_and_report_a_positive_lifetime(
    r: redis.Redis, ns: Namespace
) -> None:
    """Regression: absolute_ttl=1e300 reported absolute_expires_in = -9.2e15 s."""
    store = SessionStore(r, idle_ttl=TTL_MOST, absolute_ttl=TTL_MOST, prefix=ns.key("long:"))
    sid = store.create_session("alice", theme="dark")
    session = store.get_session(sid)
    assert session is not None
    assert 0 < session.idle_expires_in <= TTL_MOST
    assert TTL_MOST - 60 < session.absolute_expires_in <= TTL_MOST
    assert all(r.pttl(key) > 0 for key in ns.keys())
    # the latest clock and the longest timeouts: every deadline still exact in Lua doubles
    late = SessionStore(
        r, TTL_MOST, TTL_MOST, prefix=ns.key("late:"), clock=VirtualClock(MAX_EPOCH)
    )
    sid = late.create_session("bob")
    session = late.get_session(sid)
    assert session is not None and session.absolute_expires_in == TTL_MOST
    assert session.created_at == MAX_EPOCH


def test_every_session_script_uses_the_shared_clock_prelude() -> None:
    clock = scripts.load("prelude/clock")
    for name in ("CREATE", "GET", "UPDATE", "DESTROY", "ROTATE", "USER", "APPEND"):
        source = getattr(SessionStore, name)
        assert source.startswith(clock)
        assert source.count("local function now_us()") == 1


# -- hash-field expiry -------------------------------------------------------------------


def test_expiring_field_lapses_while_the_session_lives(r: redis.Redis, store: SessionStore) -> None:
    if not store.supports_field_expiry():
        pytest.skip("this server has no hash-field expiry")
    sid = store.create_session("alice", theme="dark")
    assert store.set_expiring_fields(sid, 0.05, step_up=True)
    session = store.get_session(sid)
    assert session is not None and session.data["step_up"] is True
    time.sleep(0.12)
    session = store.get_session(sid)
    assert session is not None and session.data == {"theme": "dark"}


def test_expiring_fields_raise_where_the_server_lacks_field_expiry(store: SessionStore) -> None:
    if store.supports_field_expiry():
        pytest.skip("this server has hash-field expiry")
    sid = store.create_session("alice")
    with pytest.raises(FieldExpiryUnsupportedError):
        store.set_expiring_fields(sid, 10, step_up=True)


def test_field_expiry_support_matches_the_server_version(
    r: redis.Redis, store: SessionStore
) -> None:
    info = server_info(r)
    version = tuple(int(p) for p in info.version.split(".")[:2])
    expected = version >= ((9, 0) if info.product == "Valkey" else (7, 4))
    assert store.supports_field_expiry() is expected


def test_expiring_fields_check_their_arguments(store: SessionStore) -> None:
    with pytest.raises(ValueError, match="ttl"):
        store.set_expiring_fields("abc." + "A" * 43, -1, x=1)
    with pytest.raises(ValueError, match="fields"):
        store.set_expiring_fields("abc." + "A" * 43, 1)


# -- properties --------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=8,
)  # fmt: skip
field_names = st.text(min_size=1, max_size=12).filter(lambda s: not s.startswith("_"))


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(first=st.dictionaries(field_names, json_values, max_size=5),
       second=st.dictionaries(field_names, json_values, max_size=5))  # fmt: skip
def test_fields_round_trip_and_updates_merge(
    store: SessionStore, first: dict[str, object], second: dict[str, object]
) -> None:
    sid = store.create_session("prop", **first)
    assert store.update_session(sid, **second)
    session = store.get_session(sid)
    assert session is not None and session.data == {**first, **second}
    store.destroy_session(sid)


operations = st.lists(
    st.tuples(st.sampled_from(["create", "destroy", "rotate", "logout"]),
              st.sampled_from(["ann", "ben"]), st.integers(0, 10)),
    max_size=25,
)  # fmt: skip


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=operations)
def test_user_index_always_names_exactly_the_live_sessions(
    store: SessionStore, ops: list[tuple[str, str, int]]
) -> None:
    model: dict[str, list[str]] = {"ann": [], "ben": []}
    for op, user, pick in ops:
        live = model[user]
        if op == "create":
            live.append(store.create_session(user))
        elif op == "logout":
            assert store.destroy_user_sessions(user) == len(live)
            live.clear()
        elif live:
            sid = live[pick % len(live)]
            if op == "destroy":
                assert store.destroy_session(sid)
                live.remove(sid)
            else:
                new = store.rotate_session(sid)
                assert new is not None
                live[live.index(sid)] = new
        for name, sids in model.items():
            assert sorted(store.list_user_sessions(name)) == sorted(sids)
    for name in model:
        store.destroy_user_sessions(name)


def test_session_keys_put_the_bucket_in_the_hash_tag() -> None:
    keys = SessionKeys("app:session:")
    bucket = keys.bucket("alice")
    assert keys.index("alice") == f"app:session:{{{bucket}}}:u:alice"
    assert keys.session_key(f"{bucket}.{'A' * 43}") == f"app:session:{{{bucket}}}:s:{'A' * 43}"


def test_fields_may_share_a_name_with_the_methods_own_arguments(store: SessionStore) -> None:
    """Found by hypothesis: a field called user_id or sid must be data, not a clash."""
    sid = store.create_session("alice", user_id="shown-in-profile", sid="x")
    assert store.update_session(sid, sid="y", user_id="renamed")
    session = store.get_session(sid)
    assert session is not None
    assert session.data["user_id"] == "renamed" and session.data["sid"] == "y"
    new_sid = store.rotate_session(sid, sid="z")
    assert new_sid is not None and store.get_session(new_sid).data["sid"] == "z"
