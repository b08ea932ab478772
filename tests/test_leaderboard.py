"""labkit.leaderboard against a real server: ranks, views, ties, bad input, atomicity."""

from __future__ import annotations

import threading

import pytest
import redis
from helpers import is_int, is_number, numbers, refused_cleanly_or_accepted
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.cluster import RedisCluster

from labkit import RedisServer
from labkit.experiments.leaderboard import rank_frame
from labkit.keys import Namespace
from labkit.leaderboard import MAX_SCORE, MAX_WINDOW, Entry, Leaderboard
from labkit.measure import counting_client
from labkit.server import address, is_cluster

SCORES = {"alice": 10, "bob": 10, "carol": 7, "dave": 12, "erin": 7, "fay": 3}


@pytest.fixture
def board(r: redis.Redis, ns: Namespace) -> Leaderboard:
    lb = Leaderboard(r, "season", prefix=ns.prefix)
    for member, score in SCORES.items():
        lb.set_score(member, score)
    return lb


def assert_companions_consistent(r: redis.Redis, lb: Leaderboard) -> None:
    """The distinct-score set and the count hash describe exactly the scores on the board."""
    scores_key, distinct_key, counts_key = lb.keys
    counts: dict[float, int] = {}
    for _, score in r.zrange(scores_key, 0, -1, withscores=True):
        counts[score] = counts.get(score, 0) + 1
    stored = {float(k): int(v) for k, v in r.hgetall(counts_key).items()}
    assert stored == counts
    assert sorted(s for _, s in r.zrange(distinct_key, 0, -1, withscores=True)) == sorted(counts)


def test_get_rank_is_one_based_highest_first(board: Leaderboard) -> None:
    assert board.get_rank("dave") == 1
    assert board.get_rank("fay") == 6


def test_get_rank_of_unknown_member_is_none(board: Leaderboard) -> None:
    for method in ("ordinal", "competition", "dense"):
        assert board.get_rank("nobody", method=method) is None


def test_ordinal_ties_follow_reverse_lexicographic_member_order(board: Leaderboard) -> None:
    # Equal scores: Redis orders members ascending by bytes; ZREVRANK reads that backwards.
    assert board.get_rank("bob") == 2
    assert board.get_rank("alice") == 3
    assert [e.member for e in board.get_top(6)] == ["dave", "bob", "alice", "erin", "carol", "fay"]


def test_competition_ranks_share_and_skip(board: Leaderboard) -> None:
    ranks = {m: board.get_rank(m, method="competition") for m in SCORES}
    assert ranks == {"dave": 1, "alice": 2, "bob": 2, "carol": 4, "erin": 4, "fay": 6}


def test_dense_ranks_share_without_gaps(board: Leaderboard) -> None:
    ranks = {m: board.get_rank(m, method="dense") for m in SCORES}
    assert ranks == {"dave": 1, "alice": 2, "bob": 2, "carol": 3, "erin": 3, "fay": 4}


def test_rank_method_set_at_construction_is_the_default(r: redis.Redis, ns: Namespace) -> None:
    lb = Leaderboard(r, "season", prefix=ns.prefix, rank_method="dense")
    lb.add_many(SCORES)
    assert lb.get_rank("fay") == 4
    assert lb.get_rank("fay", method="ordinal") == 6


def test_get_top_returns_entries_with_ranks(board: Leaderboard) -> None:
    top = board.get_top(3, method="competition")
    assert top == [Entry(1, "dave", 12.0), Entry(2, "bob", 10.0), Entry(2, "alice", 10.0)]
    assert board.get_top(0) == []
    assert len(board.get_top(100)) == 6


def test_get_around_me_clips_at_the_ends(board: Leaderboard) -> None:
    assert [e.member for e in board.get_around_me("alice", 1)] == ["bob", "alice", "erin"]
    assert [e.member for e in board.get_around_me("dave", 2)] == ["dave", "bob", "alice"]
    assert [e.member for e in board.get_around_me("fay", 2)] == ["erin", "carol", "fay"]
    assert board.get_around_me("nobody", 2) is None
    assert board.get_around_me("carol", 0) == [Entry(5, "carol", 7.0)]


def test_get_around_me_ranks_use_the_method(board: Leaderboard) -> None:
    view = board.get_around_me("carol", 1, method="dense")
    assert view == [Entry(3, "erin", 7.0), Entry(3, "carol", 7.0), Entry(4, "fay", 3.0)]
    view = board.get_around_me("erin", 1, method="competition")
    assert view == [Entry(2, "alice", 10.0), Entry(4, "erin", 7.0), Entry(4, "carol", 7.0)]


def test_get_percentile_is_share_strictly_below(board: Leaderboard) -> None:
    assert board.get_percentile("fay") == 0.0
    assert board.get_percentile("carol") == pytest.approx(100 * 1 / 6)
    assert board.get_percentile("dave") == pytest.approx(100 * 5 / 6)
    assert board.get_percentile("nobody") is None


def test_increment_adds_and_creates(board: Leaderboard) -> None:
    assert board.increment("fay", 4.5) == 7.5
    assert board.increment("newcomer") == 1.0
    assert board.get_score("newcomer") == 1.0
    assert board.get_rank("fay", method="dense") == 3


def test_increment_reaching_2_53_is_refused_and_changes_nothing(
    r: redis.Redis, board: Leaderboard
) -> None:
    """From 2**53 on a double cannot tell x from x + 1: such a sum would lose increments."""
    assert MAX_SCORE == 2**53 - 1
    assert float(2**53) + 1 == float(2**53)  # why: the increment would vanish
    board.set_score("huge", MAX_SCORE - 1)
    before = {key: r.dump(key) for key in board.keys}
    for by in (2, 1.5, MAX_SCORE):
        with pytest.raises(ValueError, match="by"):
            board.increment("huge", by)
    board.set_score("low", -(MAX_SCORE - 1))
    with pytest.raises(ValueError, match="by"):
        board.increment("low", -2)
    board.remove("low")
    assert {key: r.dump(key) for key in board.keys} == before  # the board is unchanged
    assert board.get_score("huge") == MAX_SCORE - 1
    assert board.increment("huge", 1) == MAX_SCORE  # reaching 2**53 - 1 exactly is fine
    assert board.increment("huge", -MAX_SCORE) == 0.0
    assert_companions_consistent(r, board)


def test_leader_percentile_counts_members_tied_at_the_top(board: Leaderboard) -> None:
    # 6 members; after the tie two of them share the top score: both are at 100 * 4 / 6
    board.set_score("erin", board.get_score("dave") or 0)
    assert (
        board.get_percentile("dave") == board.get_percentile("erin") == pytest.approx(100 * 4 / 6)
    )


def test_remove_and_size(r: redis.Redis, board: Leaderboard) -> None:
    assert board.size() == 6
    assert board.remove("bob") is True
    assert board.remove("bob") is False
    assert board.size() == 5
    assert board.get_rank("alice", method="dense") == 2
    board.remove("alice")
    assert board.get_rank("carol", method="dense") == 2
    assert_companions_consistent(r, board)


def test_add_many_reports_new_members_and_replaces_scores(
    r: redis.Redis, board: Leaderboard
) -> None:
    assert board.add_many({"dave": 1, "zoe": 10, "yan": 99}, batch=2) == 2
    assert board.get_rank("yan") == 1
    assert board.get_rank("dave", method="competition") == 8
    assert_companions_consistent(r, board)


def test_clear_deletes_every_key(r: redis.Redis, ns: Namespace, board: Leaderboard) -> None:
    assert board.clear() == 3
    assert ns.keys() == []


def test_keys_share_one_hash_slot_under_the_prefix(board: Leaderboard, ns: Namespace) -> None:
    assert all(k.startswith(ns.prefix + "{season}:") for k in board.keys)


def test_works_without_decoded_responses(r: redis.Redis, ns: Namespace) -> None:
    host, port = address(r)
    cls = RedisCluster if is_cluster(r) else redis.Redis
    raw = cls(host=host, port=port, decode_responses=False)
    lb = Leaderboard(raw, "season", prefix=ns.prefix)
    lb.add_many(SCORES)
    assert lb.get_top(2, method="dense") == [Entry(1, "dave", 12.0), Entry(2, "bob", 10.0)]
    assert lb.get_around_me("fay", 1)[-1] == Entry(6, "fay", 3.0)
    assert lb.get_rank("erin", method="dense") == 3
    raw.close()


def test_every_query_is_one_round_trip(r: redis.Redis, board: Leaderboard) -> None:
    client, counter = counting_client(r)
    lb = Leaderboard(client, "season", prefix=board.prefix)
    calls = [
        lambda: lb.get_rank("carol"),
        lambda: lb.get_rank("carol", method="competition"),
        lambda: lb.get_rank("carol", method="dense"),
        lambda: lb.get_top(3, method="dense"),
        lambda: lb.get_around_me("carol", 2, method="competition"),
        lambda: lb.get_percentile("carol"),
        lambda: lb.set_score("carol", 8),
        lambda: lb.increment("carol", 1),
        lambda: lb.size(),
    ]
    for call in calls:
        call()  # first call may load the script (NOSCRIPT -> SCRIPT LOAD)
        counter.reset()
        call()
        assert counter.count == 1
    client.close()


def test_concurrent_increments_are_not_lost(r: redis.Redis, ns: Namespace) -> None:
    lb = Leaderboard(r, "race", prefix=ns.prefix)
    members = [f"p{i}" for i in range(4)]

    def worker() -> None:
        for i in range(100):
            lb.increment(members[i % 4], 1)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [lb.get_score(m) for m in members] == [200.0] * 4
    assert lb.get_rank("p3", method="dense") == 1
    assert_companions_consistent(r, lb)


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"name": ""}, ValueError, "name"),
        ({"name": "a{b}"}, ValueError, "name"),
        ({"name": 5}, TypeError, "name"),
        ({"rank_method": "olympic"}, ValueError, "rank_method"),
        ({"prefix": "x{"}, ValueError, "prefix"),
    ],
)
def test_bad_construction_is_refused(
    r: redis.Redis, ns: Namespace, kwargs: dict, error: type, words: str
) -> None:
    args = {"name": "season", "prefix": ns.prefix, **kwargs}
    with pytest.raises(error, match=words):
        Leaderboard(r, args.pop("name"), **args)


@pytest.mark.parametrize(
    ("call", "error", "words"),
    [
        (lambda lb: lb.set_score("a", "ten"), TypeError, "score"),
        (lambda lb: lb.set_score("a", True), TypeError, "score"),
        (lambda lb: lb.set_score("a", float("nan")), ValueError, "score"),
        (lambda lb: lb.set_score("a", float("inf")), ValueError, "score"),
        (lambda lb: lb.set_score("", 1), ValueError, "member"),
        (lambda lb: lb.set_score(None, 1), TypeError, "member"),
        (lambda lb: lb.increment("a", "1"), TypeError, "by"),
        (lambda lb: lb.get_top(-1), ValueError, "n"),
        (lambda lb: lb.get_top(2.5), TypeError, "n"),
        (lambda lb: lb.get_around_me("a", -3), ValueError, "n"),
        (lambda lb: lb.get_rank("a", method="modified"), ValueError, "method"),
        (lambda lb: lb.add_many({"a": "x"}), TypeError, "score"),
        (lambda lb: lb.add_many([("a", 1)]), TypeError, "scores"),
        (lambda lb: lb.add_many({"a": 1}, batch=0), ValueError, "batch"),
        (lambda lb: lb.add_many({"a": 1}, batch=1.5), TypeError, "batch"),
        (lambda lb: lb.add_many({"a": 1}, batch=2**63), ValueError, "batch"),
        (lambda lb: lb.set_score("a", 2**53), ValueError, "score"),
        (lambda lb: lb.set_score("a", -(2**53)), ValueError, "score"),
        (lambda lb: lb.set_score("a", 10**400), ValueError, "score"),
        (lambda lb: lb.increment("a", 2**53), ValueError, "by"),
        (lambda lb: lb.increment("a", float("-inf")), ValueError, "by"),
        (lambda lb: lb.increment("a", True), TypeError, "by"),
        (lambda lb: lb.add_many({"a": 1, "b": 2**60}), ValueError, "score of 'b'"),
        (lambda lb: lb.get_top(2**63), ValueError, "n"),
        (lambda lb: lb.get_top(MAX_WINDOW + 1), ValueError, "n"),
        (lambda lb: lb.get_top(True), TypeError, "n"),
        (lambda lb: lb.get_around_me("a", 2**63), ValueError, "n"),
    ],
)
def test_bad_input_is_refused_before_reaching_redis(
    r: redis.Redis, ns: Namespace, call, error: type, words: str
) -> None:
    lb = Leaderboard(r, "season", prefix=ns.prefix)
    with pytest.raises(error, match=words):
        call(lb)
    assert ns.keys() == []


operations = st.lists(
    st.tuples(
        st.sampled_from(["set", "incr", "remove"]),
        st.sampled_from(["a", "b", "c", "d", "e", "f", "g", "h", "ab", "B"]),
        st.integers(-3, 3).map(float) | st.sampled_from([0.5, -0.0, 2.25]),
    ),
    max_size=40,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=operations)
def test_ranks_match_pandas_for_every_method(r: redis.Redis, ns: Namespace, ops: list) -> None:
    """Property: after any sequence of writes, every rank agrees with a pandas ranking."""
    ns.cleanup()
    lb = Leaderboard(r, "prop", prefix=ns.prefix)
    model: dict[str, float] = {}
    for op, member, value in ops:
        if op == "set":
            lb.set_score(member, value)
            model[member] = value + 0.0
        elif op == "incr":
            lb.increment(member, value)
            model[member] = model.get(member, 0.0) + value
        else:
            lb.remove(member)
            model.pop(member, None)
    expected = rank_frame(model.items())
    assert lb.size() == len(model)
    for row in expected.itertuples():
        for method in ("ordinal", "competition", "dense"):
            assert lb.get_rank(row.member, method=method) == getattr(row, method), method
    top = lb.get_top(len(model) + 1, method="dense")
    assert [(e.rank, e.member) for e in top] == list(
        zip(expected.dense, expected.member, strict=True)
    )
    assert_companions_consistent(r, lb)


def test_add_many_falls_back_when_the_server_lacks_zmscore() -> None:
    # A server where ZMSCORE (Redis 6.2+) is unknown under its name, like an older server.
    with RedisServer(rename_command="ZMSCORE zmscore-hidden") as server:
        client = server.client()
        with pytest.raises(redis.ResponseError):
            client.execute_command("ZMSCORE", "k", "m")
        lb = Leaderboard(client, "old")
        assert lb.add_many(SCORES, batch=4) == 6
        assert lb.add_many({"fay": 10, "gus": 1}) == 1
        assert lb.get_rank("fay", method="dense") == 2
        assert lb.get_rank("gus", method="competition") == 7
        assert_companions_consistent(client, lb)
        client.close()


# -- property: every numeric argument, extremes included, is refused cleanly or accepted ------


def is_score(value: object) -> bool:
    return is_number(value, -MAX_SCORE, MAX_SCORE)


# method -> (the argument under test, the call, is the value in the documented range?)
CALLS = {
    "set_score": ("score", lambda lb, v: lb.set_score("m", v), is_score),
    "increment": ("by", lambda lb, v: lb.increment("m", v), is_score),
    "add_many": ("score of 'm'", lambda lb, v: lb.add_many({"m": v}), is_score),
    "add_many batch": (
        "batch",
        lambda lb, v: lb.add_many({"m": 1}, batch=v),
        lambda v: is_int(v, 1, 2**63 - 1),
    ),
    "get_top": ("n", lambda lb, v: lb.get_top(v), lambda v: is_int(v, 0, MAX_WINDOW)),
    "get_around_me": (
        "n",
        lambda lb, v: lb.get_around_me("m", v),
        lambda v: is_int(v, 0, MAX_WINDOW),
    ),
}


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(method=st.sampled_from(sorted(CALLS)), value=numbers(MAX_WINDOW + 1, -MAX_SCORE))
def test_numeric_arguments_are_refused_before_any_write_or_accepted(
    r: redis.Redis, ns: Namespace, method: str, value: object
) -> None:
    """Property: a value outside the documented range raises TypeError/ValueError naming the
    argument and leaves no key; a value inside it works."""
    ns.cleanup()
    lb = Leaderboard(r, "prop", prefix=ns.prefix)
    arg, call, valid = CALLS[method]
    refused_cleanly_or_accepted(ns, arg, lambda v: call(lb, v), valid(value), value)
