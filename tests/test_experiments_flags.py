"""labkit.experiments.flags: the flip count and the article's rollout sweep (notebook 09)."""

from __future__ import annotations

import itertools
import random
from typing import Any

import pytest

from labkit import naive
from labkit.experiments.flags import (
    answers_in_a_new_process,
    naive_rollout_sweep,
    tracking_invalidation,
    users_who_flip,
)


def test_users_who_flip_counts_users_not_flips() -> None:
    answers = {"steady": itertools.repeat(True), "flaky": itertools.cycle([True, False])}
    assert users_who_flip(lambda u: next(answers[u]), ["steady", "flaky"], 4) == 1


def test_users_who_flip_needs_two_requests() -> None:
    with pytest.raises(ValueError, match="requests"):
        users_who_flip(lambda u: True, ["a"], 1)


def test_naive_rollout_sweep_turns_users_off_as_it_grows(
    monkeypatch: pytest.MonkeyPatch, r: Any, ns: Any
) -> None:
    monkeypatch.setattr(naive, "random", random.Random(7))
    article = naive.FeatureFlags(r, prefix=ns.prefix)
    sweep = naive_rollout_sweep(article, "x", [f"u{i}" for i in range(1000)], [10, 50, 90])
    assert list(sweep.index) == [10, 50, 90]
    enabled = sweep["enabled %"].tolist()
    assert enabled[2] > enabled[0]
    # a fresh draw per step: about half of the 50% group is gone at the next step (90%)
    assert sweep["turned off since last step"].sum() > 0


def test_answers_in_a_new_process_sees_another_hash_salt() -> None:
    source = "def f(word, n):\n    return hash(word) % n == 0\n"
    calls = [(f"w{i}", 2) for i in range(200)]
    assert answers_in_a_new_process(source, "f", calls, 1) != answers_in_a_new_process(
        source, "f", calls, 2
    )
    stable = "def g(word):\n    return hashlib.sha256(word.encode()).digest()[0] < 128\n"
    assert answers_in_a_new_process(stable, "g", [("a",), ("b",)], 1) == answers_in_a_new_process(
        stable, "g", [("a",), ("b",)], 2
    )


def test_tracking_invalidation_delivers_only_when_tracking(r: Any, ns: Any) -> None:
    key = f"{ns.prefix}{{flags}}:flag:x"
    r.hset(key, "enabled", "1")
    tracked = tracking_invalidation(r, key, lambda: r.hset(key, "enabled", "0"))
    assert tracked["delivered"] and tracked["latency (ms)"] < 2000
    untracked = tracking_invalidation(
        r, key, lambda: r.hset(key, "enabled", "1"), track=False, timeout=0.3
    )
    assert not untracked["delivered"]
