"""labkit.flags against a real server: lifecycle, overrides, stable rollout, bad input."""

from __future__ import annotations

import math
import subprocess
import sys
import threading

import pytest
import redis
from helpers import is_int, is_number, numbers, refused_cleanly_or_accepted
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.cluster import RedisCluster

from labkit.flags import BUCKETS, FeatureFlags, bucket
from labkit.keys import Namespace
from labkit.measure import counting_client
from labkit.server import address, is_cluster


@pytest.fixture
def flags(r: redis.Redis, ns: Namespace) -> FeatureFlags:
    return FeatureFlags(r, prefix=ns.prefix)


def raw_client(r: redis.Redis) -> redis.Redis:
    """A second client to the same server or cluster, with decode_responses=False."""
    host, port = address(r)
    cls = RedisCluster if is_cluster(r) else redis.Redis
    return cls(host=host, port=port, decode_responses=False)


def test_unknown_flag_is_off(flags: FeatureFlags) -> None:
    assert flags.is_enabled("ghost") is False
    assert flags.is_enabled("ghost", user_id=1) is False
    assert flags.get("ghost") is None


def test_enable_turns_on_for_everyone_and_anonymous(flags: FeatureFlags) -> None:
    flags.enable("dark-mode")
    assert flags.is_enabled("dark-mode")
    assert all(flags.is_enabled("dark-mode", user_id=u) for u in range(50))


def test_disable_is_a_kill_switch_over_overrides(flags: FeatureFlags) -> None:
    flags.enable_for_user("beta", "ann")
    flags.set_rollout("beta", 100)
    flags.disable("beta")
    assert flags.is_enabled("beta", user_id="ann") is False
    assert flags.is_enabled("beta", user_id="bo") is False
    assert flags.get("beta") == {"enabled": False, "rollout": 100.0, "overrides": {"ann": True}}


def test_enable_after_disable_restores_the_rollout_and_overrides(flags: FeatureFlags) -> None:
    """Regression: a kill switch during a 5% rollout, then enable, must not expose everyone."""
    users = range(2000)
    flags.set_rollout("checkout", 5)
    flags.disable_for_user("checkout", 7)
    before = flags.is_enabled_many("checkout", users)
    flags.disable("checkout")
    assert not any(flags.is_enabled_many("checkout", users))
    flags.enable("checkout")
    assert flags.get("checkout") == {"enabled": True, "rollout": 5.0, "overrides": {"7": False}}
    assert flags.is_enabled_many("checkout", users) == before
    assert 0 < sum(before) < 200


def test_enable_keeps_a_partial_rollout_and_set_rollout_100_goes_to_everyone(
    flags: FeatureFlags,
) -> None:
    flags.set_rollout("search", 10)
    flags.enable("search")  # already on: enable changes nothing
    assert flags.get("search") == {"enabled": True, "rollout": 10.0, "overrides": {}}
    assert flags.is_enabled("search") is False
    flags.set_rollout("search", 100)
    assert flags.is_enabled("search") is True
    assert all(flags.is_enabled_many("search", range(200)))


def test_enable_after_disable_of_a_new_flag_turns_it_on_for_everyone(flags: FeatureFlags) -> None:
    flags.disable("fresh")  # registered switched off, no rollout chosen yet
    assert flags.is_enabled("fresh", user_id=1) is False
    flags.enable("fresh")
    assert flags.get("fresh") == {"enabled": True, "rollout": 100.0, "overrides": {}}
    assert flags.is_enabled("fresh") is True


def test_enable_after_enable_for_user_keeps_the_zero_rollout(flags: FeatureFlags) -> None:
    flags.enable_for_user("beta", "ann")
    flags.disable("beta")
    flags.enable("beta")
    assert flags.is_enabled("beta", user_id="ann") is True
    assert flags.is_enabled("beta", user_id="bo") is False


def _user_per_bucket() -> dict[int, int]:
    """One user id for every bucket of flag "exact" (found by scanning ids)."""
    found: dict[int, int] = {}
    user = 0
    while len(found) < BUCKETS:
        found.setdefault(bucket("exact", user), user)
        user += 1
    return found


def test_rollout_turns_on_exactly_100p_buckets(flags: FeatureFlags) -> None:
    """Regression: 0.07% turned on 8 buckets (0.07 * 10000 / 100 = 7.000000000000001)."""
    at = _user_per_bucket()
    hundredths = [n for n in range(1, BUCKETS) if n / 100 * BUCKETS / 100 != n]
    hundredths += list(range(1, BUCKETS, 97))
    assert 7 in hundredths
    for n in sorted(set(hundredths)):
        flags.set_rollout("exact", n / 100)
        inside, outside = flags.is_enabled_many("exact", [at[n - 1], at[n]])
        assert (inside, outside) == (True, False), n / 100


def test_rollout_finer_than_a_hundredth_is_refused(flags: FeatureFlags, ns: Namespace) -> None:
    for percent in (0.075, 12.345, 1 / 3, 0.001):
        with pytest.raises(ValueError, match="percent"):
            flags.set_rollout("fine", percent)
    assert ns.keys() == []
    flags.set_rollout("fine", 0.1 + 0.2)  # 0.30000000000000004: float noise, not a finer value
    assert flags.get("fine") == {"enabled": True, "rollout": 0.3, "overrides": {}}


def test_enable_for_user_on_a_new_flag_enables_only_that_user(flags: FeatureFlags) -> None:
    flags.enable_for_user("beta", 42)
    assert flags.is_enabled("beta", user_id=42) is True
    assert flags.is_enabled("beta", user_id="42") is True  # ids are compared as text
    assert flags.is_enabled("beta", user_id=43) is False
    assert flags.is_enabled("beta") is False


def test_disable_for_user_beats_full_rollout(flags: FeatureFlags) -> None:
    flags.enable("checkout")
    flags.disable_for_user("checkout", "grumpy")
    assert flags.is_enabled("checkout", user_id="grumpy") is False
    assert flags.is_enabled("checkout", user_id="happy") is True
    assert flags.clear_user("checkout", "grumpy") is True
    assert flags.clear_user("checkout", "grumpy") is False
    assert flags.is_enabled("checkout", user_id="grumpy") is True


def test_rollout_enables_users_whose_bucket_is_below_the_percent(flags: FeatureFlags) -> None:
    flags.set_rollout("new-ui", 37.5)
    for user in range(300):
        expected = bucket("new-ui", user) < 3750
        assert flags.is_enabled("new-ui", user_id=user) is expected
    assert flags.is_enabled("new-ui") is False  # anonymous: only a full rollout


def test_rollout_share_is_close_to_the_target(flags: FeatureFlags) -> None:
    flags.set_rollout("share", 20)
    on = flags.is_enabled_many("share", range(10_000))
    assert 0.18 <= sum(on) / 10_000 <= 0.22


def test_is_enabled_many_agrees_with_is_enabled(flags: FeatureFlags) -> None:
    flags.set_rollout("many", 50)
    flags.enable_for_user("many", 3)
    flags.disable_for_user("many", 4)
    users = list(range(200))
    assert flags.is_enabled_many("many", users) == [flags.is_enabled("many", u) for u in users]


def test_bucket_is_stable_across_processes() -> None:
    code = "from labkit.flags import bucket; print([bucket('f', u) for u in range(20)])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str([bucket("f", u) for u in range(20)])


def test_bucket_differs_between_flags() -> None:
    a = [bucket("flag-a", u) for u in range(1000)]
    b = [bucket("flag-b", u) for u in range(1000)]
    assert sum(x == y for x, y in zip(a, b, strict=True)) < 10
    assert all(0 <= x < BUCKETS for x in a)


@settings(max_examples=60, deadline=None)
@given(
    flag=st.text(min_size=1, max_size=12).filter(lambda s: s == s.strip() and "\x00" not in s),
    low=st.integers(0, BUCKETS),
    high=st.integers(0, BUCKETS),
)
def test_growing_rollout_never_turns_a_user_off(flag: str, low: int, high: int) -> None:
    """Property: the users on at a lower rollout are a subset of those on at a higher one."""
    low, high = sorted((low, high))  # thresholds in hundredths of a percent
    users = range(200)
    on_low = {u for u in users if bucket(flag, u) < low}
    on_high = {u for u in users if bucket(flag, u) < high}
    assert on_low <= on_high


@settings(
    max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=st.lists(st.integers(0, BUCKETS), min_size=2, max_size=6).map(sorted))
def test_no_user_flips_off_as_stored_rollout_grows(flags: FeatureFlags, steps: list[int]) -> None:
    users = range(500)
    before: set[int] = set()
    for hundredths in steps:
        flags.set_rollout("grow", hundredths / 100)
        now = {u for u, on in zip(users, flags.is_enabled_many("grow", users), strict=True) if on}
        assert before <= now
        before = now


def test_list_flags_and_delete(flags: FeatureFlags) -> None:
    flags.enable("b")
    flags.disable("a")
    flags.enable_for_user("c", 1)
    assert flags.list_flags() == ["a", "b", "c"]
    assert flags.delete("b") is True
    assert flags.delete("b") is False
    assert flags.list_flags() == ["a", "c"]
    assert flags.is_enabled("b") is False


def test_is_enabled_is_one_round_trip(r: redis.Redis, ns: Namespace) -> None:
    client, counter = counting_client(r)
    ff = FeatureFlags(client, prefix=ns.prefix)
    ff.set_rollout("rt", 50)
    ff.enable_for_user("rt", "vip")
    for user in ("vip", "someone", None):
        counter.reset()
        ff.is_enabled("rt", user_id=user)
        assert counter.count == 1
    counter.reset()
    ff.is_enabled_many("rt", range(1000))
    assert counter.count == 1
    client.close()


def test_works_without_decoded_responses(r: redis.Redis, ns: Namespace) -> None:
    raw = raw_client(r)
    ff = FeatureFlags(raw, prefix=ns.prefix)
    ff.set_rollout("bytes", 30)
    ff.enable_for_user("bytes", "ann")
    ff.enable("other")
    assert raw.hget(ff._key("bytes"), "enabled") == b"1"  # the reply really is bytes
    assert ff.is_enabled("bytes", user_id="ann") is True
    assert ff.is_enabled("other") is True
    assert ff.is_enabled_many("bytes", range(100)) == [
        bucket("bytes", u) < 3000 for u in range(100)
    ]
    assert ff.list_flags() == ["bytes", "other"]
    assert ff.get("bytes") == {"enabled": True, "rollout": 30.0, "overrides": {"ann": True}}
    raw.close()


def test_concurrent_overrides_are_all_kept(flags: FeatureFlags) -> None:
    def worker(start: int) -> None:
        for u in range(start, start + 50):
            flags.enable_for_user("crowd", u)

    threads = [threading.Thread(target=worker, args=(i * 50,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    state = flags.get("crowd")
    assert state is not None and len(state["overrides"]) == 300
    assert flags.list_flags() == ["crowd"]
    assert all(flags.is_enabled_many("crowd", range(300)))


def test_keys_share_one_hash_slot_under_the_prefix(flags: FeatureFlags, ns: Namespace) -> None:
    flags.enable("x")
    flags.enable("y")
    tagged = ns.prefix + "{flags}:"
    assert ns.keys() == [tagged + "flag:x", tagged + "flag:y", tagged + "names"]


@pytest.mark.parametrize(
    ("call", "error", "words"),
    [
        (lambda f: f.set_rollout("x", 101), ValueError, "percent"),
        (lambda f: f.set_rollout("x", -1), ValueError, "percent"),
        (lambda f: f.set_rollout("x", float("nan")), ValueError, "percent"),
        (lambda f: f.set_rollout("x", "50"), TypeError, "percent"),
        (lambda f: f.set_rollout("x", True), TypeError, "percent"),
        (lambda f: f.set_rollout("x", 0.075), ValueError, "percent"),
        (lambda f: f.enable(""), ValueError, "flag"),
        (lambda f: f.enable(" x"), ValueError, "flag"),
        (lambda f: f.enable("a\x00b"), ValueError, "flag"),
        (lambda f: f.disable(None), TypeError, "flag"),
        (lambda f: f.is_enabled("x", user_id=""), ValueError, "user_id"),
        (lambda f: f.is_enabled("x", user_id=1.5), TypeError, "user_id"),
        (lambda f: f.enable_for_user("x", True), TypeError, "user_id"),
        (lambda f: f.is_enabled_many("x", [1, None]), TypeError, "user_id"),
        (lambda f: f.set_rollout("x", 10**400), ValueError, "percent"),
        (lambda f: f.set_rollout("x", 1e308), ValueError, "percent"),
        (lambda f: f.set_rollout("x", -math.inf), ValueError, "percent"),
        (lambda f: f.set_rollout("x", 100.00001), ValueError, "percent"),
        (lambda f: f.set_rollout("x", -5e-324), ValueError, "percent"),
        (lambda f: f.enable_for_user("x", 2**63), ValueError, "user_id"),
        (lambda f: f.enable_for_user("x", -(2**63) - 1), ValueError, "user_id"),
        (lambda f: f.enable_for_user("x", 10**5000), ValueError, "user_id"),
        (lambda f: f.disable_for_user("x", "   "), ValueError, "user_id"),
        (lambda f: f.is_enabled("x", user_id=10**5000), ValueError, "user_id"),
    ],
)
def test_bad_input_is_refused_before_reaching_redis(
    flags: FeatureFlags, ns: Namespace, call, error: type, words: str
) -> None:
    with pytest.raises(error, match=words):
        call(flags)
    assert ns.keys() == []


def test_bad_prefix_is_refused(r: redis.Redis) -> None:
    with pytest.raises(ValueError, match="prefix"):
        FeatureFlags(r, prefix="a{b}:")
    with pytest.raises(TypeError, match="prefix"):
        FeatureFlags(r, prefix=None)  # type: ignore[arg-type]


def test_percent_extremes_inside_the_range_are_exact(flags: FeatureFlags) -> None:
    for percent, on_for_everyone in ((0, False), (-0.0, False), (100, True), (100.0, True)):
        flags.set_rollout("edge", percent)
        assert flags.is_enabled("edge") is on_for_everyone
        assert all(v is on_for_everyone for v in flags.is_enabled_many("edge", range(200)))
    flags.set_rollout("edge", 0.01)
    assert flags.get("edge") == {"enabled": True, "rollout": 0.01, "overrides": {}}
    flags.enable_for_user("edge", 2**63 - 1)  # the 64-bit extremes are fine user ids
    flags.enable_for_user("edge", -(2**63))
    assert flags.is_enabled_many("edge", [2**63 - 1, -(2**63)]) == [True, True]


# -- property: numeric arguments, extremes included, are refused cleanly or accepted --------


def is_percent(value: object) -> bool:
    if not is_number(value, 0, 100):
        return False
    hundredths = float(value) * 100  # type: ignore[arg-type]
    return abs(hundredths - round(hundredths)) <= 1e-6


def is_int_user(value: object) -> bool:
    return is_int(value, -(2**63), 2**63 - 1)


# method -> (the argument under test, the call, is the value in the documented range?)
CALLS = {
    "set_rollout": ("percent", lambda f, v: f.set_rollout("p", v), is_percent),
    "enable_for_user": ("user_id", lambda f, v: f.enable_for_user("p", v), is_int_user),
    "disable_for_user": ("user_id", lambda f, v: f.disable_for_user("p", v), is_int_user),
    "clear_user": ("user_id", lambda f, v: f.clear_user("p", v), is_int_user),
    "is_enabled": ("user_id", lambda f, v: f.is_enabled("p", v), is_int_user),
    "is_enabled_many": ("user_id", lambda f, v: f.is_enabled_many("p", [1, v]), is_int_user),
    "bucket": ("user_id", lambda f, v: bucket("p", v), is_int_user),
}


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(method=st.sampled_from(sorted(CALLS)), value=numbers(0.01, 0.005, 99.99, 100, 100.01))
def test_numeric_arguments_are_refused_before_any_write_or_accepted(
    flags: FeatureFlags, ns: Namespace, method: str, value: object
) -> None:
    """Property: a value outside the documented range raises TypeError/ValueError naming the
    argument and leaves no key; a value inside it works."""
    ns.cleanup()
    arg, call, valid = CALLS[method]
    refused_cleanly_or_accepted(ns, arg, lambda v: call(flags, v), valid(value), value)
