"""labkit.experiments.leaderboard: the benchmark boards' direct fill matches add_many."""

from __future__ import annotations

from typing import Any

import numpy as np

from labkit.experiments.leaderboard import fill_board
from labkit.keys import Namespace
from labkit.leaderboard import Leaderboard


def test_fill_board_leaves_the_state_add_many_leaves(r: Any, ns: Namespace) -> None:
    scores = np.random.default_rng(3).integers(0, 50, 500)  # many ties: companions matter
    filled = Leaderboard(r, "filled", prefix=ns.prefix_for("lb"))
    loaded = Leaderboard(r, "loaded", prefix=ns.prefix_for("lb"))
    fill_board(filled, scores, batch=64)  # several batches
    loaded.add_many({f"p{i}": int(s) for i, s in enumerate(scores)})
    for mine, theirs in zip(filled.keys, loaded.keys, strict=True):
        kind = r.type(theirs)
        if kind == "zset":
            assert r.zrange(mine, 0, -1, withscores=True) == r.zrange(
                theirs, 0, -1, withscores=True
            )
        else:
            assert r.hgetall(mine) == r.hgetall(theirs)
    for player in ("p0", "p7", "p499"):
        for method in ("ordinal", "competition", "dense"):
            assert filled.get_rank(player, method=method) == loaded.get_rank(player, method=method)
