"""Notebook 08's experiments: a pandas reference ranking, the naive fetch-and-sort rank, the
season data, and the board-size sweep that times rank queries.

These drive :class:`labkit.leaderboard.Leaderboard`; the pattern itself imports nothing
from here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from functools import partial

import numpy as np
import pandas as pd

from labkit import data_path
from labkit.client import Client
from labkit.leaderboard import Leaderboard, RankMethod
from labkit.measure import summarize, time_calls


def rank_frame(scores: Iterable[tuple[str, float]]) -> pd.DataFrame:
    """The reference ranking of ``(member, score)`` pairs with pandas, for checking a board.

    Columns ``member, score, ordinal, competition, dense``. ``ordinal`` reproduces Redis's
    tie order (score descending, then member descending); the other two are pandas'
    ``rank(method="min")`` and ``rank(method="dense")`` on descending scores.
    """
    frame = pd.DataFrame(list(scores), columns=["member", "score"])
    frame = frame.sort_values(["score", "member"], ascending=False, kind="mergesort")
    frame["ordinal"] = range(1, len(frame) + 1)
    frame["competition"] = frame["score"].rank(method="min", ascending=False).astype(int)
    frame["dense"] = frame["score"].rank(method="dense", ascending=False).astype(int)
    return frame.reset_index(drop=True)


def naive_rank(r: Client, key: str, member: str) -> int:
    """The rank a widely copied recipe computes: fetch the whole sorted set, count on the
    client (competition rank). O(n) transfer and work per query, the baseline to beat."""
    everyone = dict(r.zrange(key, 0, -1, withscores=True))  # type: ignore[arg-type]
    mine = everyone[member]
    return 1 + sum(1 for score in everyone.values() if score > mine)


def load_season() -> pd.DataFrame:
    """The season's match results (``data/season.csv.gz``): match_id, player, points."""
    return pd.read_csv(data_path("season.csv.gz"))


def load_boards(
    r: Client, prefix: str, sizes: Sequence[int], rng: np.random.Generator
) -> tuple[dict[int, Leaderboard], dict[int, float]]:
    """One board per size, ``size-<n>``, with random integer scores in ``[0, 100000)``.

    Returns the boards and the seconds each ``add_many`` load took.
    """
    boards: dict[int, Leaderboard] = {}
    seconds: dict[int, float] = {}
    for size in sizes:
        scores = rng.integers(0, 100_000, size)
        board = Leaderboard(r, f"size-{size}", prefix=prefix)
        started = time.perf_counter()
        board.add_many({f"p{i}": int(s) for i, s in enumerate(scores)})
        seconds[size] = time.perf_counter() - started
        boards[size] = board
    return boards, seconds


def _ranker(board: Leaderboard, players: list[str], method: RankMethod) -> Callable[[], object]:
    """A zero-argument call that ranks the next of ``players`` each time it is called."""
    it = iter(players)
    return lambda: board.get_rank(next(it), method=method)


def rank_latency(
    boards: dict[int, Leaderboard],
    rng: np.random.Generator,
    *,
    rounds: int = 15,
    per_round: int = 20,
    naive_sizes: Sequence[int] = (),
) -> pd.DataFrame:
    """Rank-query latency per board size and method (µs: p50, p90, p99, mean, min, max).

    Each of ``rounds`` rounds ranks ``per_round`` random players on every board with every
    method, so the sizes share the machine's noise. ``naive_sizes`` also times
    :func:`naive_rank` (a few calls: it fetches the whole board) as method
    ``"naive (fetch + sort)"``.
    """
    methods: tuple[RankMethod, ...] = ("ordinal", "competition", "dense")
    samples: dict[tuple[int, str], list[float]] = {
        (size, m): [] for size in boards for m in methods
    }
    for _ in range(rounds):
        for size, board in boards.items():
            players = [f"p{i}" for i in rng.integers(0, size, per_round)]
            for method in methods:
                timed = time_calls(_ranker(board, players, method), per_round, warmup=0)
                samples[size, method].extend(timed.tolist())
    rows: list[dict[str, object]] = [
        {"players": size, "method": m, **summarize(np.array(samples[size, m]))}
        for size in boards
        for m in methods
    ]
    for size in naive_sizes:
        board = boards[size]
        calls = 5 if size < 100_000 else 2
        timed = time_calls(partial(naive_rank, board.r, board.keys[0], "p1"), calls, warmup=0)
        rows.append({"players": size, "method": "naive (fetch + sort)", **summarize(timed)})
    return pd.DataFrame(rows)
