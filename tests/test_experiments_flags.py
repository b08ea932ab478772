"""labkit.experiments.flags: the flip count and the article's rollout sweep (notebook 09)."""

from __future__ import annotations

import itertools
import random
from typing import Any

import pytest

from labkit import naive
from labkit.experiments.flags import naive_rollout_sweep, users_who_flip


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
