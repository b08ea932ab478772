"""Stream worker processes for notebook 04 and the tests: a handler that records what it saw,
the entry point of a worker process, a graceful stop on SIGTERM/SIGINT, and a CLI.

    proc = start_worker_process(url, queue, "worker-1", ns.key("seen"), min_idle_ms=300)
    ...
    proc.send_signal(signal.SIGTERM)   # finishes the current message, acks, prints its stats

The rest drives the notebook's experiments, each returning plain data to tabulate:

* ``defect_run`` — the article's queue (``labkit.naive.RedisStreamQueue`` + ``run_worker``)
  and labkit's ``Worker`` on one scripted workload (a flaky handler, a worker that crashes
  for good, one that crashes and restarts), ``takeover`` — a labkit ``Worker`` started on
  the article's own stream and group;
* ``kill_workers`` — worker processes killed with SIGKILL while orders flow, recording what
  each victim held and whether it was handled again;
* ``throughput`` — consumers (threads) x batch size, repeated;
* ``slow_handler`` (double processing when a handler outlives ``min_idle_ms``),
  ``trim_unacked`` and ``trim_policies_supported`` (trimming ignores acks before 8.2),
  ``ReliableList`` (the LMOVE queue) with ``list_vs_stream``.

The pattern itself (``StreamQueue``, ``Worker``) is ``labkit.streams``; this module only
runs it and records what happened.
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import random
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager, redirect_stdout, suppress
from dataclasses import dataclass, field
from typing import Any

import redis

from labkit import checks, naive
from labkit.client import Client
from labkit.streams import DEFAULT_MAX_DELIVERIES, Message, StreamQueue, Worker, WorkerStats


def recording_handler(
    r: Client,
    seen_key: str,
    *,
    fail_field: str | None = None,
    work_ms: float = 0.0,
    owner_key: str | None = None,
    consumer: str | None = None,
) -> Callable[[Message], None]:
    """A handler for experiments and tests: counts every delivery of a message id in the
    hash ``seen_key`` (HINCRBY) and, given ``owner_key`` and ``consumer``, records in the
    hash ``owner_key`` which consumer ran it last (HSET, in the same round trip); spends
    ``work_ms`` "working", then raises ``ValueError`` if the payload has a truthy
    ``fail_field`` (a poison message).

    Idempotent in effect: the set of ids in the hash is the same however often a message
    is delivered; the counts show how often that was."""
    checks.text("seen_key", seen_key)
    work_s = checks.number("work_ms", work_ms, low=0, high=checks.MAX_MS) / 1000
    if fail_field is not None:
        checks.text("fail_field", fail_field)
    if (owner_key is None) != (consumer is None):
        raise ValueError("owner_key and consumer go together: give both or neither")
    if owner_key is not None:
        checks.text("owner_key", owner_key)
        checks.text("consumer", consumer)

    def handle(message: Message) -> None:
        if owner_key is None:
            r.hincrby(seen_key, message.id, 1)
        else:
            pipe = r.pipeline(transaction=False)
            pipe.hincrby(seen_key, message.id, 1)
            pipe.hset(owner_key, message.id, str(consumer))
            pipe.execute()
        if work_s:
            time.sleep(work_s)
        if fail_field is not None:
            data = message.data
            if isinstance(data, Mapping) and data.get(fail_field) not in (None, "", "0", 0):
                raise ValueError(f"poison message {message.id}")

    return handle


@contextmanager
def stop_on_signals(worker: Worker) -> Iterator[Worker]:
    """While inside, SIGTERM and SIGINT ask ``worker`` to stop (it finishes the current
    message, acks it and returns) instead of killing the process mid-handler. Only the
    main thread can install signal handlers; elsewhere this does nothing. The previous
    handlers are restored on exit."""
    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, lambda *_: worker.stop())
    try:
        yield worker
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_worker(
    url: str,
    stream: str,
    group: str,
    consumer: str,
    handler_factory: Callable[..., Callable[[Message], object]],
    handler_kwargs: Mapping[str, Any] | None = None,
    queue_kwargs: Mapping[str, Any] | None = None,
    worker_kwargs: Mapping[str, Any] | None = None,
) -> dict[str, int]:
    """Entry point for a worker *process* (multiprocessing ``spawn``/``forkserver``): connect
    to ``url``, build the handler with ``handler_factory(r, **handler_kwargs)`` (a
    module-level function, so it pickles), run a ``Worker`` until it stops (SIGTERM/SIGINT
    stop it gracefully), close the connection, return its stats."""
    r = redis.Redis.from_url(url, decode_responses=True)
    try:
        queue = StreamQueue(r, stream, group, **dict(queue_kwargs or {}))
        handler = handler_factory(r, **dict(handler_kwargs or {}))
        worker = Worker(queue, consumer, handler, **dict(worker_kwargs or {}))
        with stop_on_signals(worker):
            return worker.run().as_dict()
    finally:
        r.close()


def start_worker_process(
    url: str,
    queue: StreamQueue,
    consumer: str,
    seen_key: str,
    *,
    fail_field: str | None = None,
    work_ms: float = 0.0,
    owner_key: str | None = None,
    count: int = 10,
    block_ms: int = 100,
    min_idle_ms: int = 30_000,
    claim_every_s: float = 1.0,
    exit_when_idle: bool = False,
) -> subprocess.Popen[str]:
    """Start a child process running a ``Worker`` with ``recording_handler`` on ``queue``
    (given ``owner_key``, the handler records there that ``consumer`` ran each id); its stats are printed as JSON on stdout when it stops (SIGTERM/SIGINT or
    ``exit_when_idle``). The caller owns the process: wait for it, or kill it.

    The child runs ``python -m labkit.experiments.streams`` (``main``), which imports
    redis-py and the pattern modules, not pandas, so it starts quickly."""
    checks.text("url", url)
    checks.text("consumer", consumer)
    checks.text("seen_key", seen_key)
    # refuse bad settings here, not in a child process that would die on them
    checks.number("work_ms", work_ms, low=0, high=checks.MAX_MS)
    Worker(
        queue, consumer, print, count=count, block_ms=block_ms, min_idle_ms=min_idle_ms,
        claim_every_s=claim_every_s,
    )  # fmt: skip
    args = [
        sys.executable, "-m", "labkit.experiments.streams", url, queue.stream, queue.group,
        consumer, seen_key,
        "--work-ms", repr(float(work_ms)), "--max-deliveries", str(queue.max_deliveries),
        "--count", str(count), "--block-ms", str(block_ms),
        "--min-idle-ms", str(min_idle_ms), "--claim-every-s", repr(float(claim_every_s)),
    ]  # fmt: skip
    if fail_field is not None:
        args += ["--fail-field", checks.text("fail_field", fail_field)]
    if owner_key is not None:
        args += ["--owner-key", checks.text("owner_key", owner_key)]
    if exit_when_idle:
        args.append("--exit-when-idle")
    return subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True)


def run_for(worker: Worker, deadline_s: float) -> tuple[WorkerStats, bool]:
    """Run ``worker`` (usually ``exit_when_idle``) for at most ``deadline_s`` seconds: a
    timer calls ``worker.stop()`` then, so a worker that can never drain its group returns
    (with entries still pending, a number a claim can check) instead of hanging. Returns
    ``(stats, stopped_by_deadline)``."""
    checks.number("deadline_s", deadline_s, low=0.001, high=3600)
    timer = threading.Timer(deadline_s, worker.stop)
    timer.daemon = True
    timer.start()
    try:
        stats = worker.run()
    finally:
        timer.cancel()
    return stats, worker.stopping


# ------------------------------------------------------- the article's queue beside labkit's Worker


class Crash(BaseException):
    """A worker dies here (SIGKILL, the OOM killer): no ``except Exception`` catches it, and
    nothing after the line that raised it runs."""


FLAKY_EVERY = 10  # message n with n % FLAKY_EVERY == 3 fails on its first delivery only
BATCH = 5  # the article's worker reads 5 at a time; labkit's Worker is given the same count
VARIANTS = ("naive", "labkit")


@dataclass
class Ledger:
    """The handler both variants run, and what it saw.

    ``handle(n, consumer)``: a flaky downstream call (message ``n`` with ``n % FLAKY_EVERY
    == 3`` fails on its first delivery, succeeds on any later one), and a scripted crash:
    ``crashes[(tick, consumer)] = k`` makes ``consumer`` die (``Crash``) on its ``k``-th
    message of that tick, before doing anything with it. ``successes`` holds ``(n,
    consumer, life)``, ``life`` counting that consumer name's crashes so far."""

    crashes: dict[tuple[int, str], int]
    tick: int = 0
    attempts: Counter[int] = field(default_factory=Counter)
    successes: list[tuple[int, str, int]] = field(default_factory=list)
    lives: Counter[str] = field(default_factory=Counter)
    calls: Counter[str] = field(default_factory=Counter)

    def start_tick(self, tick: int) -> None:
        self.tick = tick
        self.calls.clear()

    def handle(self, n: int, consumer: str) -> None:
        self.calls[consumer] += 1
        if self.crashes.get((self.tick, consumer)) == self.calls[consumer]:
            del self.crashes[(self.tick, consumer)]
            self.lives[consumer] += 1
            raise Crash(consumer)
        self.attempts[n] += 1
        if n % FLAKY_EVERY == 3 and self.attempts[n] == 1:
            raise ValueError(f"downstream timeout on message {n}")
        self.successes.append((n, consumer, self.lives[consumer]))

    def handled(self, *, by_other_than: str | None = None, min_life: int = 0) -> set[int]:
        """Message numbers handled successfully (by a consumer other than ``by_other_than``;
        by a consumer in its ``min_life``-th life or later)."""
        return {n for n, who, life in self.successes if who != by_other_than and life >= min_life}


@dataclass
class DefectRun:
    """One variant's run of the scripted workload (``defect_run``)."""

    variant: str
    stream: str
    group: str
    added: int
    ledger: Ledger
    held: dict[str, set[int]]  # consumer -> message numbers it held when it crashed
    timeline: list[dict[str, Any]]  # one row per tick: pending entries by cause, XLEN
    errors_printed: int  # lines the article's worker printed ("Error processing message")
    n_of: dict[str, int]  # stream id -> message number
    deadline_hits: int = 0  # labkit steps stopped by their deadline (group never drained)

    def stuck(self) -> dict[str, int]:
        """Per defect, the messages never handled (see ``defect_rows``)."""
        flaky = {n for n in self.ledger.attempts if n % FLAKY_EVERY == 3}
        return {
            "Q1": len(flaky - self.ledger.handled()),
            "Q2": len(self.held["worker-a"] - self.ledger.handled(by_other_than="worker-a")),
            "Q3": len(self.held["worker-b"] - self.ledger.handled(min_life=1)),
        }


def _undelivered(r: Client, stream: str, group: str) -> bool:
    """Whether the stream has entries after the group's last delivered id."""
    info: Any = r.xinfo_groups(stream)
    last = next(
        checks.as_text(g["last-delivered-id"]) for g in info if checks.as_text(g["name"]) == group
    )
    return bool(r.xrange(stream, min="(" + last, count=1))


def _pending_ids(r: Client, stream: str, group: str, consumer: str | None = None) -> list[str]:
    kwargs: dict[str, Any] = {} if consumer is None else {"consumername": consumer}
    rows: Any = r.xpending_range(stream, group, min="-", max="+", count=100_000, **kwargs)
    return [checks.as_text(row["message_id"]) for row in rows]


def defect_run(
    r: Client,
    prefix: str,
    variant: str,
    *,
    ticks: int = 6,
    per_tick: int = 30,
    crash_a: int = 1,
    crash_b: int = 3,
    crash_on: int = 3,
    maxlen: int = 100,
    min_idle_ms: int = 50,
    deadline_s: float = 3.0,
) -> DefectRun:
    """The scripted workload on the article's queue (``variant="naive"``) or labkit's.

    Every tick a producer adds ``per_tick`` messages and the current worker handles what it
    can with ``Ledger.handle`` (flaky: some fail once). ``worker-a`` works until tick
    ``crash_a``, where it crashes on its ``crash_on``-th message and is never seen again;
    ``worker-b`` takes over in the same tick. At tick ``crash_b`` ``worker-b`` crashes the
    same way and restarts at once under its own name. The article's worker is
    ``naive.run_worker`` (reads ``>`` only, 5 at a time, acks each success); labkit's is a
    ``Worker`` with ``count=5`` and ``min_idle_ms`` that runs until its group is idle, or
    for ``deadline_s`` at most (``run_for``: a worker that cannot drain the group leaves
    entries pending, counted in the timeline, instead of hanging; ``deadline_hits`` counts
    such steps). labkit's stream is capped with ``maxlen`` (``XADD MAXLEN ~``)."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    checks.text("prefix", prefix)
    ticks = checks.integer("ticks", ticks, low=1, high=1_000)
    per_tick = checks.integer("per_tick", per_tick, low=BATCH, high=10_000)
    checks.integer("crash_a", crash_a, low=0, high=ticks - 1)
    checks.integer("crash_b", crash_b, low=crash_a + 1, high=ticks - 1)
    checks.integer("crash_on", crash_on, low=1, high=BATCH)
    checks.number("deadline_s", deadline_s, low=0.001, high=3600)
    key = f"{prefix}{variant}:{{jobs}}"
    hits = [0]
    ledger = Ledger({(crash_a, "worker-a"): crash_on, (crash_b, "worker-b"): crash_on})
    n_of: dict[str, int] = {}
    printed = io.StringIO()

    if variant == "naive":
        article = naive.RedisStreamQueue(r, key)
        stream, group = article.stream, article.group

        def add(numbers: range) -> None:
            for n in numbers:
                n_of[checks.as_text(article.add_message({"n": n}))] = n

        def step(consumer: str) -> None:
            def process(data: dict[str, Any]) -> None:
                ledger.handle(int(data["n"]), consumer)

            while _undelivered(r, stream, group):  # never a round that would block 5 s
                naive.run_worker(article, consumer, process, rounds=1)

    else:
        queue = StreamQueue(r, key, "workers", maxlen=maxlen)
        queue.setup()
        stream, group = queue.stream, queue.group

        def add(numbers: range) -> None:
            for mid, n in zip(queue.add_many({"n": n} for n in numbers), numbers, strict=True):
                n_of[mid] = n

        def step(consumer: str) -> None:
            worker = Worker(
                queue, consumer, lambda m: ledger.handle(int(m.data["n"]), consumer),
                count=BATCH, block_ms=5, min_idle_ms=min_idle_ms, claim_every_s=0.01,
                exit_when_idle=True,
            )  # fmt: skip
            hits[0] += run_for(worker, deadline_s)[1]

    held: dict[str, set[int]] = {"worker-a": set(), "worker-b": set()}
    timeline = []
    with redirect_stdout(printed):
        for tick in range(ticks):
            ledger.start_tick(tick)
            add(range(tick * per_tick, (tick + 1) * per_tick))
            consumer = "worker-a" if tick <= crash_a else "worker-b"
            try:
                step(consumer)
            except Crash:
                mine = (n_of[i] for i in _pending_ids(r, stream, group, consumer))
                held[consumer] = {n for n in mine if not ledger.attempts[n]}  # its last batch
                step("worker-b")  # worker-a's replacement, or worker-b restarted
            pending = [n_of[i] for i in _pending_ids(r, stream, group)]
            in_a: int = sum(n in held["worker-a"] for n in pending)
            in_b = sum(n in held["worker-b"] and n not in held["worker-a"] for n in pending)
            timeline.append(
                {"tick": tick, "variant": variant, "pending": len(pending),
                 "failed once (Q1)": len(pending) - in_a - in_b,
                 "held by crashed worker-a (Q2)": in_a,
                 "held by restarted worker-b (Q3)": in_b, "XLEN": int(r.xlen(stream))}
            )  # fmt: skip
    errors = sum(
        line.startswith("Error processing message") for line in printed.getvalue().splitlines()
    )
    return DefectRun(
        variant, stream, group, ticks * per_tick, ledger, held, timeline, errors, n_of, hits[0]
    )


def defect_rows(naive_run: DefectRun, labkit_run: DefectRun) -> list[dict[str, Any]]:
    """The defect table: per defect id, the same count on both runs of ``defect_run``. Q4
    (no cap) has no row: at this size ``MAXLEN ~`` has nothing to trim (it drops whole
    nodes of ~100 entries), so it is measured at scale elsewhere (notebook 04, experiment 5)."""
    stuck = {run.variant: run.stuck() for run in (naive_run, labkit_run)}
    last = {run.variant: run.timeline[-1] for run in (naive_run, labkit_run)}
    rows: list[dict[str, Any]] = [
        {"defect": "Q1", "counted": "messages that failed once and were never handled",
         "labkit uses": "retry: XAUTOCLAIM after min_idle_ms"},
        {"defect": "Q2", "counted": "entries the crashed worker-a held, never handled by another",
         "labkit uses": "XAUTOCLAIM by any live worker"},
        {"defect": "Q3", "counted": "entries worker-b held at its crash, not handled after its restart",
         "labkit uses": "recover own pending (claim.lua own mode: XPENDING for the consumer, then XCLAIM)"},
    ]  # fmt: skip
    for row in rows:
        row["naive"] = stuck["naive"][row["defect"]]
        row["labkit"] = stuck["labkit"][row["defect"]]
    rows.append(
        {"defect": "Q1-Q3", "counted": "entries still pending at the end",
         "naive": last["naive"]["pending"], "labkit": last["labkit"]["pending"],
         "labkit uses": "all of the above"}
    )  # fmt: skip
    cols = ["defect", "counted", "naive", "labkit", "labkit uses"]
    return [{c: row[c] for c in cols} for row in rows]


def takeover(
    r: Client, run: DefectRun, *, min_idle_ms: int = 20, deadline_s: float = 5.0
) -> dict[str, Any]:
    """Start a labkit ``Worker`` ("fixer") on the stream and group ``run`` left behind (the
    article's), with the same flaky handler (a copy of ``run.ledger``'s attempts, so
    ``run``'s own counts stay as its workers left them), until the group is idle or
    ``deadline_s`` has passed (``run_for``). Returns pending before/after, whether the
    deadline stopped it, the worker's stats and the seconds it took."""
    queue = StreamQueue(r, run.stream, run.group)
    if queue.stream != run.stream:
        raise ValueError(f"stream {run.stream!r} needs a hash tag to be used as it is")
    before = queue.pending().count
    ledger = Ledger({}, attempts=Counter(run.ledger.attempts))
    t0 = time.perf_counter()
    worker = Worker(
        queue, "fixer", lambda m: ledger.handle(int(m.data["n"]), "fixer"), count=100,
        block_ms=5, min_idle_ms=min_idle_ms, claim_every_s=0.01, exit_when_idle=True,
    )  # fmt: skip
    stats, stopped = run_for(worker, deadline_s)
    return {
        "pending before": before,
        "pending after": queue.pending().count,
        "stopped by deadline": stopped,
        "seconds": time.perf_counter() - t0,
        **stats.as_dict(),
    }


# ------------------------------------------------------------- SIGKILL while orders flow


@dataclass
class KillRun:
    """What ``kill_workers`` saw."""

    ids: list[str]
    kills: list[dict[str, Any]]  # t_s, killed, pending_it_held, cleared_after_s
    timeline: list[dict[str, Any]]  # t_s, produced, handled, pending, victims_pending
    worker_stats: list[dict[str, Any]]  # the survivors' WorkerStats (killed ones print none)
    seen: dict[str, int]  # order stream id -> deliveries the handler recorded
    held: dict[str, int]  # id a victim held -> its deliveries at the victim's death
    held_by: dict[str, str]  # id a victim held -> the victim
    handled_by: dict[str, str]  # order stream id -> the consumer whose handler ran it last
    missed: list[dict[str, Any]] = field(default_factory=list)  # kills of a worker holding 0
    not_done: int = 0  # scheduled kills that never found a victim holding entries

    @property
    def lost(self) -> int:
        return len(set(self.ids) - set(self.seen))

    @property
    def handled_again(self) -> int:
        """Entries a victim held that were handled after it died."""
        return sum(self.seen.get(i, 0) > before for i, before in self.held.items())

    @property
    def handled_twice(self) -> set[str]:
        """Orders whose handler ran two or more times."""
        return {i for i, n in self.seen.items() if n > 1}

    @property
    def run_by_victim(self) -> set[str]:
        """Entries a victim held that its handler had already run (done, not yet acked) when
        it died: each is handled at least twice once another worker claims it."""
        return {i for i, before in self.held.items() if before >= 1}

    @property
    def taken_over(self) -> int:
        """Entries a victim held whose last handler run was another consumer's (the
        server's record, ``handled_by``): the victim's name never comes back, so only
        ``XAUTOCLAIM`` by another worker can have handed them over. Unlike the survivors'
        ``claimed`` stats, this includes claims by workers that were later killed."""
        return sum(self.handled_by.get(i, victim) != victim for i, victim in self.held_by.items())

    @property
    def held_per_victim(self) -> list[int]:
        """Entries each scheduled kill's victim held; 0 for a scheduled kill not done."""
        return [k["pending_it_held"] for k in self.kills] + [0] * self.not_done


def kill_workers(
    r: Client,
    url: str,
    queue: StreamQueue,
    seen_key: str,
    *,
    n_orders: int,
    rate: float,
    n_workers: int,
    kill_times: list[float],
    seed: int,
    worker_opts: Mapping[str, Any],
    timeout_s: float = 60.0,
    on_progress: Callable[[int], object] | None = None,
) -> KillRun:
    """Start ``n_workers`` worker processes (``start_worker_process``) on ``queue``; once all
    are reading, add ``n_orders`` orders at ``rate`` per second, and at each of ``kill_times``
    (seconds into the flow) SIGKILL a live worker that holds pending entries (a seeded
    choice; one always survives) and start a replacement under a new name.

    The victim is picked from ``XPENDING`` before the signal lands, so it may have acked
    everything in between: a kill after which the victim holds nothing goes to ``missed``
    (its replacement is started all the same) and another victim is picked for that slot
    at once. Ends when every order is handled and nothing is pending; a scheduled kill that
    never found a victim holding entries by then counts in ``not_done``. Survivors get
    SIGTERM and print their stats. The handlers record, in the hash ``seen_key + ":by"``,
    which consumer ran each order last (``handled_by``). ``on_progress(handled)`` is called
    as orders are handled."""
    checks.integer("n_orders", n_orders, low=1, high=10_000_000)
    checks.number("rate", rate, low=1, high=10_000_000)
    checks.integer("n_workers", n_workers, low=2, high=64)
    checks.text("seen_key", seen_key)
    rng = random.Random(seed)
    schedule = sorted(checks.number("kill_times", t, low=0, high=timeout_s) for t in kill_times)
    owner_key = seen_key + ":by"
    procs: dict[str, subprocess.Popen[str]] = {}
    numbers = itertools.count()

    def launch() -> None:
        name = f"worker-{next(numbers)}"
        procs[name] = start_worker_process(
            url, queue, name, seen_key, owner_key=owner_key, **worker_opts
        )

    def reading() -> set[str]:
        info: Any = r.xinfo_consumers(queue.stream, queue.group)
        return set(procs) & {checks.as_text(c["name"]) for c in info}

    ids: list[str] = []
    kills: list[dict[str, Any]] = []
    missed: list[dict[str, Any]] = []
    timeline: list[dict[str, Any]] = []
    worker_stats: list[dict[str, Any]] = []
    held: dict[str, int] = {}
    held_by: dict[str, str] = {}
    for _ in range(n_workers):
        launch()
    try:
        deadline = time.monotonic() + timeout_s
        while len(reading()) < n_workers:
            if time.monotonic() > deadline:
                raise TimeoutError("worker processes did not start")
            time.sleep(0.05)
        t0 = time.perf_counter()
        while True:
            t = time.perf_counter() - t0
            due = min(n_orders, int(t * rate))
            if due > len(ids):
                ids += queue.add_many(
                    {"order_id": str(i), "amount": "9.99"} for i in range(len(ids), due)
                )
            live = sorted(reading())
            holding = [c for c, n in queue.pending().consumers.items() if n and c in live]
            if schedule and t >= schedule[0] and len(live) >= 2 and holding:
                victim = rng.choice(holding)
                procs[victim].send_signal(signal.SIGKILL)
                procs.pop(victim).communicate()
                mine = _pending_ids(r, queue.stream, queue.group, victim)
                event = {"t_s": round(t, 2), "killed": victim, "pending_it_held": len(mine)}
                if mine:
                    schedule.pop(0)
                    counts = r.hmget(seen_key, mine)
                    held.update({i: int(c or 0) for i, c in zip(mine, counts, strict=True)})
                    held_by.update(dict.fromkeys(mine, victim))
                    kills.append(event)
                else:
                    missed.append(event)  # it acked all before the signal landed: re-pick
                launch()
            by_consumer = queue.pending().consumers
            pending = sum(by_consumer.values())
            victims = {k["killed"]: by_consumer.get(k["killed"], 0) for k in kills}
            for k in kills:
                if "cleared_after_s" not in k and not victims[k["killed"]]:
                    k["cleared_after_s"] = round(t - k["t_s"], 2)
            done = int(r.hlen(seen_key))
            timeline.append({"t_s": t, "produced": len(ids), "handled": done, "pending": pending,
                             "victims_pending": sum(victims.values())})  # fmt: skip
            if on_progress is not None:
                on_progress(done)
            if done == len(ids) == n_orders and pending == 0:
                break
            if t > timeout_s:
                raise TimeoutError(f"the workers did not finish in {timeout_s} s")
            time.sleep(0.02)
    finally:
        for proc in procs.values():
            proc.send_signal(signal.SIGTERM)  # graceful: finish the message, ack, print stats
        for name, proc in procs.items():
            out, _ = proc.communicate(timeout=30)
            if out.strip():
                worker_stats.append({"worker": name, **json.loads(out)})
    raw: Any = r.hgetall(seen_key)
    seen = {checks.as_text(k): int(v) for k, v in raw.items()}
    owners: Any = r.hgetall(owner_key)
    handled_by = {checks.as_text(k): checks.as_text(v) for k, v in owners.items()}
    return KillRun(
        ids, kills, timeline, worker_stats, seen, held, held_by, handled_by, missed, len(schedule)
    )


# ---------------------------------------------------------------- throughput


def throughput(
    r: Client,
    prefix: str,
    *,
    consumers: Iterable[int] = (1, 4),
    batches: Iterable[int] = (10, 100),
    n_messages: int = 2_000,
    work_s: float = 0.0005,
    repeats: int = 2,
    on_run: Callable[[], object] | None = None,
) -> list[dict[str, Any]]:
    """Drain ``n_messages`` with ``c`` consumer threads reading ``b`` at a time, for every
    (c, b), ``repeats`` times (interleaved, so a slow spell of the machine hits every
    configuration); the handler waits ``work_s`` (I/O). One row per run: consumers, batch,
    repeat, seconds (from the start to the last message handled: not the workers' final
    idle read, whose block the server ends only on its next tick), msgs_per_s."""
    checks.text("prefix", prefix)
    checks.integer("n_messages", n_messages, low=1, high=10_000_000)
    checks.number("work_s", work_s, low=0, high=1)
    checks.integer("repeats", repeats, low=1, high=100)
    grid = [(c, b) for c in consumers for b in batches]
    for c, b in grid:
        checks.integer("consumers", c, low=1, high=64)
        checks.integer("batches", b, low=1, high=n_messages)

    last = [0.0]

    def handler(message: Message) -> None:
        time.sleep(work_s)  # waiting on a downstream service
        last[0] = max(last[0], time.perf_counter())

    rows = []
    for repeat in range(repeats):
        for c, b in grid:
            q = StreamQueue(r, f"{prefix}bench:c{c}-b{b}-r{repeat}", "bench")
            q.setup()
            q.add_many({"n": i} for i in range(n_messages))
            workers = [
                Worker(q, f"c{i}", handler, count=b, block_ms=5, exit_when_idle=True)
                for i in range(c)
            ]
            threads = [threading.Thread(target=w.run) for w in workers]
            t0 = time.perf_counter()
            for th in threads:
                th.start()
            for th in threads:
                th.join()
            seconds = last[0] - t0
            r.delete(q.stream)
            processed = sum(w.stats.processed for w in workers)
            if processed != n_messages:
                raise AssertionError(f"{processed} of {n_messages} processed")
            rows.append({"consumers": c, "batch": b, "repeat": repeat, "seconds": seconds,
                         "msgs_per_s": n_messages / seconds})  # fmt: skip
            if on_run is not None:
                on_run()
    return rows


# ----------------------------------------------------------------------------- limits


def slow_handler(
    r: Client,
    prefix: str,
    *,
    slow_s: float,
    min_idle_ms: int,
    fast_s: float = 0.005,
    n_messages: int = 4,
    n_workers: int = 2,
) -> dict[str, Any]:
    """``n_workers`` Worker threads (``count=1``) on ``n_messages``: the handler takes
    ``slow_s`` on the first message (a slow request), ``fast_s`` on the others. XAUTOCLAIM
    sees only idle time: when the slow run outlasts ``min_idle_ms``, a worker that is free
    claims the message mid-run and runs it too. Returns handler runs, messages run more
    than once, and the seconds it took."""
    checks.number("slow_s", slow_s, low=0, high=10)
    checks.number("fast_s", fast_s, low=0, high=10)
    checks.integer("n_messages", n_messages, low=1, high=10_000)
    checks.integer("n_workers", n_workers, low=2, high=16)
    q = StreamQueue(r, f"{prefix}slow:m{min_idle_ms}", "slow")
    q.setup()
    first, *_ = q.add_many({"n": i} for i in range(n_messages))
    runs: Counter[str] = Counter()
    lock = threading.Lock()

    def handler(message: Message) -> None:
        with lock:
            runs[message.id] += 1
        time.sleep(slow_s if message.id == first else fast_s)

    workers = [
        Worker(q, f"w{i}", handler, count=1, block_ms=5, min_idle_ms=min_idle_ms,
               claim_every_s=0.005, exit_when_idle=True)
        for i in range(n_workers)
    ]  # fmt: skip
    threads = [threading.Thread(target=w.run) for w in workers]
    t0 = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return {
        "min_idle_ms": min_idle_ms,
        "slow handler run (ms)": round(slow_s * 1000),
        "messages": n_messages,
        "handler runs": sum(runs.values()),
        "run twice or more": sum(1 for n in runs.values() if n > 1),
        "dead-lettered": sum(w.stats.dead_lettered for w in workers),
        "seconds": time.perf_counter() - t0,
    }


TRIM_POLICIES = ("KEEPREF", "DELREF", "ACKED")


def trim_policies_supported(r: Client, key: str) -> bool:
    """Whether the server takes ``XADD ... ACKED`` (Redis >= 8.2), asked of the server
    itself on the scratch stream ``key`` (deleted afterwards)."""
    checks.text("key", key)
    try:
        r.execute_command("XADD", key, "ACKED", "MAXLEN", "~", "1", "*", "probe", "1")
    except redis.ResponseError:
        return False
    finally:
        r.delete(key)
    return True


def trim_unacked(
    r: Client, prefix: str, *, maxlen: int = 100, more: int = 500, policy: str | None = None
) -> dict[str, Any]:
    """A worker reads one message and is still working on it (pending, not acked) while the
    producer adds ``more`` with ``XADD MAXLEN ~ maxlen`` (``policy``: one of
    ``TRIM_POLICIES``, Redis >= 8.2; None: the server's default, which is KEEPREF). Then the
    worker restarts and recovers its own pending entry. Returns whether the entry was still
    stored, and what the restarted worker did with it."""
    checks.text("prefix", prefix)
    checks.integer("maxlen", maxlen, low=1, high=checks.MAX_INT)
    checks.integer("more", more, low=1, high=1_000_000)
    if policy is not None and policy not in TRIM_POLICIES:
        raise ValueError(f"policy must be one of {TRIM_POLICIES} or None, got {policy!r}")
    q = StreamQueue(r, f"{prefix}trim:{policy or 'default'}:{{jobs}}", "slow", maxlen=maxlen)
    q.setup()
    first = q.add({"job": "the one being worked on"})
    (held,) = q.consume("slow-worker", count=1)  # read; its handler is still running
    pipe = r.pipeline(transaction=False)
    for i in range(more):
        args = ("MAXLEN", "~", maxlen) if policy is None else (policy, "MAXLEN", "~", maxlen)
        pipe.execute_command("XADD", q.stream, *args, "*", "job", str(i))
    pipe.execute()
    stored = bool(r.xrange(q.stream, min=first, max=first))
    pending = first in _pending_ids(r, q.stream, q.group)
    handled: list[str] = []
    stats = Worker(
        q, "slow-worker", lambda m: handled.append(m.id), block_ms=5, exit_when_idle=True
    ).run()
    return {
        "policy": policy or "default (KEEPREF)",
        "added": more + 1,
        "XLEN": q.length(),
        "unacked entry still stored": stored,
        "still pending": pending,
        "handled after restart": handled.count(held.id),
        "acked unhandled (trimmed)": stats.trimmed,
    }


class ReliableList:
    """The reliable list queue of the Redis docs (LMOVE, "Pattern: Reliable queue"):
    producers LPUSH; a worker LMOVEs the oldest item into its own processing list, handles
    it, then LREMs it. A worker that dies leaves its item in its processing list, where no
    other worker looks: something that knows the worker is dead (a heartbeat, a supervisor)
    must move it back (``requeue``). There is no idle time and no delivery counter."""

    def __init__(self, r: Client, key: str) -> None:
        self.r = r
        self.key = checks.text("key", key)

    def processing(self, worker: str) -> str:
        return f"{self.key}:processing:{checks.text('worker', worker)}"

    def push_many(self, items: Iterable[str]) -> int:
        values = list(items)
        return int(self.r.lpush(self.key, *values)) if values else 0

    def take(self, worker: str) -> str | None:
        item: Any = self.r.lmove(self.key, self.processing(worker), "RIGHT", "LEFT")
        return None if item is None else checks.as_text(item)

    def done(self, worker: str, item: str) -> None:
        self.r.lrem(self.processing(worker), 1, item)

    def requeue(self, worker: str) -> int:
        """Move a dead worker's items back to be taken next; return how many."""
        moved = 0
        while self.r.lmove(self.processing(worker), self.key, "RIGHT", "RIGHT") is not None:
            moved += 1
        return moved


@dataclass
class _Tally:
    """What one queue's workers handled; worker "w1" dies on its ``crash_on``-th message."""

    crash_on: int | None
    handled: set[str] = field(default_factory=set)

    def handle(self, item: str, worker: str) -> None:
        if worker == "w1" and len(self.handled) + 1 == self.crash_on:
            raise Crash(worker)
        self.handled.add(item)


def _list_queue(
    r: Client,
    variant: str,
    key: str,
    items: list[str],
    tally: _Tally,
    worker_opts: Mapping[str, Any],
) -> tuple[Callable[[str], None], Callable[[], int]]:
    """Fill ``variant``'s queue with ``items``; return ``drain(worker)`` and ``held()`` (what
    worker w1 holds: popped but unhandled, in its processing list, or pending). The stream's
    ``Worker`` gets ``count=10, block_ms=5, exit_when_idle=True``, overridden by
    ``worker_opts`` (without ``min_idle_ms`` / ``claim_every_s``: the Worker's defaults)."""
    if variant == "list + LPOP":
        r.lpush(key, *items)

        def pop(worker: str) -> None:
            while (item := r.rpop(key)) is not None:
                tally.handle(checks.as_text(item), worker)

        return pop, lambda: len(items) - len(tally.handled) - int(r.llen(key))
    if variant == "list + LMOVE":
        lst = ReliableList(r, key)
        lst.push_many(items)

        def move(worker: str) -> None:
            while (item := lst.take(worker)) is not None:
                tally.handle(item, worker)
                lst.done(worker, item)

        return move, lambda: int(r.llen(lst.processing("w1")))
    q = StreamQueue(r, key, "g")
    q.setup()
    q.add_many({"n": i} for i in items)

    def drain(worker: str) -> None:
        opts = {"count": 10, "block_ms": 5, **worker_opts}
        Worker(
            q, worker, lambda m: tally.handle(m.data["n"], worker), exit_when_idle=True, **opts
        ).run()

    return drain, lambda: q.pending().consumers.get("w1", 0)


LIST_VARIANTS = ("list + LPOP", "list + LMOVE", "stream + Worker")


def list_vs_stream(
    r: Client,
    prefix: str,
    *,
    n_messages: int = 1_000,
    crash_on: int = 50,
    min_idle_ms: int = 20,
    repeats: int = 3,
    count: int = 1,
) -> list[dict[str, Any]]:
    """The same small workload on a list (LPOP), the LMOVE reliable list and a stream: one
    worker drains ``n_messages`` (no handler work: the queue's own cost), ``repeats`` times
    (interleaved across the three queues), msgs/s as the median; the stream's ``Worker``
    reads ``count`` messages per ``XREADGROUP`` (default 1, like for like with the lists'
    one item per ``LPOP`` / ``LMOVE``) and runs with its default ``min_idle_ms`` and
    ``claim_every_s``, as in production. Then,
    on a fresh queue of ``2 * crash_on`` messages, a worker dies on its ``crash_on``-th
    message and a second worker drains the rest (the stream's workers with ``min_idle_ms``
    and ``claim_every_s=0.02``, so the takeover happens within the run). Counts what the
    dead worker held and what was lost, without help and after a reaper
    (``ReliableList.requeue``) ran."""
    checks.text("prefix", prefix)
    checks.integer("n_messages", n_messages, low=1, high=1_000_000)
    checks.integer("crash_on", crash_on, low=1, high=100_000)
    checks.integer("min_idle_ms", min_idle_ms, low=0, high=checks.MAX_MS)
    checks.integer("repeats", repeats, low=1, high=100)
    checks.integer("count", count, low=1, high=100_000)
    speeds: dict[str, list[float]] = {variant: [] for variant in LIST_VARIANTS}
    for repeat in range(repeats):
        for variant in LIST_VARIANTS:
            tag = variant.split()[-1].lower()
            items = [str(i) for i in range(n_messages)]
            key = f"{prefix}speed{repeat}:{{{tag}}}"
            drain, _ = _list_queue(r, variant, key, items, _Tally(None), {"count": count})
            t0 = time.perf_counter()
            drain("w1")
            speeds[variant].append(n_messages / (time.perf_counter() - t0))
            r.delete(key)
    rows = []
    for variant in LIST_VARIANTS:
        tag = variant.split()[-1].lower()
        row: dict[str, Any] = {
            "queue": variant,
            "msgs/s (1 worker, no handler work, median)": round(statistics.median(speeds[variant])),
        }
        items = [str(i) for i in range(2 * crash_on)]
        tally = _Tally(crash_on)
        key = f"{prefix}crash:{{{tag}}}"
        opts = {"count": count, "min_idle_ms": min_idle_ms, "claim_every_s": 0.02}
        drain, held = _list_queue(r, variant, key, items, tally, opts)
        with suppress(Crash):
            drain("w1")
        row["held by the dead worker"] = held()
        drain("w2")
        row["lost, no help"] = len(items) - len(tally.handled)
        if variant == "list + LMOVE":
            ReliableList(r, key).requeue("w1")  # a reaper that knows w1 is dead
            drain("w2")
        row["lost after a reaper"] = len(items) - len(tally.handled)  # LPOP: nothing to reap
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    """``python -m labkit.experiments.streams URL STREAM GROUP CONSUMER SEEN_KEY [options]``:
    one worker process running ``recording_handler``; prints its stats as JSON when it
    stops (SIGTERM/SIGINT finish the current message first)."""
    parser = argparse.ArgumentParser(
        prog="python -m labkit.experiments.streams", description=main.__doc__
    )
    for name in ("url", "stream", "group", "consumer", "seen_key"):
        parser.add_argument(name)
    parser.add_argument("--fail-field", default=None)
    parser.add_argument("--owner-key", default=None)
    parser.add_argument("--work-ms", type=float, default=0.0)
    parser.add_argument("--max-deliveries", type=int, default=DEFAULT_MAX_DELIVERIES)
    parser.add_argument("--count", type=int, default=10)
    parser.add_argument("--block-ms", type=int, default=100)
    parser.add_argument("--min-idle-ms", type=int, default=30_000)
    parser.add_argument("--claim-every-s", type=float, default=1.0)
    parser.add_argument("--exit-when-idle", action="store_true")
    args = parser.parse_args(argv)
    stats = run_worker(
        args.url,
        args.stream,
        args.group,
        args.consumer,
        recording_handler,
        handler_kwargs={
            "seen_key": args.seen_key,
            "fail_field": args.fail_field,
            "work_ms": args.work_ms,
            "owner_key": args.owner_key,
            "consumer": None if args.owner_key is None else args.consumer,
        },
        queue_kwargs={"max_deliveries": args.max_deliveries},
        worker_kwargs={
            "count": args.count,
            "block_ms": args.block_ms,
            "min_idle_ms": args.min_idle_ms,
            "claim_every_s": args.claim_every_s,
            "exit_when_idle": args.exit_when_idle,
        },
    )
    print(json.dumps(stats), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
