"""Rate-limit experiments (notebook 05): trace replays, the article's defects, cost sweeps.

A trace replay runs in virtual time (``now=`` on every hit), so an hour of traffic takes a
second and the same trace gives the same decisions on every run and every server.

What is here:

- ``replay``: a trace through a labkit limiter, pipelined (each hit still one script).
- ``naive_replay``: the same trace through ``labkit.naive``'s ``RateLimiter`` or
  ``FixedWindowLimiter``, one call per request as the article makes them, with the article's
  ``time.time()`` reading a virtual clock (``naive_clock``). Nothing else changes.
- ``judge`` / ``judge_gcra`` / ``max_in_any_window``: decisions judged against an exact rule
  on the limiter's own history (the sliding-window rule, or GCRA's rate + burst).
- ``decide_trace`` / ``accuracy_rows``: experiment 2's table (four labkit algorithms and the
  article's two limiters on one trace).
- ``defect_runs``: R1..R7, each on one workload, the article's number beside labkit's.
- ``http_replay``: requests to a rate-limited Flask app beside the article's middleware (R5).
- ``cost_sweep``: server time per decision (``INFO commandstats``) and bytes per key as the
  limit grows, the ``limits`` library beside; and the worst-case decision of a sliding log,
  the first one after a full window expired, against removing every expired entry at once.
- ``peer_time`` / ``peer_replay``: the ``limits`` library on the same virtual clock.

Guarantees: every argument is checked before the first command is sent; the naive clock and
the peer's clock are restored when the block ends, also on error. Non-guarantees: server
times are what this machine measured (``cost_sweep`` keeps the best of ``repeats`` runs to damp
a noisy neighbour), and ``cost_sweep`` needs a private server (``labkit.RedisServer``), where
no other client's commands land in the statistics.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from types import SimpleNamespace
from typing import Any, TypeVar
from unittest import mock

import numpy as np

from labkit import checks, naive
from labkit.client import is_cluster
from labkit.experiments.round_trips import command_stats
from labkit.experiments.round_trips import server_usec as usec_between
from labkit.ratelimit import (
    ALGORITHMS,
    Decision,
    Limiter,
    SlidingLog,
    SlidingWindowCounter,
    make,
)
from labkit.server import require_private

T0 = 1_764_400_000.0  # an epoch-like start (late 2025), so stored timestamps have real lengths
T = TypeVar("T")
ARTICLE_LOG, ARTICLE_FIXED = "article sliding log", "article fixed window"


def replay(
    limiter: Limiter, key: str, times: Iterable[float], cost: int = 1, *, batch: int = 1000
) -> list[Decision]:
    """``limiter.hit(key, cost, now=t)`` for each ``t`` in order, ``batch`` hits per round trip.

    Each hit is still one atomic script; pipelining only saves the waiting, so the decisions
    are exactly those of calling ``hit`` in a loop. Every argument (each time included) is
    checked before the first command is sent.
    """
    keys = limiter.keys(key)
    size = checks.integer("batch", batch, low=1)
    argv = [limiter._args(cost, t, True) for t in times]
    # redis-py refuses scripts in a cluster pipeline; all keys share one slot, so pipeline on
    # the node that owns it.
    client = limiter.r
    if is_cluster(client):
        client = client.get_redis_connection(client.get_node_from_key(keys[0]))
    out: list[Decision] = []
    for start in range(0, len(argv), size):
        pipe = client.pipeline(transaction=False)
        for args in argv[start : start + size]:
            limiter._script(keys=keys, args=args, client=pipe)
        out.extend(limiter._parse(reply) for reply in pipe.execute())
    return out


def allowed(decisions: Iterable[Decision]) -> np.ndarray:
    """The ``allowed`` flags of ``decisions`` as a bool array."""
    return np.array([d.allowed for d in decisions], dtype=bool)


# -- the article's limiters on a virtual clock ----------------------------------------------


@contextlib.contextmanager
def naive_clock(start: float = T0) -> Iterator[SimpleNamespace]:
    """Within the block, ``time.time()`` inside ``labkit.naive`` returns ``clock.now``.

    Set ``clock.now`` before each call. Only the clock changes: the article's commands run as
    written, against the real server.
    """
    clock = SimpleNamespace(now=checks.number("start", start, low=0))
    with mock.patch.object(naive, "time", SimpleNamespace(time=lambda: clock.now)):
        yield clock


def _naive_times(times: Iterable[float]) -> list[float]:
    out = [checks.number("times", t, low=0) for t in times]
    if any(b < a for a, b in itertools.pairwise(out)):
        raise ValueError("times must not decrease (a replay is in arrival order)")
    return out


def naive_replay(
    limiter: naive.RateLimiter | naive.FixedWindowLimiter,
    key: str,
    times: Iterable[float],
    limit: int,
    window: float,
) -> np.ndarray:
    """The article's ``is_allowed(key, limit, window)`` at each virtual time; the admitted flags.

    One call (one MULTI/EXEC) per request, as the article makes them. The fixed window takes
    whole seconds (``int`` in the article), so ``window`` must be a whole number there.
    """
    if not isinstance(limiter, naive.RateLimiter | naive.FixedWindowLimiter):
        raise TypeError(f"limiter must be a labkit.naive RateLimiter or FixedWindowLimiter, not {type(limiter).__name__}")
    checks.text("key", key)
    checks.integer("limit", limit, low=1)
    span = checks.number("window", window, low=0, low_open=True)
    at = _naive_times(times)
    out = np.zeros(len(at), dtype=bool)
    with naive_clock() as clock:
        if isinstance(limiter, naive.FixedWindowLimiter):
            if not span.is_integer():
                raise ValueError(f"window must be whole seconds for the article's fixed window, got {window}")
            for i, t in enumerate(at):
                clock.now = t
                out[i] = limiter.is_allowed(key, limit, int(span))
        else:
            for i, t in enumerate(at):
                clock.now = t
                out[i] = limiter.is_allowed(key, limit, window)[0]
    return out


def http_replay(
    web: Any,
    article: naive.RateLimiter,
    sent: Iterable[tuple[str, float]],
    *,
    limit: int,
    period: int,
    clock: Any,
    path: str = "/report",
    start: float = T0,
) -> list[dict[str, Any]]:
    """Each ``(client, t)`` of ``sent`` sent to a Flask app and to the article's middleware.

    ``web`` is a Flask test client of an app whose ``path`` is limited to ``limit`` per
    ``period`` s and keyed by the ``X-Api-Key`` header; ``clock`` (a ``VirtualClock``) is the
    app limiter's clock, set to ``start + t`` before each request. The same request goes to the
    article's ``rate_limit_middleware(article, client, limit, period)`` on ``naive_clock``.
    One row per request: the client, ``t``, the status, ``X-RateLimit-Remaining``,
    ``Retry-After`` (labkit), the true wait on a 429 (until the ``limit``-th newest request
    the app admitted leaves the window) and the article's ``retry_after``.
    """
    if not isinstance(article, naive.RateLimiter):
        raise TypeError(f"article must be a labkit.naive.RateLimiter, not {type(article).__name__}")
    if not callable(getattr(clock, "set", None)):
        raise TypeError(f"clock must have a set(when) method (a VirtualClock), not {type(clock).__name__}")
    checks.integer("limit", limit, low=1)
    checks.integer("period", period, low=1)
    checks.text("path", path)
    requests = [(checks.text("client", c), t) for c, t in sent]
    _naive_times(t for _, t in requests)  # each t a number >= 0, in order (kept as given)
    rows: list[dict[str, Any]] = []
    admitted_at: dict[str, list[float]] = {}
    for client, t in requests:
        clock.set(start + t)
        resp = web.get(path, headers={"X-Api-Key": client})
        with naive_clock(start + t):
            told = naive.rate_limit_middleware(article, client, limit=limit, period=period)
        live = [a for a in admitted_at.get(client, []) if a > t - period]
        if resp.status_code == 200:
            admitted_at.setdefault(client, []).append(t)
        denied = resp.status_code == 429
        rows.append({"client": client, "t (s)": t, "status": resp.status_code,
                     "X-RateLimit-Remaining": resp.headers.get("X-RateLimit-Remaining"),
                     "Retry-After (labkit)": resp.headers.get("Retry-After", ""),
                     "true wait (s)": live[-limit] + period - t if denied and len(live) >= limit else "",
                     "retry_after (article)": told["retry_after"] if told else ""})
    return rows


# -- judging decisions ----------------------------------------------------------------------


def _us(times: Any) -> np.ndarray:
    """Times in seconds as whole microseconds (floats), as the limiters store them."""
    return np.round(np.asarray(times, dtype=float) * 1e6)


def max_in_any_window(admitted: Any, window: float) -> int:
    """The most admitted requests inside any span ``(t - window, t]``."""
    span = round(checks.number("window", window, low=0, low_open=True) * 1e6)
    a = np.sort(_us(admitted))
    if a.size == 0:
        return 0
    starts = np.searchsorted(a, a - span, side="right")
    return int((np.arange(a.size) - starts + 1).max())


def _flags(times: Any, ok: Any) -> tuple[np.ndarray, np.ndarray]:
    t, flags = _us(times), np.asarray(ok, dtype=bool)
    if t.shape != flags.shape or t.ndim != 1:
        raise ValueError(f"ok must be one flag per request: {flags.shape} flags for {t.shape} times")
    if t.size and np.any(np.diff(t) < 0):
        raise ValueError("times must not decrease (a replay is in arrival order)")
    return t, flags


def judge(times: Any, ok: Any, limit: int, window: float) -> tuple[np.ndarray, np.ndarray]:
    """False allows and false denies of decisions ``ok`` against the exact sliding-window rule.

    Judged on the limiter's own history: a request had room when fewer than ``limit`` of the
    requests *this limiter* admitted lie in ``(t - window, t]``.
    """
    t, flags = _flags(times, ok)
    checks.integer("limit", limit, low=1)
    span = round(checks.number("window", window, low=0, low_open=True) * 1e6)
    admitted = t[flags]
    earlier = np.searchsorted(admitted, t, side="left")  # admitted before each request
    expired = np.searchsorted(admitted, t - span, side="right")
    room = earlier - expired < limit
    return flags & ~room, ~flags & room


def judge_gcra(times: Any, ok: Any, rate: float, burst: int) -> tuple[np.ndarray, np.ndarray]:
    """False allows and false denies of ``ok`` against GCRA's own rule (``rate`` + ``burst``).

    On the limiter's own history, in exact arithmetic: with ``T = 1 / rate`` and the
    theoretical arrival time ``tat`` of the requests it admitted, a request at ``t`` has room
    when ``max(tat, t) + T - burst * T <= t``. Over any span of ``s`` seconds that admits at
    most ``burst + rate * s``.
    """
    t, flags = _flags(times, ok)
    per_second = checks.number("rate", rate, low=0, low_open=True)
    size = checks.integer("burst", burst, low=1)
    interval = Fraction(1_000_000) / Fraction(per_second)
    tat = Fraction(-(10**30))
    room = np.zeros(t.size, dtype=bool)
    for i, (now_f, admitted) in enumerate(zip(t, flags, strict=True)):
        now = Fraction(int(now_f))
        start = max(tat, now)
        room[i] = start + interval - size * interval <= now
        if admitted:
            tat = start + interval
    return flags & ~room, ~flags & room


# -- experiment 2: accuracy on a trace -----------------------------------------------------


def decide_trace(
    r: Any, times: Sequence[float], limit: int, window: float, *, prefix: str
) -> dict[str, np.ndarray]:
    """Each labkit algorithm (``ALGORITHMS``) and the article's two limiters on one trace.

    Returns the admitted flags per variant; the article's appear as ``ARTICLE_LOG`` and
    ``ARTICLE_FIXED``. Every variant gets fresh keys under ``prefix``.
    """
    space = checks.prefix(prefix)
    out = {
        name: allowed(replay(make(name, r, limit, window, prefix=space), "client", times))
        for name in ALGORITHMS
    }
    out[ARTICLE_LOG] = naive_replay(naive.RateLimiter(r, prefix=space), "client", times, limit, window)
    out[ARTICLE_FIXED] = naive_replay(
        naive.FixedWindowLimiter(r, prefix=space), "client", times, limit, window
    )
    return out


def accuracy_rows(
    trace: str, times: Any, decided: Mapping[str, Any], limit: int, window: float
) -> list[dict[str, Any]]:
    """One row per variant of ``decide_trace``: admitted, false allow/deny %, max in a window.

    The token bucket is judged by its own rule (GCRA, rate ``limit / window``, burst
    ``limit``), every other variant by the sliding-window rule; "admitted vs exact %" compares
    with labkit's sliding log.
    """
    exact = int(np.sum(decided["sliding log"]))
    rows = []
    for name, ok in decided.items():
        flags = np.asarray(ok, dtype=bool)
        if name == "token bucket":
            false_allow, false_deny = judge_gcra(times, flags, limit / window, limit)
            rule = f"GCRA: rate {limit / window:g}/s, burst {limit}"
        else:
            false_allow, false_deny = judge(times, flags, limit, window)
            rule = f"sliding window: {limit} per {window:g} s"
        rows.append({
            "trace": trace, "algorithm": name, "judged by": rule, "requests": len(flags),
            "admitted": int(flags.sum()),
            "admitted vs exact %": 100 * (flags.sum() / exact - 1) if exact else 0.0,
            "false allow %": 100 * float(false_allow.mean()) if flags.size else 0.0,
            "false deny %": 100 * float(false_deny.mean()) if flags.size else 0.0,
            "max in any window": max_in_any_window(np.asarray(times)[flags], window),
        })  # fmt: skip
    return rows


# -- R1..R7: the article's defects, each beside labkit --------------------------------------


@dataclass
class DefectRuns:
    """What ``defect_runs`` measured: one row per defect, and the data behind the R1 chart."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    retries: np.ndarray = field(default_factory=lambda: np.zeros(0))
    retried: dict[str, np.ndarray] = field(default_factory=dict)  # R1: naive / labkit flags
    memory: dict[str, dict[int, int]] = field(default_factory=dict)  # R6: bytes per limit

    def value(self, defect: str, side: str) -> Any:
        """The number measured for ``defect`` (e.g. "R3") on ``side`` ("naive" or "labkit")."""
        checks.choice("side", side, ("labkit", "naive"))
        for row in self.rows:
            if row["defect"] == defect:
                return row[side]
        raise ValueError(f"defect must be one of {[row['defect'] for row in self.rows]}, got {defect!r}")


def _bytes(r: Any, keys: Iterable[str]) -> int:
    return sum(int(r.memory_usage(k, samples=0) or 0) for k in keys)


def boundary_times(limit: int, window: float, spread: float, start: float = 0.0) -> np.ndarray:
    """``limit`` requests in the last ``spread`` of one window and ``limit`` in the first
    ``spread`` of the next (windows aligned to multiples of ``window`` from ``start``)."""
    checks.integer("limit", limit, low=1)
    span = checks.number("window", window, low=0, low_open=True)
    share = checks.number("spread", spread, low=0, high=1, low_open=True)
    before = start + span - share * span + np.arange(limit) * share * span / limit
    return np.concatenate([before, before + share * span])


def defect_runs(r: Any, *, prefix: str) -> DefectRuns:
    """R1..R7 of ``labkit.naive``'s rate limiters, each beside labkit on the same workload.

    The article's ``time.time()`` reads a virtual clock (``naive_clock``), and labkit gets the
    same instants as ``now=``, except in R3's TTL and R4, where labkit uses the server's clock
    (its answer to app servers whose clocks disagree). Each row: the defect, what was counted,
    what the rule allows, the article's number and labkit's.
    """
    space = checks.prefix(prefix)
    out = DefectRuns()
    article = naive.RateLimiter(r, prefix=space)

    def row(defect: str, counted: str, rule: Any, naive_value: Any, labkit_value: Any, fix: str) -> None:
        out.rows.append({"defect": defect, "counted": counted, "the rule allows": rule,
                         "naive": naive_value, "labkit": labkit_value, "labkit class": fix})

    # R1: a client retrying every 100 ms for 10 s, limit 5 per 1 s.
    out.retries = T0 + np.arange(100) / 10
    out.retried = {
        "naive": naive_replay(article, "r1", out.retries, 5, 1.0),
        "labkit": allowed(replay(SlidingLog(r, 5, 1.0, prefix=space + "r1:"), "client", out.retries)),
    }
    late = out.retries >= T0 + 1
    row("R1", "admitted after the first second (90 retries, limit 5 per 1 s)", 45,
        int(out.retried["naive"][late].sum()), int(out.retried["labkit"][late].sum()), "SlidingLog")

    # R2: four bursts of 20 requests that read one clock value, 2 s apart, limit 5 per 1 s.
    bursts = np.repeat(T0 + 2 * np.arange(4), 20)
    naive_ok = naive_replay(article, "r2", bursts, 5, 1.0)
    labkit_ok = allowed(replay(SlidingLog(r, 5, 1.0, prefix=space + "r2:"), "client", bursts))
    row("R2", "most admitted in one 1 s window (bursts of 20 in one clock tick, limit 5)", 5,
        max_in_any_window(bursts[naive_ok], 1.0), max_in_any_window(bursts[labkit_ok], 1.0), "SlidingLog")

    # R3: limit 5 per 0.5 s, 100 requests 10 ms apart; and the TTL of a 1.5 s window's log.
    steady = T0 + np.arange(100) / 100
    naive_ok = naive_replay(article, "r3", steady, 5, 0.5)
    labkit_ok = allowed(replay(SlidingLog(r, 5, 0.5, prefix=space + "r3:"), "client", steady))
    row("R3", "admitted of 100 requests in 1 s (limit 5 per 0.5 s)", 10, int(naive_ok.sum()),
        int(labkit_ok.sum()), "SlidingLog")
    article.is_allowed("r3-ttl", 5, 1.5)
    log = SlidingLog(r, 5, 1.5, prefix=space + "r3-ttl:")
    log.hit("client")  # the server's clock: the TTL is then the window, in ms
    # Both read with PTTL (ms): the article's EXPIRE 1 leaves at most 1 s, labkit's PEXPIRE 1.5 s.
    row("R3", "TTL of the log after one request, 1.5 s window (s)", 1.5,
        r.pttl(f"{space}rate_limit:r3-ttl") / 1000, r.pttl(log.keys("client")[0]) / 1000, "SlidingLog")

    # R4: two app servers, b's clock 30 s ahead, 5 requests each at once, limit 5 per 10 s.
    admitted = 0
    with naive_clock(time.time()) as clock:
        for skew in (0.0, 30.0):
            clock.now = time.time() + skew
            admitted += sum(article.is_allowed("r4", 5, 10)[0] for _ in range(5))
    server_clock = SlidingLog(r, 5, 10.0, prefix=space + "r4:")
    labkit_admitted = sum(server_clock.hit("client").allowed for _ in range(10))
    row("R4", "admitted of 10 requests at once from two app servers, clocks 30 s apart (limit 5 per 10 s)",
        5, admitted, labkit_admitted, "SlidingLog (server clock)")

    # R5: limit 3 per 60 s, requests at 0, 20, 40 s, a fourth at 50 s: the oldest leaves at 60 s.
    spaced = T0 + np.array([0.0, 20.0, 40.0])
    answer: dict[str, Any] | None = None
    with naive_clock() as clock:
        for t in spaced:
            clock.now = float(t)
            naive.rate_limit_middleware(article, "r5", limit=3, period=60)
        clock.now = T0 + 50
        answer = naive.rate_limit_middleware(article, "r5", limit=3, period=60)
    fixed = SlidingLog(r, 3, 60.0, prefix=space + "r5:")
    replay(fixed, "client", spaced)
    denied = fixed.hit("client", now=T0 + 50)
    row("R5", "Retry-After of a request denied at 50 s (s; limit 3 per 60 s, sent at 0, 20, 40 s)",
        10, answer["retry_after"] if answer else None,
        int(denied.headers(fixed.limit).get("Retry-After", 0)), "SlidingLog")

    # R6: bytes for one client with a full window, limit 10 and 1,000 (requests 1 ms apart).
    out.memory = {"naive": {}, "labkit": {}}
    for limit in (10, 1_000):
        full = T0 + np.arange(limit) / 1000
        naive_replay(article, f"r6-{limit}", full, limit, 60.0)
        out.memory["naive"][limit] = _bytes(r, [f"{space}rate_limit:r6-{limit}"])
        counter = SlidingWindowCounter(r, limit, 60.0, prefix=space + f"r6-{limit}:")
        replay(counter, "client", full)
        out.memory["labkit"][limit] = _bytes(r, counter.keys("client"))
    row("R6", "bytes for one client, full window at limit 1,000", "—", out.memory["naive"][1_000],
        out.memory["labkit"][1_000], "SlidingWindowCounter")

    # R7: limit 10 per 1 s, 10 requests in the last 0.1 s of a window and 10 in the next's first.
    edge = boundary_times(10, 1.0, 0.1, start=T0)
    naive_ok = naive_replay(naive.FixedWindowLimiter(r, prefix=space), "r7", edge, 10, 1.0)
    labkit_ok = allowed(replay(SlidingLog(r, 10, 1.0, prefix=space + "r7:"), "client", edge))
    row("R7", "most admitted in one 1 s window (bursts at a window boundary, limit 10)", 10,
        max_in_any_window(edge[naive_ok], 1.0), max_in_any_window(edge[labkit_ok], 1.0), "SlidingLog")
    return out


# -- experiment 3: server time and memory as the limit grows --------------------------------


def server_usec(r: Any, command: str, op: Callable[[], object]) -> float:
    """Server µs per call of ``command`` while ``op()`` runs (``INFO commandstats``).

    Only ``command``'s own line counts: for ``evalsha`` that is the whole script, and Redis 7
    lists the script's inner commands on lines of their own, which are not added again.
    """
    return timed(r, command, op)[0]


def timed(r: Any, command: str, op: Callable[[], T]) -> tuple[float, T]:
    """``server_usec`` and what ``op()`` returned."""
    before = command_stats(r)
    result = op()
    after = command_stats(r)
    usec = usec_between(before, after, command)
    if math.isnan(usec):
        raise ValueError(f"op ran no {command!r} on this server")
    return usec, result


@contextlib.contextmanager
def peer_time(start: float = 0.0) -> Iterator[SimpleNamespace]:
    """Within the block, the ``limits`` library's Redis storage reads ``clock.now``.

    ``limits`` calls ``time.time()`` in its Redis storage module; this hands it a virtual
    clock, so it replays the same traces as labkit's ``now=``.
    """
    clock = SimpleNamespace(now=checks.number("start", start, low=0))
    with mock.patch("limits.storage.redis.time", SimpleNamespace(time=lambda: clock.now)):
        yield clock


def _peer(r: Any, key_prefix: str) -> tuple[Any, Any, Any]:
    from limits.storage import RedisStorage
    from limits.strategies import FixedWindowRateLimiter, MovingWindowRateLimiter

    storage = RedisStorage("redis://", connection_pool=r.connection_pool, key_prefix=key_prefix)
    return storage, MovingWindowRateLimiter(storage), FixedWindowRateLimiter(storage)


def peer_replay(
    r: Any, times: Sequence[float], limit: int, window: int, *, key_prefix: str
) -> tuple[list[bool], list[bool]]:
    """The ``limits`` library's moving window and fixed window on the trace ``times``.

    Its fixed window starts at a client's first hit, so each request passes the aligned
    window number as an identifier: its windows are then labkit's. Returns the admitted flags
    of each.
    """
    from limits import RateLimitItemPerSecond

    checks.text("key_prefix", key_prefix)
    span = checks.integer("window", window, low=1)
    item = RateLimitItemPerSecond(checks.integer("limit", limit, low=1), span)
    at = _naive_times(times)
    _, moving, fixed = _peer(r, key_prefix)
    moved, fixed_ok = [], []
    with peer_time() as clock:
        for t in at:
            clock.now = t
            moved.append(bool(moving.hit(item, "moving")))
            fixed_ok.append(bool(fixed.hit(item, "fixed", str(int(t // span)))))
    return moved, fixed_ok


@dataclass
class CostSweep:
    """``cost_sweep``'s rows: per (limit, variant) cost, and the worst-case decision per limit."""

    cost: list[dict[str, Any]] = field(default_factory=list)
    worst: list[dict[str, Any]] = field(default_factory=list)


def cost_sweep(
    r: Any,
    limits: Sequence[int],
    *,
    prefix: str,
    window: int = 10,
    decisions: int = 50,
    repeats: int = 2,
    copies: int = 3,
    progress: Callable[[Iterable[int]], Iterable[int]] = iter,
) -> CostSweep:
    """For each limit: fill each limiter in one call (a hit of ``cost=limit`` at ``T0``), time
    ``decisions`` denied decisions (best of ``repeats`` runs) and read ``MEMORY USAGE``; the
    ``limits`` library's moving window (``hit`` and ``test``) and fixed window beside.

    Then the sliding log's worst case: ``copies`` copies of the full log (the best is kept),
    each asked once right after the whole window expired (``T0 + window + 1``). The control
    is what the log did before decisions were bounded: remove every expired entry in the
    decision, ``ZREMRANGEBYSCORE`` over a copy of the same full log, timed on its own.
    ``r`` must be a private server's client: its ``INFO commandstats`` must see only us.
    """
    require_private(r, "time decisions with INFO commandstats")
    space = checks.prefix(prefix)
    sizes = [checks.integer("limits", n, low=1, high=SlidingLog.MAX_LIMIT) for n in limits]
    span = checks.integer("window", window, low=1)
    rounds = checks.integer("decisions", decisions, low=1)
    best_of = checks.integer("repeats", repeats, low=1)
    tries = checks.integer("copies", copies, low=1)
    from limits import RateLimitItemPerSecond

    storage, moving, fixed = _peer(r, space + "limits")
    out = CostSweep()
    with peer_time(T0):
        for limit in progress(sizes):
            run = f"{space}{limit}:"
            mine = {name: make(name, r, limit, span, prefix=run) for name in ALGORITHMS}
            variants: dict[str, tuple[Callable[[], object], list[str]]] = {}
            for name, lim in mine.items():
                lim.hit("client", cost=limit, now=T0)
                variants[name] = (functools.partial(_labkit_decision, lim), lim.keys("client"))
            item = RateLimitItemPerSecond(limit, span)
            moving.hit(item, f"moving-{limit}", cost=limit)
            fixed.hit(item, f"fixed-{limit}", cost=limit)
            moving_key = [storage.prefixed_key(item.key_for(f"moving-{limit}"))]
            fixed_key = [storage.prefixed_key(item.key_for(f"fixed-{limit}"))]
            variants["limits moving window: hit"] = (
                functools.partial(moving.hit, item, f"moving-{limit}"), moving_key)
            variants["limits moving window: test"] = (
                functools.partial(moving.test, item, f"moving-{limit}"), moving_key)
            variants["limits fixed window: hit"] = (
                functools.partial(fixed.hit, item, f"fixed-{limit}"), fixed_key)
            for name, (decide, keys) in variants.items():
                best = math.inf
                for _ in range(best_of):
                    said: list[object] = []
                    usec = server_usec(r, "evalsha", functools.partial(_repeat, decide, rounds, said))
                    if any(said):
                        raise AssertionError(f"{name} admitted a request with a full log")
                    best = min(best, usec)
                out.cost.append({"limit": limit, "variant": name, "server µs per decision": best,
                                 "bytes per key": _bytes(r, keys)})
            out.worst.append({"limit": limit, **_worst_case(r, mine["sliding log"], span, tries)})
            r.delete(*[k for lim in mine.values() for k in lim.keys("client")])
    return out


def _labkit_decision(limiter: Limiter) -> bool:
    return limiter.hit("client", now=T0).allowed


def _repeat(decide: Callable[[], object], times: int, into: list[object]) -> None:
    into.extend(decide() for _ in range(times))


def _worst_case(r: Any, log: Limiter, window: int, copies: int) -> dict[str, float]:
    """The first decision after a full log expired, labkit vs removing every entry at once."""
    full = log.keys("client")[0]
    entries = int(r.zcard(full))
    later = T0 + window + 1
    labkit, control = math.inf, math.inf
    for i in range(copies):
        mine, theirs = log.keys(f"worst-{i}")[0], f"{full}:control-{i}"
        r.copy(full, mine, replace=True)
        r.copy(full, theirs, replace=True)
        usec, answer = timed(r, "evalsha", functools.partial(log.hit, f"worst-{i}", now=later))
        labkit = min(labkit, usec)
        if not answer.allowed:
            raise AssertionError("the first decision after the window expired was a denial")
        # every entry has expired: the old script removed them all in the decision
        usec, removed = timed(r, "zremrangebyscore", functools.partial(r.zremrangebyscore, theirs, "-inf", "+inf"))
        control = min(control, usec)
        if removed != entries:
            raise AssertionError(f"the control removed {removed} of {entries} entries")
        r.delete(mine, theirs)
    return {"entries that expired": entries, "labkit: first decision (server µs)": labkit,
            "control: remove every expired entry (server µs)": control}
