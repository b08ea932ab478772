"""labkit.locks: a lease lock with fencing tokens, against a real server."""

from __future__ import annotations

import itertools
import math
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import pytest
import redis
from helpers import is_duration, wait_for
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.crc import key_slot

from labkit.errors import LabkitError
from labkit.experiments.locks import (
    ServerSpec,
    contention_sweep,
    mp_context,
    open_client,
    pause_rounds,
    server_spec,
)
from labkit.keys import Namespace
from labkit.locks import (
    FencedStore,
    Lock,
    LockError,
    LockLost,
    LockNotAcquired,
    delete_if_equal,
    lock_keys,
    server_compare_and_delete,
)
from labkit.measure import counting_client


def make(r: redis.Redis, ns: Namespace, name: str = "job", **kwargs: object) -> Lock:
    return Lock(r, name, prefix=ns.prefix, **kwargs)  # type: ignore[arg-type]


def blocked_in_blpop(r: redis.Redis, key: str) -> int:
    """How many clients are blocked in BLPOP on the node that serves ``key``'s slot."""
    route = {"target_nodes": r.get_node_from_key(key)} if hasattr(r, "get_node_from_key") else {}
    return sum(c["cmd"] == "blpop" and "b" in c["flags"] for c in r.client_list(**route))


def acquire_in_thread(lock: Lock, timeout: float) -> tuple[threading.Thread, list[int | None]]:
    got: list[int | None] = []
    thread = threading.Thread(target=lambda: got.append(lock.acquire(timeout=timeout)))
    thread.start()
    return thread, got


class Interrupted(BaseException):
    """Stands for KeyboardInterrupt: any BaseException raised inside a blocked acquire."""


def test_acquire_returns_fencing_tokens_that_increase_with_every_grant(
    r: redis.Redis, ns: Namespace
) -> None:
    lock = make(r, ns)
    tokens = []
    for _ in range(5):
        token = lock.acquire()
        assert isinstance(token, int)
        tokens.append(token)
        assert lock.release() is True
    assert tokens == sorted(tokens) and len(set(tokens)) == 5
    assert lock.fencing_token == tokens[-1]


def test_second_holder_is_refused_while_the_lock_is_held(r: redis.Redis, ns: Namespace) -> None:
    a, b = make(r, ns), make(r, ns)
    assert a.acquire() is not None
    assert b.acquire(blocking=False) is None
    assert b.acquire(timeout=0.05) is None
    assert a.locked() and b.locked() and a.owned() and not b.owned()
    a.release()
    assert not a.locked() and b.acquire(blocking=False) is not None


def test_release_by_non_owner_is_refused(r: redis.Redis, ns: Namespace) -> None:
    owner, other = make(r, ns), make(r, ns)
    owner.acquire()
    assert other.release() is False  # never acquired
    assert owner.owned()
    # A holder whose lease ran out cannot release the next holder's lock.
    stale = make(r, ns, "short", ttl=0.05)
    stale.acquire()
    time.sleep(0.08)
    fresh = make(r, ns, "short", ttl=5)
    assert fresh.acquire(blocking=False) is not None
    assert stale.release() is False
    assert fresh.owned()


def test_extend_replaces_the_remaining_ttl_while_owned(r: redis.Redis, ns: Namespace) -> None:
    lock = make(r, ns, ttl=0.5)
    lock.acquire()
    assert lock.extend(30) is True
    assert r.pttl(lock.keys.lock) > 20_000
    assert lock.extend(0.2) is True  # replaces, does not add
    assert 0 < r.pttl(lock.keys.lock) <= 200


def test_extend_after_expiry_is_refused(r: redis.Redis, ns: Namespace) -> None:
    lock = make(r, ns, ttl=0.05)
    lock.acquire()
    time.sleep(0.08)
    assert lock.extend(10) is False
    assert not lock.locked()  # refused even though nobody took it: no silent revival
    assert make(r, ns).extend() is False  # never held


def test_fractional_ttl_is_set_in_milliseconds(r: redis.Redis, ns: Namespace) -> None:
    lock = make(r, ns, ttl=0.25)
    lock.acquire()
    assert 150 <= r.pttl(lock.keys.lock) <= 250
    time.sleep(0.3)
    assert not lock.locked() and not lock.owned()


def test_context_manager_yields_the_token_and_releases(r: redis.Redis, ns: Namespace) -> None:
    lock = make(r, ns)
    with lock as token:
        assert isinstance(token, int) and lock.owned()
    assert not lock.locked()


def test_context_manager_timeout_raises_without_running_the_body(
    r: redis.Redis, ns: Namespace
) -> None:
    holder = make(r, ns)
    holder.acquire()
    ran = False
    with pytest.raises(LockNotAcquired, match="not acquired within"), make(r, ns, timeout=0.05):
        ran = True
    assert not ran
    assert issubclass(LockNotAcquired, TimeoutError) and holder.owned()


def test_context_manager_reports_a_lease_lost_in_the_body(r: redis.Redis, ns: Namespace) -> None:
    with pytest.raises(LockLost), make(r, ns, ttl=0.05):
        time.sleep(0.08)


def test_an_instance_is_not_reentrant(r: redis.Redis, ns: Namespace) -> None:
    lock = make(r, ns)
    lock.acquire()
    with pytest.raises(LockError, match="not reentrant"):
        lock.acquire()


BAD_CONSTRUCTOR_INPUT = [
    ({"ttl": 0}, ValueError, "ttl must be > 0 and at most .*, got 0"),
    ({"ttl": -1}, ValueError, "ttl must be > 0 and at most .*, got -1"),
    ({"ttl": float("nan")}, ValueError, "ttl must be a number of seconds, got nan"),
    ({"ttl": "10"}, TypeError, "ttl must be a number"),
    ({"name": ""}, ValueError, "name must be a non-empty string"),
    ({"name": 42}, TypeError, "name must be a str"),
    ({"name": "a}b"}, ValueError, "name must not contain"),
    ({"prefix": "x{"}, ValueError, "prefix must not contain"),
    ({"strategy": "poll"}, ValueError, "strategy must be one of"),
    ({"timeout": -1}, ValueError, "timeout must be >= 0 and at most .*, got -1"),
    ({"spin_interval": 0}, ValueError, "spin_interval must be > 0"),
    ({"max_block": -0.5}, ValueError, "max_block must be > 0"),
]


def test_bad_constructor_input_is_refused_before_redis(r: redis.Redis, ns: Namespace) -> None:
    client, trips = counting_client(r)
    for kwargs, error, message in BAD_CONSTRUCTOR_INPUT:
        args: dict[str, Any] = {"name": "job", "prefix": ns.prefix, **kwargs}  # type: ignore[dict-item]
        with pytest.raises(error, match=message):
            Lock(client, **args)
    assert trips.count == 0


def test_bad_call_input_is_refused_before_redis(r: redis.Redis, ns: Namespace) -> None:
    client, trips = counting_client(r)
    lock = Lock(client, "job", prefix=ns.prefix)
    with pytest.raises(ValueError, match=r"timeout must be >= 0 and at most .*, got -1"):
        lock.acquire(timeout=-1)
    with pytest.raises(ValueError, match="timeout must be None when blocking=False"):
        lock.acquire(blocking=False, timeout=1)
    with pytest.raises(TypeError, match="blocking must be a bool"):
        lock.acquire(blocking="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"ttl must be > 0 and at most .*, got 0"):
        lock.extend(0)
    assert trips.count == 0


# Every numeric argument, against values a caller might pass by mistake: huge (2**63, 1e300,
# ints beyond a float), tiny, negative, nan, inf, bool, text, None.
EXTREMES = [2**63, 2**63 - 1, 2**64, 10**400, 1e300, -1e300, math.nan, math.inf, -math.inf,
            True, False, 0, -0.0, 5e-324, 2**46 / 1000, 2**46 / 1000 + 1, "10", None]  # fmt: skip
ADVERSARIAL = st.one_of(
    st.sampled_from(EXTREMES),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
)
DURATIONS = {  # argument -> (zero allowed, largest value in ms, None allowed)
    "ttl": (False, 2**46, False),
    "timeout": (True, 2**46, True),
    "spin_interval": (False, 2**42, False),
    "backoff_base": (False, 2**42, False),
    "backoff_cap": (False, 2**42, False),
    "max_block": (False, 2**46, False),
}
_counting: dict[int, tuple[redis.Redis, object]] = {}


def counted(r: redis.Redis) -> tuple[redis.Redis, object]:
    """One round-trip-counting client per server under test (reused across examples)."""
    if id(r) not in _counting:
        _counting[id(r)] = counting_client(r)
    return _counting[id(r)]


def valid_duration(arg: str, value: object) -> bool:
    allow_zero, cap_ms, allow_none = DURATIONS[arg]
    if value is None:
        return allow_none
    return is_duration(value, cap_ms, allow_zero=allow_zero)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(arg=st.sampled_from(sorted(DURATIONS)), value=ADVERSARIAL)
def test_every_duration_argument_is_checked_before_the_first_command(
    r: redis.Redis, ns: Namespace, arg: str, value: object
) -> None:
    client, trips = counted(r)
    before = trips.count  # type: ignore[attr-defined]
    try:
        Lock(client, "job", prefix=ns.prefix, **{arg: value})  # type: ignore[arg-type]
        accepted = True
    except (TypeError, ValueError) as exc:
        assert str(exc).startswith(f"{arg} must"), exc
        accepted = False
    assert accepted == valid_duration(arg, value)
    assert trips.count == before and ns.keys() == []  # type: ignore[attr-defined]


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(value=ADVERSARIAL)
def test_acquire_timeout_and_extend_ttl_are_checked_before_the_first_command(
    r: redis.Redis, ns: Namespace, value: object
) -> None:
    client, trips = counted(r)
    lock = Lock(client, f"job-{time.monotonic_ns()}", prefix=ns.prefix)
    before, keys = trips.count, ns.keys()  # type: ignore[attr-defined]
    try:
        token = lock.acquire(timeout=value)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        assert str(exc).startswith("timeout must"), exc
        assert not valid_duration("timeout", value)
        assert trips.count == before and ns.keys() == keys  # type: ignore[attr-defined]
        token = lock.acquire(blocking=False)
    else:
        assert valid_duration("timeout", value)
    assert token is not None
    before = trips.count  # type: ignore[attr-defined]
    try:
        assert lock.extend(value) is True  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        assert str(exc).startswith("ttl must"), exc
        assert value is not None and not valid_duration("ttl", value)
        assert trips.count == before  # type: ignore[attr-defined]
    lock.release()  # False when a tiny ttl (1 ms) ran out already


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(value=ADVERSARIAL)
def test_fencing_tokens_are_checked_before_the_first_command(
    r: redis.Redis, ns: Namespace, value: object
) -> None:
    client, trips = counted(r)
    store = FencedStore(client, ns.key("record"), fenced=False)
    before = trips.count  # type: ignore[attr-defined]
    valid = isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 2**53
    try:
        assert store.write("v", value) is True  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        assert str(exc).startswith("token must"), exc
        assert not valid and trips.count == before  # type: ignore[attr-defined]
    else:
        assert valid and store.read() == ("v", value)


def test_lock_errors_are_labkit_errors() -> None:
    assert issubclass(LockError, LabkitError)
    assert issubclass(LockNotAcquired, LockError) and issubclass(LockNotAcquired, TimeoutError)
    assert issubclass(LockLost, LockError)


def test_compare_and_delete_script_deletes_only_the_expected_value(
    r: redis.Redis, ns: Namespace
) -> None:
    key = ns.key("k")
    r.set(key, "mine")
    assert delete_if_equal(r, None, key, "theirs") is False and r.exists(key)
    assert delete_if_equal(r, None, key, "mine") is True and not r.exists(key)


def test_the_lock_keys_share_one_hash_slot() -> None:
    keys = lock_keys("lab:06-locks:", "orders:42")
    assert keys.lock == "lab:06-locks:{orders:42}"
    names = [keys.lock, keys.fence, keys.waiting, keys.waiters, keys.wake_list("a1b2")]
    assert len({key_slot(k.encode()) for k in names}) == 1
    assert lock_keys("lock:", "job").wake_list("t") == "lock:{job}:wake:t"


def server_ms(r: redis.Redis) -> int:
    seconds, micros = r.time()
    return seconds * 1000 + micros // 1000


def register_ghost(r: redis.Redis, lock: Lock, ghost: str, *, lease_ms: int, live: bool) -> None:
    """A registration whose waiter never comes back (killed with SIGKILL), live or expired."""
    deadline = server_ms(r) + (5000 if live else -1)
    r.zadd(lock.keys.waiting, {ghost: 1})
    r.hset(lock.keys.waiters, ghost, f"{deadline} {lease_ms}")


def test_release_without_waiters_frees_the_lock(r: redis.Redis, ns: Namespace) -> None:
    lock = make(r, ns)
    lock.acquire()
    lock.release()
    assert [k for k in ns.keys() if k != lock.keys.fence] == []
    assert lock.acquire(blocking=False) is not None


def test_release_hands_over_to_a_live_registration_with_the_waiters_lease(
    r: redis.Redis, ns: Namespace
) -> None:
    lock = make(r, ns, ttl=30.0)
    register_ghost(r, lock, "ghost", lease_ms=200, live=True)
    first = lock.acquire()
    assert lock.release() is True
    assert lock.locked() and not lock.owned()  # handed over, not freed
    assert r.get(lock.keys.lock) == "ghost"
    assert r.lrange(lock.keys.wake_list("ghost"), 0, -1) == [str(first + 1)]  # type: ignore[operator]
    # The grant and the lease are the waiter's (200 ms), and expire together.
    assert 0 < r.pttl(lock.keys.wake_list("ghost")) <= 200 and 0 < r.pttl(lock.keys.lock) <= 200
    assert not r.exists(lock.keys.waiting) and not r.exists(lock.keys.waiters)


def test_release_skips_expired_registrations_and_frees_the_lock(
    r: redis.Redis, ns: Namespace
) -> None:
    lock = make(r, ns)
    register_ghost(r, lock, "gone", lease_ms=30_000, live=False)
    lock.acquire()
    assert lock.release() is True
    assert not lock.locked() and not r.exists(lock.keys.wake_list("gone"))
    assert not r.exists(lock.keys.waiting) and not r.exists(lock.keys.waiters)


def test_release_hands_the_lock_to_a_blocked_waiter_so_nobody_barges_in(
    r: redis.Redis, ns: Namespace
) -> None:
    holder = make(r, ns)
    first = holder.acquire()
    waiter = make(r, ns, max_block=3.0)
    thread, got = acquire_in_thread(waiter, timeout=20)
    assert wait_for(lambda: blocked_in_blpop(r, holder.keys.lock) == 1)
    holder.release()
    assert holder.acquire(blocking=False) is None  # already the waiter's
    thread.join(10)
    assert got == [first + 1] and waiter.owned()  # type: ignore[operator]
    waiter.release()
    assert [k for k in ns.keys() if k != holder.keys.fence] == []


def test_waiters_are_served_in_the_order_they_registered(r: redis.Redis, ns: Namespace) -> None:
    holder = make(r, ns, ttl=30.0)
    holder.acquire()
    order: list[str] = []
    threads = []
    for i in range(3):
        waiter = make(r, ns, ttl=30.0, max_block=3.0)

        def run(waiter: Lock = waiter, i: int = i) -> None:
            if waiter.acquire(timeout=20) is not None:
                order.append(f"w{i}")
                waiter.release()

        threads.append(threading.Thread(target=run))
        threads[-1].start()
        assert wait_for(lambda i=i: r.zcard(holder.keys.waiting) == i + 1)  # type: ignore[misc]
    holder.release()
    for t in threads:
        t.join(20)
    assert order == ["w0", "w1", "w2"]


def test_a_blocked_notify_waiter_is_woken_by_release(r: redis.Redis, ns: Namespace) -> None:
    holder = make(r, ns)
    holder.acquire()
    # Only a wake-up (or the end of its 4 s block, under the client's 5 s socket timeout)
    # can end the waiter's BLPOP.
    waiter = make(r, ns, max_block=4.0)
    thread, got = acquire_in_thread(waiter, timeout=20)
    assert wait_for(lambda: blocked_in_blpop(r, holder.keys.lock) == 1)
    started = time.monotonic()
    holder.release()
    thread.join(10)
    assert not thread.is_alive() and got and got[0] is not None
    assert time.monotonic() - started < 3.5  # woken, long before its block would end


def test_a_grant_pushed_before_the_waiter_blocks_is_not_lost(r: redis.Redis, ns: Namespace) -> None:
    holder, waiter = make(r, ns), make(r, ns, max_block=30.0)
    first = holder.acquire()
    # The waiter's failed attempt registered it (same script); it has not reached BLPOP yet ...
    token = "waiter-token"
    keys = waiter._keys_for(token)
    granted, _ = waiter._acquire(keys=keys, args=[token, 10_000, 30_000, 1000])
    assert granted == 0 and r.zrange(holder.keys.waiting, 0, -1) == [token]
    holder.release()  # ... when the release runs: the grant waits in its list for it.
    assert r.lrange(holder.keys.wake_list(token), 0, -1) == [str(first + 1)]  # type: ignore[operator]
    # Its next attempt takes it: granted with the fencing token of the hand-over.
    assert waiter._acquire(keys=keys, args=[token, 10_000, 30_000, 1000]) == [1, first + 1]  # type: ignore[operator]
    assert r.get(holder.keys.lock) == token and not r.exists(holder.keys.wake_list(token))


def test_a_crashed_holder_delays_notify_waiters_by_its_lease_only(
    r: redis.Redis, ns: Namespace
) -> None:
    crashed = make(r, ns, ttl=0.2)
    crashed.acquire()  # and never releases: no wake-up will ever be pushed
    waiter = make(r, ns, max_block=30.0)
    assert waiter.acquire(timeout=10) is not None


def test_no_lost_wake_ups_under_notify(r: redis.Redis, ns: Namespace) -> None:
    # Leases and blocks of 30 s: a lost wake-up would leave a waiter stuck until timeout.
    results: list[int | None] = []
    guard = threading.Lock()

    def worker() -> None:
        lock = make(r, ns, ttl=30.0, max_block=30.0)
        for _ in range(15):
            token = lock.acquire(timeout=20)
            with guard:
                results.append(token)
            if token is None:
                return
            lock.release()

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == 8 * 15 and None not in results
    assert len(set(results)) == len(results)


@pytest.mark.parametrize("strategy", ["spin", "backoff", "notify"])
def test_every_strategy_gets_the_lock_once_it_is_released(
    r: redis.Redis, ns: Namespace, strategy: str
) -> None:
    holder = make(r, ns)
    holder.acquire()
    waiter = make(r, ns, strategy=strategy, spin_interval=0.01)
    timer = threading.Timer(0.05, holder.release)
    timer.start()
    assert waiter.acquire(timeout=10) is not None
    timer.join()


def _holder(spec: ServerSpec, prefix: str, log_key: str, rounds: int) -> None:
    """A separate process: take the lock ``rounds`` times, logging its token on entry and exit."""
    client = open_client(spec)
    lock = Lock(client, "shared", ttl=10.0, prefix=prefix)
    for _ in range(rounds):
        token = lock.acquire(timeout=30)
        assert token is not None
        client.rpush(log_key, f"enter:{token}")
        time.sleep(0.001)
        client.rpush(log_key, f"exit:{token}")
        assert lock.release()
    client.close()


def test_processes_never_hold_the_lock_together(r: redis.Redis, ns: Namespace) -> None:
    spec = server_spec(r)
    log_key = ns.key("log")
    with ProcessPoolExecutor(4, mp_context=mp_context()) as pool:
        for f in [pool.submit(_holder, spec, ns.prefix, log_key, 10) for _ in range(4)]:
            f.result()
    log: list[str] = r.lrange(log_key, 0, -1)  # type: ignore[assignment]
    assert len(log) == 80
    enters, exits = log[0::2], log[1::2]
    # No interleaving: every entry is followed by the same holder's exit ...
    assert all(
        e.split(":")[0] == "enter" and x == "exit:" + e.split(":")[1]
        for e, x in zip(enters, exits, strict=True)
    )
    # ... and the fencing tokens strictly increase.
    tokens = [int(e.split(":")[1]) for e in enters]
    assert all(a < b for a, b in itertools.pairwise(tokens))


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    ops=st.lists(
        st.tuples(st.integers(0, 2), st.sampled_from(["acquire", "release", "extend"])), max_size=25
    )
)
def test_sequential_operations_keep_one_owner_and_increasing_tokens(
    r: redis.Redis, ns: Namespace, ops: list[tuple[int, str]]
) -> None:
    name = f"prop-{time.monotonic_ns()}"
    locks = [make(r, ns, name, ttl=30.0) for _ in range(3)]
    owner: int | None = None
    last = 0
    for i, op in ops:
        if op == "acquire":
            if locks[i].fencing_token is not None and owner == i:
                continue  # not reentrant; tested elsewhere
            token = locks[i].acquire(blocking=False)
            assert (token is not None) == (owner is None)
            if token is not None:
                assert token > last
                owner, last = i, token
        elif op == "release":
            assert locks[i].release() == (owner == i)
            if owner == i:
                owner = None
        else:
            assert locks[i].extend() == (owner == i)
        assert [lk.owned() for lk in locks] == [owner == j for j in range(3)]
    r.delete(*vars(lock_keys(ns.prefix, name)).values())


def test_fenced_store_rejects_a_lower_token_and_unfenced_accepts_it(
    r: redis.Redis, ns: Namespace
) -> None:
    fenced, plain = FencedStore(r, ns.key("a")), FencedStore(r, ns.key("b"), fenced=False)
    for store in (fenced, plain):
        assert store.write("new", 34, owner="w") and store.write("same token again", 34, owner="w")
    assert fenced.write("stale", 33, owner="w") is False
    assert fenced.read() == ("same token again", 34)
    assert plain.write("stale", 33) is True
    assert plain.read() == ("stale", 33)
    with pytest.raises(TypeError, match="token must be an int"):
        fenced.write("x", "33")  # type: ignore[arg-type]


def test_fenced_store_rejects_an_equal_token_from_another_owner(
    r: redis.Redis, ns: Namespace
) -> None:
    # Regression: an equal token used to land whoever wrote it. After a failover or a crash
    # without persistence the counter goes back and two holders get the same token; the
    # store then took the stale holder's write. One rule now: accept iff token > highest,
    # or token == highest AND the same (named) owner.
    store = FencedStore(r, ns.key("equal"))
    assert store.write("A", 8, owner="holder-a") is True
    assert store.write("B", 8, owner="holder-b") is False  # same token, another owner
    assert store.write("A again", 8, owner="holder-a") is True  # the holder's own next write
    assert store.write("anonymous", 8) is False  # no owner named: cannot be the same one
    assert store.read() == ("A again", 8)
    assert store.write("B", 9, owner="holder-b") is True  # a higher token always lands
    assert store.write("no owner", 10) is True and store.write("no owner", 10) is False
    assert store.read() == ("no owner", 10)
    plain = FencedStore(r, ns.key("plain"), fenced=False)
    assert plain.write("A", 8, owner="holder-a") and plain.write("B", 8, owner="holder-b")
    with pytest.raises(TypeError, match="owner must be a str"):
        store.write("x", 11, owner=11)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="owner must be a non-empty string"):
        store.write("x", 11, owner="")
    assert store.read() == ("no owner", 10)


def test_owner_names_the_current_grant_for_the_fenced_store(r: redis.Redis, ns: Namespace) -> None:
    lock, other = make(r, ns, "owned"), make(r, ns, "owned")
    assert lock.owner is None
    token = lock.acquire(blocking=False)
    assert token is not None and isinstance(lock.owner, str) and lock.owned()
    store = FencedStore(r, ns.key("owned-record"))
    assert store.write("first", token, owner=lock.owner)
    assert store.write("second", token, owner=lock.owner)  # the holder writes again
    lock.release()
    assert lock.owner is None
    again = other.acquire(blocking=False)
    assert again == token + 1 and other.owner != lock.owner


def test_native_compare_and_delete_is_detected_not_assumed(r: redis.Redis, ns: Namespace) -> None:
    command = server_compare_and_delete(r)
    assert command in (None, "DELEX", "DELIFEQ")
    if command is None:
        with pytest.raises(redis.RedisError):  # unknown command
            r.execute_command("DELIFEQ", ns.key("k"), "v")
        return
    r.set(ns.key("k"), "mine")
    assert delete_if_equal(r, command, ns.key("k"), "theirs") is False
    assert delete_if_equal(r, command, ns.key("k"), "mine") is True
    assert not r.exists(ns.key("k"))


def test_contention_sweep_runs_every_variant(r: redis.Redis, ns: Namespace) -> None:
    variants = ("spin", "backoff", "notify", "redis-py", "naive")
    results = list(
        contention_sweep(r, variants, (2,), prefix=ns.prefix, duration=0.1, start_delay=0.01)
    )
    assert [res.variant for res in results] == list(variants)
    for res in results:
        row = res.row()
        assert (
            res.sections > 0 and 0 < row["jain"] <= 1 and row["max_wait_ms"] >= row["p90_wait_ms"]
        )
        assert row["waits"] >= res.sections  # completed waits, plus any still open at the end
    with pytest.raises(ValueError, match="mode must be"):
        next(contention_sweep(r, ("spin",), (1,), prefix=ns.prefix, mode="fibers"))
    with pytest.raises(ValueError, match="variants must be among"):
        next(contention_sweep(r, ("mutex",), (1,), prefix=ns.prefix))


def test_a_paused_holders_stale_write_lands_without_fencing_and_is_rejected_with_it(
    r: redis.Redis, ns: Namespace
) -> None:
    for fenced in (False, True):
        (round_,) = pause_rounds(r, prefix=ns.prefix, rounds=1, fenced=fenced)
        assert round_.double_grant and round_.second_token > round_.paused_token  # type: ignore[operator]
        assert round_.stale_write_landed is (not fenced)
        assert round_.paused_release_ok is False
    with pytest.raises(ValueError, match="pause must be longer than ttl"):
        pause_rounds(r, prefix=ns.prefix, rounds=1, fenced=True, ttl=0.2, pause=0.1)


# --------------------------------------------------------------------------------------
# Regression tests for the notify races of issue 19 (bugs 1, 4, 5, 6). Each waits for a
# condition on the server (a client blocked in BLPOP), never for a guessed delay; the only
# sleeps are lower bounds that make a critical section or a pause *at least* that long.
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("holder_ttl", "waiter_ttl"), [(2.0, 30.0), (30.0, 1.0)])
def test_a_handed_over_lock_carries_the_waiters_own_lease(
    r: redis.Redis, ns: Namespace, holder_ttl: float, waiter_ttl: float
) -> None:
    holder = make(r, ns, ttl=holder_ttl)
    first = holder.acquire()
    waiter = make(r, ns, ttl=waiter_ttl, max_block=3.0)
    thread, got = acquire_in_thread(waiter, timeout=10)
    assert wait_for(lambda: blocked_in_blpop(r, holder.keys.lock) == 1)
    assert holder.release() is True
    thread.join(10)
    assert got == [first + 1] and waiter.owned()  # type: ignore[operator]
    # The lease is the one the waiter asked for, not the releaser's: a 30 s waiter is not
    # exposed to a second holder after 2 s, a 1 s waiter that dies blocks nobody for 30 s.
    assert waiter_ttl * 1000 - 1000 < r.pttl(holder.keys.lock) <= waiter_ttl * 1000


def test_a_release_after_a_long_critical_section_still_hands_over(
    r: redis.Redis, ns: Namespace
) -> None:
    holder = make(r, ns, ttl=30.0)
    holder.acquire()
    first = make(r, ns, ttl=30.0, max_block=0.5)
    thread, got = acquire_in_thread(first, timeout=10)
    assert wait_for(lambda: blocked_in_blpop(r, holder.keys.lock) == 1)
    holder.release()
    thread.join(10)
    assert got[0] is not None and first.owned()
    # A critical section longer than any registration of `first` could live (2 x its
    # max_block + 1 s in the shared-counter design): at least this long, longer is fine.
    time.sleep(2.2)
    second = make(r, ns, ttl=30.0, max_block=3.0)
    thread, got2 = acquire_in_thread(second, timeout=10)
    assert wait_for(lambda: blocked_in_blpop(r, holder.keys.lock) == 1)
    assert first.release() is True
    assert make(r, ns).acquire(blocking=False) is None  # handed over: no newcomer barges in
    thread.join(10)
    assert got2 == [got[0] + 1] and second.owned()


def test_a_short_max_block_caller_does_not_shorten_another_waiters_registration(
    r: redis.Redis, ns: Namespace
) -> None:
    holder = make(r, ns, ttl=30.0)
    first = holder.acquire()
    patient = make(r, ns, ttl=30.0, max_block=4.0)
    thread, got = acquire_in_thread(patient, timeout=10)
    assert wait_for(lambda: blocked_in_blpop(r, holder.keys.lock) == 1)
    hasty = make(r, ns, max_block=0.1)
    assert hasty.acquire(timeout=0.05) is None
    # Longer than the hasty caller's own registration could live (2 x 0.1 s + 1 s); the
    # patient waiter, blocked for up to 4 s, must still be registered.
    time.sleep(1.3)
    assert holder.release() is True
    assert make(r, ns).acquire(blocking=False) is None  # handed over, not freed
    thread.join(10)
    assert got == [first + 1] and patient.owned()  # type: ignore[operator]


def test_an_interrupted_waiter_is_never_handed_the_lock(r: redis.Redis, ns: Namespace) -> None:
    holder = make(r, ns, ttl=30.0)
    holder.acquire()
    waiter = make(r, ns, ttl=30.0, max_block=3.0)

    def interrupt(signum: int, frame: object) -> None:
        raise Interrupted

    def interrupt_main_thread_once_blocked() -> None:
        if wait_for(lambda: blocked_in_blpop(r, holder.keys.lock) == 1):
            signal.pthread_kill(threading.main_thread().ident, signal.SIGUSR1)  # type: ignore[arg-type]

    previous = signal.signal(signal.SIGUSR1, interrupt)
    helper = threading.Thread(target=interrupt_main_thread_once_blocked)
    try:
        helper.start()
        with pytest.raises(Interrupted):
            waiter.acquire(timeout=10)  # blocks in BLPOP until the signal arrives
    finally:
        helper.join()
        signal.signal(signal.SIGUSR1, previous)
    assert not waiter.owned()
    assert holder.release() is True
    assert not holder.locked()  # freed, not handed to the waiter that is gone
    assert make(r, ns).acquire(blocking=False) is not None


def test_an_interrupted_waiter_passes_on_a_grant_it_was_handed(
    r: redis.Redis, ns: Namespace
) -> None:
    holder = make(r, ns, ttl=30.0)
    holder.acquire()
    calls = 0

    def clock() -> float:
        # Called before each attempt. By the second attempt the waiter is registered and its
        # first block has timed out: the holder hands the lock over to it right then, and
        # the waiter is interrupted before it could see the grant.
        nonlocal calls
        calls += 1
        if calls == 3:
            assert holder.release() is True
            assert r.get(holder.keys.lock) is not None  # handed over, not freed
            raise Interrupted
        return time.monotonic()

    waiter = make(r, ns, ttl=30.0, max_block=0.01, clock=clock)
    with pytest.raises(Interrupted):
        waiter.acquire(timeout=10)
    assert calls == 3 and waiter.fencing_token is None
    assert not holder.locked()  # the unused grant was released on the way out
    assert [k for k in ns.keys() if k != holder.keys.fence] == []


def test_one_block_stays_below_the_clients_socket_timeout(r: redis.Redis, ns: Namespace) -> None:
    # redis-py applies socket_timeout to BLPOP's reply too: a longer block would raise
    # TimeoutError in the middle of a wait.
    if hasattr(r, "get_node_from_key"):
        pytest.skip("a single-node client is enough to build one with a socket timeout")
    kwargs = r.connection_pool.connection_kwargs
    short = redis.Redis(host=kwargs["host"], port=kwargs["port"], password=kwargs.get("password"),
                        socket_timeout=0.5)
    try:
        holder, waiter = make(r, ns, ttl=5.0), make(short, ns, max_block=2.0)
        assert waiter.max_block == 0.4
        holder.acquire()
        assert waiter.acquire(timeout=1.2) is None  # three bounded blocks, no TimeoutError
        holder.release()
    finally:
        short.close()
    assert [k for k in ns.keys() if k != holder.keys.fence] == []
