"""Experiments notebook 06 runs on ``labkit.locks``: contention sweeps and pauses past the lease.

    for res in contention_sweep(r, ("spin", "notify"), (1, 8), prefix=ns.prefix_for("lock")):
        res.row()                                   # throughput, wait percentiles, fairness
    pause_rounds(r, prefix=ns.prefix_for("lock"), rounds=5, fenced=True)

``contention_sweep`` runs N workers (threads, or processes given the server's address) that
acquire, hold, release and think in a loop, for each waiting strategy and redis-py's
``Lock``. ``pause_rounds`` SIGSTOPs a holder (another process) between its grant and its
write, long enough to lose its lease, to show a double grant and what fencing does about the
stale write. Not part of the pattern: ``labkit.locks`` imports nothing from here.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import os
import secrets
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import redis
import redis.lock

from labkit import checks, naive
from labkit.client import Client, is_cluster
from labkit.locks import (
    STRATEGIES,
    FencedStore,
    Lock,
    LockError,
    LockLost,
    LockNotAcquired,
    lock_keys,
)
from labkit.server import RedisServer

# "naive": the article's RedisLock (labkit.naive), polling every 10 ms, run as written.
VARIANTS = (*STRATEGIES, "redis-py", "naive")


@dataclass
class ContentionResult:
    """One contention run: ``workers`` holders competing for one lock for ``duration`` s.

    ``waits[i]`` are worker i's completed waits (seconds from calling acquire to the grant);
    ``censored`` are waits still unfinished when the window closed (lower bounds, included
    in the percentiles so a starved waiter cannot hide).
    """

    variant: str
    workers: int
    mode: str
    duration: float
    waits: list[list[float]]
    censored: list[float] = field(default_factory=list)

    @property
    def sections(self) -> int:
        return sum(len(w) for w in self.waits)

    @property
    def throughput(self) -> float:
        """Critical sections completed per second."""
        return self.sections / self.duration

    def all_waits(self) -> np.ndarray:
        return np.array([x for w in self.waits for x in w] + list(self.censored), dtype=float)

    @property
    def jain(self) -> float:
        """Jain's fairness index over sections per worker: 1 = equal shares, 1/n = one hog."""
        x = np.array([len(w) for w in self.waits], dtype=float)
        return float(x.sum() ** 2 / (len(x) * (x**2).sum())) if x.sum() else 0.0

    def row(self) -> dict[str, Any]:
        # No p99: a short run holds a few dozen waits, so its p99 is its maximum; say max.
        # A censored wait is a lower bound, and so is one as long as the run itself (the run's
        # end cut it short): say whether the maximum is either.
        waits = self.all_waits() * 1000
        longest_open = max(self.censored, default=0.0)
        longest_done = max((x for w in self.waits for x in w), default=0.0)
        return {
            "variant": self.variant,
            "mode": self.mode,
            "workers": self.workers,
            "sections": self.sections,
            "waits": int(waits.size),
            "throughput_per_s": self.throughput,
            "p50_wait_ms": float(np.percentile(waits, 50)) if waits.size else 0.0,
            "p90_wait_ms": float(np.percentile(waits, 90)) if waits.size else 0.0,
            "max_wait_ms": float(waits.max()) if waits.size else 0.0,
            "max_wait_open": (bool(self.censored) and longest_open >= longest_done)
            or max(longest_open, longest_done) >= 0.9 * self.duration,
            "still_waiting": len(self.censored),
            "jain": self.jain,
        }


def contend(
    r: Client,
    name: str,
    variant: str,
    *,
    prefix: str,
    start_at: float,
    stop_at: float,
    hold: float,
    think: float,
    ttl: float = 2.0,
    barrier: tuple[str, int] | None = None,
) -> tuple[list[float], list[float]]:
    """One worker's loop: acquire, hold ``hold`` s, release, work ``think`` s outside, repeat.

    Runs from wall-clock ``start_at`` to ``stop_at`` (``time.time()``, shared by processes).
    With ``barrier=(key, n)`` the window starts only once all ``n`` workers are ready (they
    meet at ``key`` on the server; the last to arrive sets the start), at the latest of
    ``start_at`` and that moment, and lasts ``stop_at - start_at``: on a loaded machine a
    process scheduled late would otherwise miss part of the window.
    Returns (completed waits, censored waits) in seconds.
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
    give: Callable[[], object]
    if variant == "redis-py":
        peer = redis.lock.Lock(r, lock_keys(prefix, name).lock, timeout=ttl, sleep=0.1)

        def take(wait: float) -> bool:
            return bool(peer.acquire(blocking_timeout=wait))

        give = peer.release
    elif variant == "naive":
        article = naive.RedisLock(r, name, timeout=max(1, math.ceil(ttl)), prefix=prefix)

        def take(wait: float) -> bool:
            return article.acquire(blocking_timeout=wait)

        give = article.release
    else:
        lock = Lock(r, name, ttl=ttl, strategy=variant, prefix=prefix)

        def take(wait: float) -> bool:
            return lock.acquire(timeout=wait) is not None

        give = lock.release
    waits: list[float] = []
    censored: list[float] = []
    if barrier is not None:
        key, n = barrier
        window = stop_at - start_at
        if int(r.incr(key)) == n:
            r.set(f"{key}:start", repr(max(start_at, time.time() + 0.02)), ex=60)
        r.expire(key, 60)
        deadline = time.time() + 30
        while (begin := r.get(f"{key}:start")) is None:
            if time.time() > deadline:
                raise TimeoutError(f"the other workers did not reach the start within 30 s ({key})")
            time.sleep(0.002)
        start_at = float(begin)
        stop_at = start_at + window
    time.sleep(max(0.0, start_at - time.time()))
    while time.time() < stop_at:
        t0 = time.perf_counter()
        got = take(max(0.0, stop_at - time.time()))
        waited = time.perf_counter() - t0
        if not got:
            censored.append(waited)
            break
        waits.append(waited)
        time.sleep(hold)
        give()
        time.sleep(think)
    return waits, censored


ServerSpec = tuple[str, int, bool]  # host, port, cluster?: enough for a process to connect


def server_spec(r: Client) -> ServerSpec:
    """How another process reaches the server (or cluster) behind ``r``."""
    from labkit.server import address

    host, port = address(r)
    return host, port, is_cluster(r)


def open_client(spec: ServerSpec) -> Client:
    """A new client (``decode_responses=True``) from a ``server_spec``, in any process."""
    host, port, cluster = spec
    if cluster:
        from redis.cluster import RedisCluster

        return RedisCluster(host=host, port=port, decode_responses=True)
    return redis.Redis(host=host, port=port, decode_responses=True)


def _contend_in_process(
    spec: ServerSpec, kwargs: dict[str, Any]
) -> tuple[list[float], list[float]]:
    client = open_client(spec)
    try:
        return contend(client, **kwargs)
    finally:
        client.close()


def mp_context() -> Any:
    """forkserver where the platform has it (fast, no inherited threads), else spawn."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    # The fork server imports this module (redis, numpy, ...) once; each worker forks from it.
    ctx.set_forkserver_preload(["labkit.experiments.locks"])
    return ctx


def contention_sweep(
    r: Client,
    variants: tuple[str, ...],
    workers: tuple[int, ...],
    *,
    prefix: str,
    mode: str = "threads",
    duration: float | Mapping[int, float] = 0.5,
    hold: float = 0.002,
    think: float = 0.002,
    start_delay: float = 0.1,
) -> Iterator[ContentionResult]:
    """Run every (variant, N) for ``duration`` seconds each; yield one result per run.

    ``duration`` may map a worker count to its own window (``{16: 0.5}``), so that the runs
    whose waits are longest get a window long enough to show their tail.

    ``mode="processes"`` runs each worker in its own process (a pool of ``max(workers)``
    processes, started once, given the server's host and port); ``"threads"`` shares ``r``.
    """
    if mode not in ("threads", "processes"):
        raise ValueError(f"mode must be 'threads' or 'processes', got {mode!r}")
    for v in variants:
        if v not in VARIANTS:
            raise ValueError(f"variants must be among {', '.join(VARIANTS)}, got {v!r}")
    if not workers or min(workers) < 1:
        raise ValueError(f"workers must be counts >= 1, got {workers!r}")
    windows = {
        n: checks.seconds("duration", duration[n] if isinstance(duration, Mapping) else duration)
        for n in workers
    }
    spec = server_spec(r)
    size = max(workers)
    pool: Any = (
        ProcessPoolExecutor(size, mp_context=mp_context())
        if mode == "processes"
        else ThreadPoolExecutor(size)
    )
    with pool:
        if mode == "processes":  # start every process before the first timed run
            list(pool.map(time.sleep, [0.05] * size))
        for run, (variant, n) in enumerate((v, n) for v in variants for n in workers):
            start_at = time.time() + start_delay
            name = f"contention-{run}-{variant}-{n}-{secrets.token_hex(3)}"
            kwargs = {
                "name": name,
                "barrier": (f"{prefix}{{{name}}}:ready", n),
                "variant": variant,
                "prefix": prefix,
                "start_at": start_at,
                "stop_at": start_at + windows[n],
                "hold": hold,
                "think": think,
            }
            if mode == "processes":
                futures = [pool.submit(_contend_in_process, spec, kwargs) for _ in range(n)]
            else:
                futures = [pool.submit(contend, r, **kwargs) for _ in range(n)]
            outcomes = [f.result() for f in futures]
            yield ContentionResult(
                variant=variant,
                workers=n,
                mode=mode,
                duration=windows[n],
                waits=[w for w, _ in outcomes],
                censored=[c for _, cs in outcomes for c in cs],
            )


def _paused_writer(
    spec: ServerSpec,
    name: str,
    prefix: str,
    ttl: float,
    store_key: str,
    fenced: bool,
    conn: Any,
) -> None:
    """Child process: per request, acquire, report the token, wait for "go", then write."""
    client = open_client(spec)
    lock = Lock(client, name, ttl=ttl, strategy="notify", prefix=prefix)
    store = FencedStore(client, store_key, fenced=fenced)
    while conn.recv() == "round":
        token = lock.acquire(timeout=5.0)
        conn.send(token)
        conn.recv()  # "go": arrives while we are stopped, read once we are continued
        landed = (
            store.write("from the paused holder", token, owner=lock.owner)
            if token is not None
            else False
        )
        conn.send((landed, lock.release()))
    client.close()


@dataclass(frozen=True)
class PauseRound:
    paused_token: int  # the fencing token of the holder that was paused
    second_token: int | None  # the token the second worker got while it was paused
    double_grant: bool  # the second worker was granted while the first still believed it held
    stale_write_landed: bool  # the paused holder's write reached the storage afterwards
    paused_release_ok: bool  # the paused holder could still release (False: lease lost)


def pause_rounds(
    r: Client,
    *,
    prefix: str,
    rounds: int,
    fenced: bool,
    ttl: float = 0.05,
    pause: float = 0.12,
) -> list[PauseRound]:
    """A holder (another process) is SIGSTOPped between its grant and its write, for at
    least ``pause`` > ``ttl`` seconds and until this process has acquired, written and
    released; then the holder is continued and writes with its old token. Returns one
    ``PauseRound`` per round.
    """
    if not hasattr(signal, "SIGSTOP"):
        raise RuntimeError("pause_rounds needs SIGSTOP/SIGCONT (Linux or macOS)")
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    if checks.seconds("pause", pause) <= checks.seconds("ttl", ttl):
        raise ValueError(
            f"pause must be longer than ttl to lose the lease, got pause={pause}, ttl={ttl}"
        )
    spec = server_spec(r)
    name = f"paused-{'fenced' if fenced else 'unfenced'}-{secrets.token_hex(4)}"
    store_key = f"{prefix}store:{name}"
    ctx = mp_context()
    parent, child = ctx.Pipe()
    proc = ctx.Process(
        target=_paused_writer,
        args=(spec, name, prefix, ttl, store_key, fenced, child),
        daemon=True,
    )
    proc.start()
    lock = Lock(r, name, ttl=ttl, strategy="notify", prefix=prefix)
    store = FencedStore(r, store_key, fenced=fenced)
    results: list[PauseRound] = []
    try:
        for _ in range(rounds):
            parent.send("round")
            paused_token = parent.recv()
            os.kill(proc.pid, signal.SIGSTOP)
            parent.send("go")
            stopped_at = time.monotonic()
            # The paused holder has not released: any grant now is a second, concurrent one.
            second = lock.acquire(timeout=pause + 5.0)  # the holder stays stopped meanwhile
            if second is not None:
                store.write("from the second holder", second, owner=lock.owner)
                lock.release()
            time.sleep(max(0.0, stopped_at + pause - time.monotonic()))
            os.kill(proc.pid, signal.SIGCONT)
            landed, released = parent.recv()
            results.append(PauseRound(paused_token, second, second is not None, landed, released))
    finally:
        os.kill(proc.pid, signal.SIGCONT)
        parent.send("stop")
        proc.join(5)
        if proc.is_alive():
            proc.kill()
    return results


def offered_load(workers: int, hold: float, think: float) -> float:
    """The most critical sections per second ``workers`` can ask for: each needs at least
    ``hold + think`` s per loop, and the lock serves at most ``1 / hold`` per second."""
    return min(workers / (hold + think), 1 / hold)


# ---------------------------------------------------------------- the article's lock, L1-L5


class _CompressedTime:
    """Stands in for ``time`` inside ``labkit.naive``: every sleep advances the clock by
    ``step`` seconds without sleeping, so the article's 30 s wait passes in a few polls."""

    def __init__(self, step: float) -> None:
        self.now = time.time()
        self.step = step

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += self.step


@contextlib.contextmanager
def compressed_naive_clock(step: float = 10.0) -> Iterator[_CompressedTime]:
    """Within the block, ``labkit.naive``'s clock jumps ``step`` s per sleep (no real sleep)."""
    fake = _CompressedTime(step)
    real = naive.time
    naive.time = fake  # type: ignore[assignment]
    try:
        yield fake
    finally:
        naive.time = real


def unlocked_bodies(
    r: Client, *, prefix: str, variant: str, workers: int = 4, entries: int = 5, body: float = 0.02
) -> dict[str, int]:
    """L1: ``workers`` threads each enter ``with lock:`` ``entries`` times, ``body`` s inside.

    The article's 30 s blocking timeout is compressed (its clock jumps 10 s per poll), and
    labkit's ``Lock`` (spin, ``timeout=30``) is given the same compressed clock. Counts the
    bodies that ran without holding the lock and the most bodies inside at once.
    """
    name = f"l1-{variant}-{secrets.token_hex(3)}"
    guard = threading.Lock()
    counts = {"entries": 0, "ran without the lock": 0, "refused (LockNotAcquired)": 0}
    inside, most = [0], [0]

    def body_once(locked: bool) -> None:
        with guard:
            counts["entries"] += 1
            counts["ran without the lock"] += not locked
            inside[0] += 1
            most[0] = max(most[0], inside[0])
        time.sleep(body)
        with guard:
            inside[0] -= 1

    fake = _CompressedTime(10.0)

    def worker() -> None:
        for _ in range(entries):
            if variant == "naive":
                with naive.RedisLock(r, name, prefix=prefix) as article:
                    body_once(article.acquired)
            else:
                lock = Lock(
                    r, name, strategy="spin", timeout=30, prefix=prefix,
                    clock=fake.time, sleep=fake.sleep,
                )  # fmt: skip
                try:
                    with lock:
                        body_once(lock.owned())
                except LockNotAcquired:
                    with guard:
                        counts["refused (LockNotAcquired)"] += 1

    ctx = compressed_naive_clock() if variant == "naive" else contextlib.nullcontext()
    with ctx:
        threads = [threading.Thread(target=worker) for _ in range(workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    return {**counts, "most bodies inside at once": most[0]}


def _in_parallel(one: Callable[[int], None], rounds: int) -> None:
    """Run ``one(0) .. one(rounds - 1)`` in parallel threads and wait for them all."""
    threads = [threading.Thread(target=one, args=(i,)) for i in range(rounds)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)


def overrun_rounds(
    r: Client, *, prefix: str, variant: str, rounds: int = 3, ttl: float = 1.0
) -> list[dict[str, Any]]:
    """L3 and L4: a holder's body runs 1.25 x its TTL; a second worker takes the lock once
    it expires, deposits +50 and releases; then the first writes from its stale read.

    ``variant="naive"``: the article's lock (TTL in whole seconds) and a plain SET.
    ``"labkit"``: ``Lock`` and a ``FencedStore`` written with the fencing token and owner.
    The rounds run in parallel threads, each on its own lock. Per round: whether the
    holder was told it lost the lock, and whether its stale write landed.
    """
    if variant not in ("naive", "labkit"):
        raise ValueError(f"variant must be 'naive' or 'labkit', got {variant!r}")
    out: list[dict[str, Any]] = [{} for _ in range(rounds)]

    def one(i: int) -> None:
        name = f"overrun-{variant}-{i}-{secrets.token_hex(3)}"
        account = f"{prefix}account:{name}"
        second_done = threading.Event()

        def second(make: Callable[[], Any], write: Callable[[Any], None]) -> None:
            lock = make()
            if variant == "naive":
                got = lock.acquire(blocking_timeout=10)
            else:
                got = lock.acquire(timeout=10) is not None
            if got:
                write(lock)
                lock.release()
            second_done.set()

        told = False
        if variant == "naive":
            r.set(account, "100")
            holder = naive.RedisLock(r, name, timeout=max(1, round(ttl)), prefix=prefix)
            helper = threading.Thread(
                target=second,
                args=(
                    lambda: naive.RedisLock(r, name, prefix=prefix),
                    lambda _: r.set(account, str(int(r.get(account) or 0) + 50)),
                ),
            )
            with holder:
                seen = int(r.get(account) or 0)
                helper.start()
                time.sleep(1.25 * max(1, round(ttl)))
                second_done.wait(10)
                r.set(account, str(seen - 30))  # nothing to check it against
            stale_landed = int(r.get(account) or 0) == seen - 30
        else:
            store = FencedStore(r, account)
            lock = Lock(r, name, ttl=ttl, prefix=prefix)
            helper = threading.Thread(
                target=second,
                args=(
                    lambda: Lock(r, name, ttl=ttl, prefix=prefix),
                    lambda other: store.write("150", other.fencing_token, owner=other.owner),
                ),
            )
            stale_landed = False
            try:
                with lock as token:
                    store.write("100", token, owner=lock.owner)
                    helper.start()
                    time.sleep(1.25 * ttl)
                    second_done.wait(10)
                    stale_landed = store.write("70", token, owner=lock.owner)
            except LockLost:
                told = True
        helper.join(10)
        out[i] = {"second holder got in": second_done.is_set(), "holder told": told,
                  "stale write landed": stale_landed}  # fmt: skip

    _in_parallel(one, rounds)
    return out


def shared_object_rounds(
    r: Client, *, prefix: str, variant: str, rounds: int = 3, body: float = 0.05
) -> dict[str, int]:
    """L5: one lock object shared by two threads. Thread one holds it for ``body`` s; thread
    two enters ``with shared:`` meanwhile (the article's 30 s timeout compressed) and
    leaves; then an outsider tries the lock while thread one is still inside.
    """
    counts = {"rounds": rounds, "second thread's with refused": 0, "outsider got in": 0}
    for i in range(rounds):
        name = f"l5-{variant}-{i}-{secrets.token_hex(3)}"
        holding, leave = threading.Event(), threading.Event()
        shared: Any
        if variant == "naive":
            shared = naive.RedisLock(r, name, prefix=prefix)
        else:
            shared = Lock(r, name, strategy="spin", timeout=0.01, prefix=prefix)

        def one(lock: Any = shared, holding: threading.Event = holding,
                leave: threading.Event = leave) -> None:  # fmt: skip
            with lock:
                holding.set()
                leave.wait(10)

        first = threading.Thread(target=one)
        ctx = compressed_naive_clock() if variant == "naive" else contextlib.nullcontext()
        with ctx:
            first.start()
            holding.wait(10)
            try:
                with shared:  # thread two (this thread), same object
                    pass
            except (LockNotAcquired, LockError):
                counts["second thread's with refused"] += 1
            if variant == "naive":
                got = naive.RedisLock(r, name, prefix=prefix).acquire(blocking=False)
            else:
                got = Lock(r, name, prefix=prefix).acquire(blocking=False) is not None
            counts["outsider got in"] += bool(got)
            time.sleep(body)
            leave.set()
            first.join(10)
    return counts


# ---------------------------------------------------------------- what waiting costs the server


def _commands(client: redis.Redis) -> int:
    return int(client.info("stats")["total_commands_processed"])


def waiter_load(
    server: RedisServer, variant: str, *, waiters: int = 8, window: float = 0.6
) -> dict[str, Any]:
    """L2: what ``waiters`` blocked waiters cost ``server`` while one holder keeps the lock.

    Measured in the steady middle of a ``window``-second wait (from 0.1 s in until 0.1 s
    before the end), per waiter: round trips per second (counted by each waiter's client)
    and server commands per second (INFO stats: a script's own calls count too)."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
    if window <= 0.3:
        raise ValueError(f"window must be longer than 0.3 s, got {window}")
    from labkit.measure import counting_client

    prefix, name = "load:", f"load-{variant}-{secrets.token_hex(3)}"
    admin = server.client()
    counted = [counting_client(admin) for _ in range(waiters)]
    key = lock_keys(prefix, name).lock
    if variant == "naive":
        admin.set(f"{prefix}lock:{name}", "holder", ex=30)
    else:
        Lock(admin, name, ttl=30, prefix=prefix).acquire(blocking=False)
    start = threading.Barrier(waiters + 1, timeout=10)

    def wait(client: redis.Redis) -> None:
        take: Callable[[], object]
        if variant == "naive":
            article = naive.RedisLock(client, name, prefix=prefix)
            take = lambda: article.acquire(blocking_timeout=window)  # noqa: E731
        elif variant == "redis-py":
            peer = redis.lock.Lock(client, key, timeout=30, sleep=0.1)
            take = lambda: peer.acquire(blocking_timeout=window)  # noqa: E731
        else:
            lock = Lock(client, name, strategy=variant, prefix=prefix)
            take = lambda: lock.acquire(timeout=window)  # noqa: E731
        client.ping()  # connected before the window opens
        start.wait()
        take()

    threads = [threading.Thread(target=wait, args=(c,)) for c, _ in counted]
    for t in threads:
        t.start()
    start.wait()
    time.sleep(0.1)
    trips0 = [counter.count for _, counter in counted]
    commands0, t0 = _commands(admin), time.perf_counter()
    time.sleep(window - 0.2)
    trips1 = [counter.count for _, counter in counted]
    commands1, elapsed = _commands(admin), time.perf_counter() - t0
    for t in threads:
        t.join(window + 10)
    for c in (admin, *(c for c, _ in counted)):
        c.close()
    return {
        "variant": variant,
        "round trips per s per waiter": (sum(trips1) - sum(trips0)) / elapsed / waiters,
        "server commands per s per waiter": (commands1 - commands0 - 1) / elapsed / waiters,
    }


def waiter_loads(
    servers: list[RedisServer], variants: tuple[str, ...], *, waiters: int = 8,
    window: float = 1.3,
) -> list[dict[str, Any]]:
    """``waiter_load`` for each variant at once, each on its own server (so one window
    serves all). ``window`` should exceed ``Lock``'s ``max_block`` (1 s): a notify waiter
    sends nothing while it blocks."""
    if len(servers) < len(variants):
        raise ValueError(f"need a server per variant: {len(variants)} variants, {len(servers)} servers")
    with ThreadPoolExecutor(len(variants)) as pool:
        futures = [
            pool.submit(waiter_load, server, v, waiters=waiters, window=window)
            for server, v in zip(servers, variants, strict=False)
        ]
        return [f.result() for f in futures]


# ---------------------------------------------------------------- a SIGKILLed registered waiter


def _register_and_block(spec: ServerSpec, name: str, prefix: str, ttl: float) -> None:
    """Child process: a notify waiter that registers and blocks (until it is killed)."""
    Lock(open_client(spec), name, ttl=ttl, prefix=prefix).acquire(timeout=30)


def dead_waiter_cost(r: Client, *, prefix: str, lease: float = 0.2) -> dict[str, float]:
    """A ``notify`` waiter is SIGKILLed while registered; a live waiter queues behind it;
    the holder releases. Returns how long the live waiter waited after the release and how
    long the lock sat with the dead waiter (its lease), in ms."""
    if not hasattr(signal, "SIGKILL"):
        raise RuntimeError("dead_waiter_cost needs SIGKILL (Linux or macOS)")
    name = f"dead-waiter-{secrets.token_hex(3)}"
    keys = lock_keys(prefix, name)
    holder = Lock(r, name, ttl=30, prefix=prefix)
    holder.acquire(blocking=False)
    proc = mp_context().Process(
        target=_register_and_block, args=(server_spec(r), name, prefix, lease), daemon=True
    )
    proc.start()

    def queued(n: int) -> None:
        deadline = time.monotonic() + 20
        while r.zcard(keys.waiting) < n:
            if time.monotonic() > deadline or (n == 1 and not proc.is_alive()):
                raise TimeoutError(f"{n} waiter(s) did not register within 20 s")
            time.sleep(0.005)

    queued(1)
    os.kill(proc.pid, signal.SIGKILL)  # no unwinding: the registration stays
    proc.join(5)
    live = Lock(r, name, ttl=lease, prefix=prefix)
    got: list[float] = []
    waiter = threading.Thread(
        target=lambda: got.append(time.perf_counter()) if live.acquire(timeout=10) else None
    )
    waiter.start()
    queued(2)
    released_at = time.perf_counter()
    holder.release()  # handed to the first registration: the dead waiter's
    dead_owner_lease = int(r.pttl(keys.lock))
    waiter.join(15)
    live.release()
    if not got:
        raise TimeoutError("the live waiter was not granted within 10 s")
    return {
        "dead waiter's lease (ms)": lease * 1000,
        "lease the dead waiter was handed (ms)": float(dead_owner_lease),
        "live waiter's wait after the release (ms)": (got[0] - released_at) * 1000,
    }


# ---------------------------------------------------------------- a fencing counter that goes back


def counter_after_restart(
    store: FencedStore, *, persist: bool, grants: int = 3, lease: float = 0.2
) -> dict[str, Any]:
    """The lock's server (private) grants ``grants`` times; the last holder, A, writes
    ``store``; the server is killed (SIGKILL) and restarted from its own files; B takes the
    lock and writes; A, unaware, writes again. ``persist``: AOF with ``appendfsync always``
    (else, as labkit's private servers, nothing on disk)."""
    workdir = tempfile.mkdtemp(prefix="labkit-fence-")
    config: dict[str, Any] = (
        {"dir": workdir, "appendonly": "yes", "appendfsync": "always"} if persist else {}
    )
    try:
        server = RedisServer(**config).start()
        client = server.client()
        locks = [Lock(client, "job", ttl=lease, strategy="spin") for _ in range(grants)]
        tokens = []
        for lock in locks:
            tokens.append(lock.acquire(blocking=False))
            if lock is not locks[-1]:
                lock.release()
        a = locks[-1]
        a_token = tokens[-1]
        if a_token is None:
            raise RuntimeError("a fresh private server refused an uncontended grant")
        a_first = store.write("A", a_token, owner=a.owner)
        client.close()
        server.stop()  # SIGKILL: whatever reached the disk is all that is left
        server = RedisServer(**config).start()
        client = server.client()
        b = Lock(client, "job", ttl=lease, strategy="spin", spin_interval=0.02)
        t0 = time.perf_counter()
        b_token = b.acquire(timeout=5)  # a lease that survived the restart runs out first
        b_waited = time.perf_counter() - t0
        b_landed = b_token is not None and store.write("B", b_token, owner=b.owner)
        a_again = store.write("A (stale)", a_token, owner=a.owner)
        client.close()
        server.stop()
    finally:
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)
    return {
        "lock server": "AOF, appendfsync always" if persist else "no persistence",
        "A's token": a_token,
        "A's write landed": a_first,
        "B's token after the restart": b_token,
        "B waited (ms)": b_waited * 1000,
        "B's write landed": b_landed,
        "A's stale write landed": a_again,
        "stored": store.read()[0],
    }


# ---------------------------------------------------------------- Redlock (pottery), the peer


def redlock_acquire_cost(
    servers: list[RedisServer], single: Client, *, pairs: int = 30
) -> list[dict[str, Any]]:
    """Uncontended acquire + release, ``pairs`` times: pottery's Redlock over ``servers``
    vs labkit's Lock on ``single`` (a client of one of them), interleaved pair by pair so
    both see the same machine load. Per variant: median and max ms per pair, failed
    acquires, and server commands per pair (INFO stats summed over the servers, counted in
    a separate untimed pass of ``pairs`` pairs per variant)."""
    from pottery import Redlock

    masters = [s.client() for s in servers]
    admins = [s.client() for s in servers]
    variants = ("labkit Lock (1 server)", "pottery Redlock (5 servers)")
    run = secrets.token_hex(3)

    def make(variant: str, i: int) -> Any:
        # One key per pair: pottery's release returns once a majority answered, and the
        # other releases, still in flight, must not meet the next pair's SET NX.
        if variant.startswith("labkit"):
            return Lock(single, f"cost-{run}-{i}", ttl=10, prefix="cost:")
        return Redlock(key=f"cost-{run}-{i}", masters=masters, auto_release_time=10)

    def pair(lock: Any) -> bool:
        if lock.acquire(blocking=False):  # a token (labkit) or True (pottery)
            lock.release()
            return True
        return False  # Redlock refuses a grant that took longer than its validity

    try:
        for v in variants:  # scripts loaded, connections open
            pair(make(v, -1))
        commands: dict[str, float] = {}
        for v in variants:
            locks = [make(v, pairs + i) for i in range(pairs)]
            before = sum(_commands(a) for a in admins)
            for lock in locks:
                pair(lock)
            commands[v] = (sum(_commands(a) for a in admins) - before - len(admins)) / pairs
        times: dict[str, list[float]] = {v: [] for v in variants}
        failed = dict.fromkeys(variants, 0)
        for i in range(pairs):
            for v in variants:
                lock = make(v, 2 * pairs + i)
                t0 = time.perf_counter()
                failed[v] += not pair(lock)
                times[v].append(time.perf_counter() - t0)
    finally:
        for c in (*masters, *admins):
            c.close()
    return [
        {
            "variant": v,
            "median_ms": float(np.median(times[v]) * 1000),
            "max_ms": float(np.max(times[v]) * 1000),
            "commands per acquire+release": commands[v],
            "failed acquires": failed[v],
        }
        for v in variants
    ]


def redlock_pause_rounds(
    servers: list[RedisServer],
    storage: Client,
    *,
    prefix: str,
    rounds: int = 3,
    ttl: float = 0.25,
    pause: float = 0.4,
) -> list[dict[str, Any]]:
    """Holder A takes pottery's Redlock (lease ``ttl``) on a majority of ``servers``, then
    stalls (a sleep: to Redis, a GC pause or SIGSTOP looks the same) for at least ``pause``
    s and until B, who acquired meanwhile, has written; then A writes. The storage is a
    Redis key on ``storage``: Redlock gives A nothing to fence with. Rounds run in parallel.
    """
    from pottery import Redlock
    from pottery.exceptions import ReleaseUnlockedLock

    if pause <= ttl:
        raise ValueError(f"pause must be longer than ttl, got pause={pause}, ttl={ttl}")
    out: list[dict[str, Any]] = [{} for _ in range(rounds)]

    def one(i: int) -> None:
        masters = [s.client() for s in servers]
        name, record = f"paused-{i}-{secrets.token_hex(3)}", f"{prefix}redlock-record:{i}"
        a = Redlock(key=name, masters=masters, auto_release_time=ttl)
        b = Redlock(key=name, masters=masters, auto_release_time=ttl)
        b_wrote = threading.Event()
        # Blocking: a loaded machine can make one attempt outlast the validity Redlock demands.
        granted = a.acquire(timeout=5)
        b_granted = [False]

        def second() -> None:
            b_granted[0] = b.acquire(timeout=pause + 5)
            if b_granted[0]:
                storage.set(record, "B")
                with contextlib.suppress(ReleaseUnlockedLock):
                    b.release()
            b_wrote.set()

        helper = threading.Thread(target=second)
        helper.start()
        time.sleep(pause)  # A stalls past its lease
        b_wrote.wait(10)
        storage.set(record, "A (stale)")  # the storage has no token to compare
        try:
            a.release()
            refused = False
        except ReleaseUnlockedLock:
            refused = True
        helper.join(10)
        for c in masters:
            c.close()
        out[i] = {"A granted": granted, "what acquire returned": repr(granted),
                  "B granted during A's stall": b_granted[0],
                  "stale write landed": storage.get(record) == "A (stale)",
                  "A's release refused": refused}  # fmt: skip

    _in_parallel(one, rounds)
    return out


# ---------------------------------------------------------------- section 1: the five defects


@dataclass
class DefectRuns:
    """Section 1's runs, the article's lock (``"naive"``) beside labkit's ``Lock`` (``"labkit"``)."""

    l1: dict[str, dict[str, int]]  # unlocked_bodies per variant
    load: list[dict[str, Any]]  # waiter_loads rows (L2), one per waiting variant
    overrun: dict[str, list[dict[str, Any]]]  # overrun_rounds per variant (L3, L4)
    l5: dict[str, dict[str, int]]  # shared_object_rounds per variant

    def trips(self, variant: str) -> float:
        """L2: round trips per second per waiter (``"notify"`` is labkit's default)."""
        return float(next(row for row in self.load if row["variant"] == variant)["round trips per s per waiter"])

    def count(self, variant: str, what: str) -> int:
        return sum(int(row[what]) for row in self.overrun[variant])

    def table(self) -> list[tuple[str, str, object, object]]:
        """(defect, what was counted, naive, labkit): one row per thing counted."""
        rounds = len(self.overrun["naive"])
        l1n, l1l, l5n, l5l = self.l1["naive"], self.l1["labkit"], self.l5["naive"], self.l5["labkit"]
        return [
            ("L1", "with-bodies run without the lock (of 20)", l1n["ran without the lock"],
             l1l["ran without the lock"]),
            ("L1", "most bodies inside at once", l1n["most bodies inside at once"],
             l1l["most bodies inside at once"]),
            ("L2", "round trips per second per waiter", round(self.trips("naive"), 1),
             round(self.trips("notify"), 1)),
            ("L3", f"holders told they lost the lock (of {rounds})", self.count("naive", "holder told"),
             self.count("labkit", "holder told")),
            ("L4", f"stale writes landed (of {rounds})", self.count("naive", "stale write landed"),
             self.count("labkit", "stale write landed")),
            ("L5", "outsider got in while thread one held (of 3)", l5n["outsider got in"],
             l5l["outsider got in"]),
        ]  # fmt: skip


def defect_runs(
    r: Client, servers: list[RedisServer], *, prefix: str,
    waiting: tuple[str, ...] = ("naive", "redis-py", "spin", "backoff", "notify"),
) -> DefectRuns:
    """Run L1-L5 for the article's lock and labkit's, L2 for every waiting variant in
    ``waiting`` (one private server each). L3/L4's slow naive rounds (1 s lease: its ``EX``
    takes whole seconds) run beside L2, since both mostly wait."""
    with ThreadPoolExecutor(2) as pool:
        slow = pool.submit(overrun_rounds, r, prefix=prefix, variant="naive", ttl=1.0)
        load = waiter_loads(servers, waiting)
        overrun = {"naive": slow.result(),
                   "labkit": overrun_rounds(r, prefix=prefix, variant="labkit", ttl=0.2)}  # fmt: skip
    l1 = {v: unlocked_bodies(r, prefix=prefix, variant=v) for v in ("naive", "labkit")}
    l5 = {v: shared_object_rounds(r, prefix=prefix, variant=v) for v in ("naive", "labkit")}
    return DefectRuns(l1=l1, load=load, overrun=overrun, l5=l5)
