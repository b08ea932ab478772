"""Round-trip experiments (notebook 00): fair latency comparisons, MULTI/EXEC, WATCH and Lua.

- ``interleaved`` times several calls round robin, so a noisy moment on a shared machine
  lands on every variant alike instead of on whichever ran during it.
- ``command_stats`` / ``server_usec`` read the server's own time per command from
  ``INFO commandstats``, to split a round trip into the server's work and everything else.
- ``interleaving`` stages what ``pipeline(transaction=False)`` gives up (an illustration: a
  BLPOP pins the moment): another client's write lands in the middle of the batch.
- ``foreign_writes`` measures it on one workload for both arms: a big RPUSH pipeline while
  another client keeps writing the same list; count that client's writes inside the batch.
- ``contend`` runs a read-modify-write from several threads at once and counts the updates
  lost, for three ways of writing it: plain GET/SET, WATCH with retries, a Lua script;
  ``concurrently`` is the thread rig under it (also for a learner's own function).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import redis

from labkit import checks, scripts
from labkit.client import Client, is_cluster
from labkit.measure import counting_client

# An update takes the client and the document's key and returns how many times it retried.
Update = Callable[[Any, str], int]

FIELD = "count"


def interleaved(
    calls: Mapping[str, Callable[[], object]],
    rounds: int,
    *,
    warmup: int = 20,
    after_round: Callable[[], object] | None = None,
) -> dict[str, np.ndarray]:
    """Seconds taken by each call, timed round robin: one of each per round, ``rounds`` rounds.

    The starting call rotates every round, so no variant always runs first (or right after
    the same neighbour). ``warmup`` untimed rounds come first. ``after_round`` (e.g. a
    progress bar's ``update``) is called after each timed round, outside the timing.
    """
    if not calls:
        raise ValueError("calls must name at least one callable")
    n = checks.integer("rounds", rounds, low=1, high=10_000_000)
    checks.integer("warmup", warmup, low=0, high=10_000_000)
    names = list(calls)
    fns = [calls[name] for name in names]
    for _ in range(warmup):
        for fn in fns:
            fn()
    samples = np.empty((len(fns), n))
    clock = time.perf_counter
    for i in range(n):
        for j in range(len(fns)):
            which = (i + j) % len(fns)
            t0 = clock()
            fns[which]()
            samples[which, i] = clock() - t0
        if after_round is not None:
            after_round()
    return {name: samples[j] for j, name in enumerate(names)}


def command_stats(r: Client) -> dict[str, tuple[int, int]]:
    """``{command: (calls, usec)}`` from ``INFO commandstats``, summed over a cluster's nodes."""
    if is_cluster(r):
        per_node = r.info("commandstats", target_nodes=r.ALL_NODES)
        sections = list(per_node.values())
    else:
        sections = [r.info("commandstats")]
    out: dict[str, tuple[int, int]] = {}
    for section in sections:
        for name, stats in section.items():
            command = name.removeprefix("cmdstat_")
            calls, usec = out.get(command, (0, 0))
            out[command] = (calls + int(stats["calls"]), usec + int(stats["usec"]))
    return out


def server_usec(
    before: Mapping[str, tuple[int, int]], after: Mapping[str, tuple[int, int]], command: str
) -> float:
    """The server's mean µs per ``command`` between two ``command_stats`` readings (nan if none).

    On a server others use, their calls of the same command count too.
    """
    calls0, usec0 = before.get(command, (0, 0))
    calls1, usec1 = after.get(command, (0, 0))
    calls = calls1 - calls0
    return (usec1 - usec0) / calls if calls > 0 else float("nan")


@dataclass(frozen=True)
class Interleaving:
    """What a second client saw of a three-step batch ``RPUSH A1; <pause>; RPUSH A2``."""

    transaction: bool
    seen: list[str]  # the log when the second client first looked at it
    final: list[str]  # the log after the second client appended B1


def interleaving(
    r: Client, log_key: str, gate_key: str, *, transaction: bool, timeout: float = 4.0
) -> Interleaving:
    """Run ``RPUSH log A1; BLPOP gate; RPUSH log A2`` as one pipeline while another client
    reads the log, then appends ``B1`` and opens the gate.

    Outside a transaction the server runs the batch command by command and serves other
    clients between them; the BLPOP pins that moment down, so the outcome is deterministic:
    the reader sees ``[A1]`` and B1 lands between A1 and A2. Inside MULTI/EXEC a blocking
    command does not block (it answers at once), and the block runs as one: the reader sees
    both or neither, and B1 lands after. ``log_key`` and ``gate_key`` must share a hash slot.
    ``timeout`` bounds the BLPOP and the wait for the batch to start; keep it under the
    client's socket timeout. Raises TimeoutError when the batch did not start in time.
    """
    wait = checks.number("timeout", timeout, low=0.1, high=60.0)
    r.delete(log_key, gate_key)
    failure: list[BaseException] = []

    def batch() -> None:
        try:
            pipe = r.pipeline(transaction=transaction)
            pipe.rpush(log_key, "A1")
            pipe.blpop([gate_key], timeout=wait)
            pipe.rpush(log_key, "A2")
            pipe.execute()
        except BaseException as exc:  # reported by the caller's thread
            failure.append(exc)

    worker = threading.Thread(target=batch, daemon=True)
    worker.start()
    deadline = time.monotonic() + wait
    seen: list[str] = []
    while time.monotonic() < deadline and not failure:
        seen = [checks.as_text(x) for x in r.lrange(log_key, 0, -1)]
        if seen:
            break
        time.sleep(0.001)
    if not seen and not failure:
        r.rpush(gate_key, "go")  # let the batch finish rather than leave it blocked
        worker.join(wait + 5.0)
        r.delete(log_key, gate_key)
        raise TimeoutError(f"the batch did not start within {wait} s; the machine is too busy")
    r.rpush(log_key, "B1")
    r.rpush(gate_key, "go")
    worker.join(wait + 5.0)
    if failure:
        raise failure[0]
    final = [checks.as_text(x) for x in r.lrange(log_key, 0, -1)]
    r.delete(log_key, gate_key)
    return Interleaving(transaction, seen, final)


@dataclass(frozen=True)
class ForeignWrites:
    """Another client's writes that landed inside a batch, over ``attempts`` batches."""

    transaction: bool
    attempts: int
    batch: int  # commands per batch
    inside: int  # the other client's writes between the batch's first and last element
    outside: int  # its writes before or after the batch


# The batch's element: 64 bytes make the batch arrive in more reads (the server reads a
# client's input 16 KB at a time and serves other clients between reads), so the other
# client gets more chances to land in the middle when nothing keeps it out.
_A = "A" * 64


def _foreign_writes_once(
    r: Client, key: str, *, transaction: bool, batch: int, wait: float
) -> tuple[int, int]:
    r.delete(key)
    stop = threading.Event()
    started = threading.Event()
    failure: list[BaseException] = []

    def writer() -> None:
        try:
            while not stop.is_set():
                r.rpush(key, "B")
                started.set()
        except BaseException as exc:  # reported by the caller's thread
            failure.append(exc)
            started.set()

    worker = threading.Thread(target=writer, daemon=True)
    worker.start()
    try:
        # The writer must be running before the batch goes out, or nothing can interleave.
        if not started.wait(wait):
            raise TimeoutError(f"the writer did not start within {wait} s; the machine is too busy")
        pipe = r.pipeline(transaction=transaction)
        for _ in range(batch):
            pipe.rpush(key, _A)
        pipe.execute()
    finally:
        stop.set()
        worker.join(wait + 5.0)
    if failure:
        raise failure[0]
    log = [checks.as_text(x) for x in r.lrange(key, 0, -1)]
    r.delete(key)
    first, last = log.index(_A), len(log) - 1 - log[::-1].index(_A)
    inside = log[first : last + 1].count("B")
    return inside, log.count("B") - inside


def foreign_writes(
    r: Client,
    key: str,
    *,
    batch: int = 10_000,
    attempts: int = 2,
    max_attempts: int = 6,
    timeout: float = 10.0,
) -> dict[bool, ForeignWrites]:
    """Send ``batch`` ``RPUSH key A...`` (a 64-byte element) in one pipeline while another client keeps sending
    ``RPUSH key B``; count the Bs that land between the first and the last A.

    Both arms (``transaction=False`` and ``True``) run the same workload, alternating, for
    ``attempts`` rounds; while the plain arm has not shown a single interleaved write yet, more
    rounds follow, up to ``max_attempts`` (on a busy machine a batch can slip through before
    the writer gets a turn). Returns ``{transaction: ForeignWrites}``. ``timeout`` bounds the
    wait for the writer to start. Raises TimeoutError when it does not.
    """
    n = checks.integer("batch", batch, low=1, high=1_000_000)
    low = checks.integer("attempts", attempts, low=1, high=100)
    high = checks.integer("max_attempts", max_attempts, low=low, high=100)
    wait = checks.number("timeout", timeout, low=0.1, high=60.0)
    totals = {False: [0, 0], True: [0, 0]}
    rounds = 0
    while rounds < low or (totals[False][0] == 0 and rounds < high):
        rounds += 1
        for tx in (False, True):
            inside, outside = _foreign_writes_once(r, key, transaction=tx, batch=n, wait=wait)
            totals[tx][0] += inside
            totals[tx][1] += outside
    return {
        tx: ForeignWrites(tx, rounds, n, inside, outside)
        for tx, (inside, outside) in totals.items()
    }


def _think(seconds: float) -> None:
    # The application's work between the read and the write (validation, a price lookup...).
    if seconds > 0:
        time.sleep(seconds)


def plain_update(think: float = 0.0) -> Update:
    """GET the document, add 1 in Python, SET it back: two round trips, no protection."""

    def update(r: Any, key: str) -> int:
        doc = json.loads(r.get(key) or "{}")
        doc[FIELD] = doc.get(FIELD, 0) + 1
        _think(think)
        r.set(key, json.dumps(doc))
        return 0

    return update


def watch_update(think: float = 0.0) -> Update:
    """The same read-modify-write under WATCH: EXEC fails if the key changed since WATCH,
    and the update starts again from a fresh read. Returns the number of retries."""

    def update(r: Any, key: str) -> int:
        retries = 0
        # transaction=True: redis.Redis's default, and what a cluster client needs for WATCH.
        with r.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pipe.watch(key)  # from here the pipeline runs commands at once
                    doc = json.loads(pipe.get(key) or "{}")
                    doc[FIELD] = doc.get(FIELD, 0) + 1
                    _think(think)
                    pipe.multi()  # back to buffering: SET runs inside MULTI/EXEC
                    pipe.set(key, json.dumps(doc))
                    pipe.execute()
                    return retries
                except redis.WatchError:
                    retries += 1  # someone wrote the key after our WATCH: read again

    return update


JSON_INCR = scripts.load("round_trips/json_incr")


def lua_update() -> Update:
    """The read-modify-write as one Lua script: it runs inside the server, nothing in between."""

    def update(r: Any, key: str) -> int:
        scripts.register(r, JSON_INCR)(keys=[key], args=[FIELD])
        return 0

    return update


@dataclass(frozen=True)
class Contention:
    """The outcome of ``threads`` x ``per_thread`` concurrent updates of one counter."""

    expected: int
    final: int
    retries: int
    seconds: float

    @property
    def lost(self) -> int:
        """Updates that returned but left no trace: another writer overwrote them."""
        return self.expected - self.final


def concurrently(
    call: Callable[[int, int], Any], *, threads: int = 4, per_thread: int = 50
) -> tuple[list[Any], float]:
    """Start ``threads`` threads together; thread ``t`` calls ``call(t, i)`` for each ``i`` in
    ``range(per_thread)``. Returns every call's result and the seconds the whole run took.

    The first exception raised in a thread is raised here once all threads have finished.
    """
    n_threads = checks.integer("threads", threads, low=1, high=64)
    n_calls = checks.integer("per_thread", per_thread, low=1, high=100_000)
    start = threading.Barrier(n_threads)
    results: list[list[Any]] = [[] for _ in range(n_threads)]
    failures: list[BaseException] = []

    def work(t: int) -> None:
        try:
            start.wait()
            for i in range(n_calls):
                results[t].append(call(t, i))
        except BaseException as exc:  # reported by the caller's thread
            failures.append(exc)
            start.abort()  # a thread that never reached the barrier must not strand the others

    workers = [threading.Thread(target=work, args=(t,), daemon=True) for t in range(n_threads)]
    t0 = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    seconds = time.perf_counter() - t0
    if failures:
        raise failures[0]
    return [x for per_thread_results in results for x in per_thread_results], seconds


def contend(
    r: Client, key: str, update: Update, *, threads: int = 4, per_thread: int = 50
) -> Contention:
    """Start ``threads`` threads together, each calling ``update(r, key)`` ``per_thread``
    times on a document ``{"count": 0}``; count the increments that survived."""
    r.set(key, json.dumps({FIELD: 0}))
    retries, seconds = concurrently(
        lambda _t, _i: update(r, key), threads=threads, per_thread=per_thread
    )
    final = int(json.loads(r.get(key) or "{}").get(FIELD, 0))
    return Contention(len(retries), final, sum(retries), seconds)


def trips_per_update(r: Client, key: str, update: Update) -> int:
    """Round trips one uncontended ``update`` takes (after a first, uncounted one)."""
    counted, trips = counting_client(r)
    try:
        counted.set(key, json.dumps({FIELD: 0}))
        update(counted, key)  # untimed first call: a script gets loaded on the server here
        trips.reset()
        update(counted, key)
        return trips.count
    finally:
        counted.close()


def traced(r: Client, fn: Callable[[Any], object], command: str) -> tuple[int, int]:
    """Call ``fn(client)`` with a round-trip-counting client to the same server; return
    (round trips it took, times the server ran ``command`` meanwhile).

    The command count comes from ``INFO commandstats``: on a server others use, their calls
    of the same command count too.
    """
    counted, trips = counting_client(r)
    try:
        before = command_stats(r)
        fn(counted)
        after = command_stats(r)
        calls = after.get(command, (0, 0))[0] - before.get(command, (0, 0))[0]
        return trips.count, calls
    finally:
        counted.close()
