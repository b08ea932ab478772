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

import multiprocessing
import os
import secrets
import signal
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import redis
import redis.lock

from labkit import checks
from labkit.client import Client, is_cluster
from labkit.locks import STRATEGIES, FencedStore, Lock, lock_keys

VARIANTS = (*STRATEGIES, "redis-py")


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
        waits = self.all_waits() * 1000
        return {
            "variant": self.variant,
            "mode": self.mode,
            "workers": self.workers,
            "sections": self.sections,
            "throughput_per_s": self.throughput,
            "p50_wait_ms": float(np.percentile(waits, 50)) if waits.size else 0.0,
            "p99_wait_ms": float(np.percentile(waits, 99)) if waits.size else 0.0,
            "max_wait_ms": float(waits.max()) if waits.size else 0.0,
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
) -> tuple[list[float], list[float]]:
    """One worker's loop: acquire, hold ``hold`` s, release, work ``think`` s outside, repeat.

    Runs from wall-clock ``start_at`` to ``stop_at`` (``time.time()``, shared by processes).
    Returns (completed waits, censored waits) in seconds.
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
    if variant == "redis-py":
        peer = redis.lock.Lock(r, lock_keys(prefix, name).lock, timeout=ttl, sleep=0.1)

        def take(wait: float) -> bool:
            return bool(peer.acquire(blocking_timeout=wait))

        give: Callable[[], object] = peer.release
    else:
        lock = Lock(r, name, ttl=ttl, strategy=variant, prefix=prefix)

        def take(wait: float) -> bool:
            return lock.acquire(timeout=wait) is not None

        give = lock.release
    waits: list[float] = []
    censored: list[float] = []
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
            kwargs = {
                "name": f"contention-{run}-{variant}-{n}",
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
        landed = store.write("from the paused holder", token) if token is not None else False
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
                store.write("from the second holder", second)
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
