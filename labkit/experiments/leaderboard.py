"""Notebook 08's experiments: a pandas reference ranking, a client-side counting rank (not
the article's code), the season data, the board-size sweep that times rank queries, and
the server's own time per call (INFO commandstats) for ranks and writes.

These drive :class:`labkit.leaderboard.Leaderboard`; the pattern itself imports nothing
from here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from labkit import data_path
from labkit.client import Client
from labkit.leaderboard import Leaderboard, RankMethod
from labkit.measure import summarize, time_calls
from labkit.server import require_private


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
    """A competition rank counted on the client after fetching the whole sorted set: O(n)
    transfer and work per query. Not the article's code (its ``get_rank`` is one ZRANK)."""
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


def fill_board(board: Leaderboard, scores: np.ndarray, *, batch: int = 10_000) -> float:
    """Write players ``p0 .. p<n-1>`` with ``scores`` straight into the board's three keys,
    in the state ``add_many`` leaves them (tests/test_experiments_leaderboard.py checks it):
    ZADD in score order, pipelined, then the distinct scores and their counts from numpy.

    For the big benchmark boards only: ``add_many``'s script reads every score back to keep
    the companions in step, which costs seconds at a million players; a fresh board whose
    scores are all known up front can skip that. Returns the seconds it took.
    """
    started = time.perf_counter()
    scores = np.asarray(scores, dtype=np.int64)
    scores_key, distinct_key, counts_key = board.keys
    pipe = board.r.pipeline(transaction=False)
    order = np.argsort(scores, kind="stable")
    for start in range(0, len(order), batch):
        chunk = order[start : start + batch]
        pipe.zadd(scores_key, {f"p{i}": int(scores[i]) for i in chunk})
    values, counts = np.unique(scores, return_counts=True)
    for start in range(0, len(values), batch):
        part = [
            (str(int(v)), int(v), int(c))
            for v, c in zip(
                values[start : start + batch], counts[start : start + batch], strict=True
            )
        ]
        pipe.zadd(distinct_key, {text: v for text, v, _ in part})
        pipe.hset(counts_key, mapping={text: c for text, _, c in part})
    pipe.execute()
    return time.perf_counter() - started


def build_boards(
    r: Client,
    prefix: str,
    sizes: Sequence[int],
    rng: np.random.Generator,
    *,
    add_many_up_to: int = 10_000,
) -> tuple[dict[int, Leaderboard], pd.DataFrame]:
    """One board per size, ``size-<n>``, random integer scores in ``[0, 100000)``: loaded
    with ``add_many`` up to ``add_many_up_to`` players, with :func:`fill_board` above.

    Returns the boards and a frame: players, loaded with, seconds, players sharing a score.
    """
    boards: dict[int, Leaderboard] = {}
    rows = []
    for size in sizes:
        scores = rng.integers(0, 100_000, size)
        board = Leaderboard(r, f"size-{size}", prefix=prefix)
        if size <= add_many_up_to:
            started = time.perf_counter()
            board.add_many({f"p{i}": int(s) for i, s in enumerate(scores)})
            seconds, how = time.perf_counter() - started, "add_many"
        else:
            seconds, how = fill_board(board, scores), "fill_board"
        shared = int(pd.Series(scores).duplicated(keep=False).sum())
        boards[size] = board
        rows.append(
            {
                "players": size,
                "loaded with": how,
                "load (s)": seconds,
                "players sharing a score": shared,
                "share tied": shared / size,
            }
        )
    return boards, pd.DataFrame(rows).set_index("players")


def server_usec(r: Client, command: str, fn: Callable[[], object], n: int) -> dict[str, float]:
    """Call ``fn`` ``n`` times after ``CONFIG RESETSTAT`` (a private server only) and read
    ``INFO commandstats`` for ``command``: the server's own time per call, in µs, without
    the network or the client. Also returns the client's p50 round trip of the same calls.
    """
    require_private(r, "CONFIG RESETSTAT")
    fn()  # a first call may load a script (NOSCRIPT, then SCRIPT LOAD): keep it out
    r.config_resetstat()
    samples = time_calls(fn, n, warmup=0)
    stats: Any = r.info("commandstats")
    row = stats[f"cmdstat_{command.lower()}"]
    return {
        "calls": float(row["calls"]),
        "server µs per call": float(row["usec_per_call"]),
        "round trip p50 (µs)": float(np.percentile(samples, 50) * 1e6),
    }


def rank_costs(
    boards: dict[int, Leaderboard],
    rng: np.random.Generator,
    *,
    calls: int = 200,
    rounds: int = 5,
) -> pd.DataFrame:
    """Server time per rank query (INFO commandstats) and the client's p50 round trip, per
    board size and method: ZREVRANK for ``ordinal``, the rank script (EVALSHA) otherwise.

    ``rounds`` rounds each time ``calls`` random players on every board and method in turn,
    so every size shares the machine's noise; each row keeps the round with the least
    server time (a busy machine only ever adds time). The boards must live on a private
    server (the stats are reset).
    """
    methods: tuple[RankMethod, ...] = ("ordinal", "competition", "dense")
    best: dict[tuple[int, str], dict[str, float]] = {}
    for _ in range(rounds):
        for size, board in boards.items():
            for method in methods:
                players = [f"p{i}" for i in rng.integers(0, size, calls + 1)]
                command = "zrevrank" if method == "ordinal" else "evalsha"
                timed = server_usec(board.r, command, _ranker(board, players, method), calls)
                seen = best.get((size, method))
                if seen is None or timed["server µs per call"] < seen["server µs per call"]:
                    best[size, method] = timed
    return pd.DataFrame(
        [
            {
                "players": size,
                "method": method,
                "command": "zrevrank" if method == "ordinal" else "evalsha",
                **timed,
            }
            for (size, method), timed in best.items()
        ]
    )


def write_costs(
    board: Leaderboard, naive_board: Any, rng: np.random.Generator, *, calls: int = 300
) -> pd.DataFrame:
    """Server time per write on the same board: the article's ``add_score`` (one ZADD) on
    ``naive_board``, a copy of ``board``'s scores, against labkit's ``set_score`` script,
    the same members given the same new scores.
    """
    size = board.size()
    updates = [
        (f"p{i}", int(s))
        for i, s in zip(
            rng.integers(0, size, calls + 1), rng.integers(0, 100_000, calls + 1), strict=True
        )
    ]
    it_naive, it_labkit = iter(updates), iter(updates)
    rows = {
        "article add_score (ZADD)": server_usec(
            board.r, "zadd", lambda: naive_board.add_score(*next(it_naive)), calls
        ),
        "labkit set_score (script, 3 keys)": server_usec(
            board.r, "evalsha", lambda: board.set_score(*next(it_labkit)), calls
        ),
    }
    return pd.DataFrame(rows).T.rename_axis("write")
