"""Benchmarks: how close each labkit operation comes to the round-trip floor, how it compares
with peer libraries, and how long each notebook takes. Run by hand: ``make bench``.

Every figure is a ratio measured side by side in the same run, on the same private server,
so the machine's speed cancels out. Each measurement is repeated; the tables give the
minimum, median and maximum over repeats. Results go to ``benchmarks/RESULTS.md`` and
``benchmarks/results.png``.

    python -m benchmarks                 # everything (a few minutes)
    python -m benchmarks floor peers     # selected sections
    python -m benchmarks locks           # only the lock peers; replaces that table in RESULTS.md
    python -m benchmarks ratelimit-server  # only the rate-limit peers; replaces their section
    python -m benchmarks sliding-log     # the sliding log's worst case; replaces its section
    python -m benchmarks notebooks       # every notebook timed; replaces that table
"""

from __future__ import annotations

import functools
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import numpy as np
import pandas as pd

import labkit
from labkit.measure import counting_client, time_calls
from labkit.plots import chart, color, finish

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
REPEATS = 5
CALLS = 1000


def spread(values: list[float]) -> dict[str, float]:
    return {"min": float(np.min(values)), "median": float(np.median(values)), "max": float(np.max(values))}


def median_latency(fn: Callable[[], object], calls: int = CALLS) -> float:
    return float(np.median(time_calls(fn, calls, warmup=50)))


# ---------------------------------------------------------------------------------------
# 1. The round-trip floor
# ---------------------------------------------------------------------------------------

def floor_operations(r: Any, ns: labkit.Namespace) -> dict[str, Callable[[], object]]:
    """One callable per labkit operation, each set up so it does its steady-state work."""
    from labkit.analytics import Analytics
    from labkit.cache import CacheAside, PageCache
    from labkit.flags import FeatureFlags
    from labkit.leaderboard import Leaderboard
    from labkit.locks import Lock
    from labkit.ratelimit import ALGORITHMS, make
    from labkit.sessions import SessionStore
    from labkit.streams import StreamQueue

    ops: dict[str, Callable[[], object]] = {"PING": r.ping}

    pages = PageCache(r, prefix=ns.prefix_for("page"))
    pages.set_page("/home", {"title": "home", "items": list(range(20))})
    ops["cache: page hit"] = lambda: pages.get_page("/home")
    aside = CacheAside(r, lambda key: {"id": key}, ttl=3600, prefix=ns.prefix_for("aside"))
    aside.get("42")
    ops["cache: cache-aside hit"] = lambda: aside.get("42")

    sessions = SessionStore(r, prefix=ns.key("session") + ":")
    sid = sessions.create_session("alice", plan="pro")
    ops["session: get"] = lambda: sessions.get_session(sid)
    ops["session: update"] = lambda: sessions.update_session(sid, page="/x")

    for algorithm in ALGORITHMS:
        limiter = make(algorithm, r, 100_000, 60.0, prefix=ns.key("rl", algorithm) + ":")
        ops[f"ratelimit: {algorithm}"] = lambda limiter=limiter: limiter.hit("client")

    lock = Lock(r, "bench", ttl=5.0, prefix=ns.key("lock") + ":")

    def acquire_release() -> None:
        lock.acquire(blocking=False)
        lock.release()

    ops["lock: acquire + release"] = acquire_release

    board = Leaderboard(r, "season", prefix=ns.key("lb") + ":")
    board.add_many({f"p{i}": float(i % 5000) for i in range(100_000)})
    ops["leaderboard: rank (100k)"] = lambda: board.get_rank("p77777")

    flags = FeatureFlags(r, prefix=ns.key("flag") + ":")
    flags.set_rollout("new-ui", 30)
    ops["flags: is_enabled"] = lambda: flags.is_enabled("new-ui", "user-17")

    queue = StreamQueue(r, ns.key("orders"), "billing", maxlen=10_000)
    queue.setup()
    ops["stream: add"] = lambda: queue.add({"order": 1, "amount": 9.5})

    def consume_ack() -> None:
        messages = queue.consume("w1", count=1)
        if messages:
            queue.ack(messages[0].id)

    ops["stream: consume + ack"] = consume_ack

    analytics = Analytics(r, prefix=ns.key("an") + ":")
    ops["analytics: track_event"] = lambda: analytics.track_event("view", 17, ts=1_767_225_600)
    return ops


def round_trips(r: Any, ns: labkit.Namespace) -> dict[str, int]:
    """Round trips per operation, counted exactly on the client."""
    counted, trips = counting_client(r)
    ops = floor_operations(counted, labkit.namespace(r, ns.name + "-rt"))
    result = {}
    for name, op in ops.items():
        op()  # first call may load scripts (EVALSHA miss) or create structures
        trips.reset()
        op()
        result[name] = trips.count
    labkit.namespace(r, ns.name + "-rt").cleanup()
    return result


def server_time(r: Any, op: Callable[[], object], calls: int = CALLS) -> float:
    """Microseconds the server spends per operation: its top-level commands (private server only).

    Summed from SLOWLOG with a threshold of 0 µs. Redis 7 lists the commands a script runs in
    INFO commandstats, and in SLOWLOG, besides the EVALSHA whose time already includes them,
    so a sum over every cmdstat counted a script's work twice. Redis logs those inner
    commands under the script's own client (address ``?:0``), which is left out here. Valkey
    logs them under the caller's address: there an operation that ran a script is counted by
    its script commands alone (a command it also sent itself would be missed). MULTI/EXEC
    needs nothing: EXEC is not logged, the commands it runs are, once each.
    """
    labkit.require_private(r, "CONFIG SET slowlog-*")
    saved = r.config_get("slowlog-*")
    room = max(1024, calls * 64)
    r.config_set("slowlog-max-len", room)
    r.config_set("slowlog-log-slower-than", 0)
    try:
        r.slowlog_reset()
        for _ in range(calls):
            op()
        entries = r.slowlog_get(room)
    finally:
        r.config_set("slowlog-log-slower-than", saved["slowlog-log-slower-than"])
        r.config_set("slowlog-max-len", saved["slowlog-max-len"])
    if len(entries) >= room:
        raise RuntimeError(f"SLOWLOG filled up ({room} entries): raise its length")

    def text(value: object) -> str:
        return value.decode() if isinstance(value, bytes) else str(value)

    logged = [(text(e["command"]).split(" ", 1)[0].lower(), text(e.get("client_address", "")),
               e["duration"]) for e in entries]
    logged = [entry for entry in logged if entry[0] not in ("slowlog", "config")]
    scripts = ("eval", "evalsha", "eval_ro", "evalsha_ro", "fcall", "fcall_ro")
    if any(name in scripts for name, _, _ in logged) and all(addr != "?:0" for _, addr, _ in logged):
        top = [us for name, _, us in logged if name in scripts]  # Valkey: see above
    else:
        top = [us for _, addr, us in logged if addr != "?:0"]
    return sum(top) / calls


def bench_floor(r: Any, ns: labkit.Namespace) -> pd.DataFrame:
    ops = floor_operations(r, ns)
    ratios: dict[str, list[float]] = {name: [] for name in ops}
    latency: dict[str, list[float]] = {name: [] for name in ops}
    for _ in range(REPEATS):
        ping = median_latency(r.ping)
        for name, op in ops.items():
            seconds = median_latency(op)
            latency[name].append(seconds * 1e6)
            ratios[name].append(seconds / ping)
    trips = round_trips(r, ns)
    rows = []
    for name, op in ops.items():
        rows.append({
            "operation": name,
            "round trips": trips[name],
            "median µs": round(float(np.median(latency[name])), 1),
            "server µs": round(server_time(r, op), 1),
            **{f"x PING {k}": round(v, 2) for k, v in spread(ratios[name]).items()},
        })
    return pd.DataFrame(rows).set_index("operation")


# ---------------------------------------------------------------------------------------
# 2. Peers
# ---------------------------------------------------------------------------------------

RL_LIMITS = (10, 1_000, 100_000)
FLOOR = "floor, no decision: "
SCRIPT_COMMANDS = ("cmdstat_evalsha", "cmdstat_eval", "cmdstat_evalsha_ro", "cmdstat_eval_ro")


def _ratelimit_variants(r: Any, ns: labkit.Namespace, url: str, limit: int
                        ) -> dict[str, Callable[[str, int], object]]:
    """Each peer's ``hit(key, cost)`` at "``limit`` per hour", labkit with the server clock
    (and, to show what the clock costs, with the caller's clock as ``now=``, as limits does)."""
    from limits import RateLimitItemPerHour
    from limits.storage import RedisStorage
    from limits.strategies import FixedWindowRateLimiter, MovingWindowRateLimiter

    from labkit.ratelimit import FixedWindow, SlidingLog

    storage = RedisStorage(url, key_prefix=ns.key("limits", limit))
    moving, fixed = MovingWindowRateLimiter(storage), FixedWindowRateLimiter(storage)
    item = RateLimitItemPerHour(limit)
    log = SlidingLog(r, limit, 3600, prefix=ns.prefix_for(f"sl-{limit}"))
    window = FixedWindow(r, limit, 3600, prefix=ns.prefix_for(f"fw-{limit}"))
    # the least a decision on the server clock can cost: TIME and the one read a denial
    # needs, nothing decided or returned (run on the denied path only)
    time_and_zrange = r.register_script(
        "local t = redis.call('TIME') local m = redis.call('ZRANGE', KEYS[1], -1, -1) return 0")
    time_and_get = r.register_script(
        "local t = redis.call('TIME') local m = redis.call('GET', KEYS[1]) return 0")
    return {
        "labkit SlidingLog": lambda key, cost: log.hit(key, cost),
        "limits moving window": lambda key, cost: moving.hit(item, key, cost=cost),
        "labkit FixedWindow": lambda key, cost: window.hit(key, cost),
        "limits fixed window": lambda key, cost: fixed.hit(item, key, cost=cost),
        "labkit SlidingLog, now=time.time()": lambda key, cost: log.hit(key, cost, now=time.time()),
        "labkit FixedWindow, now=time.time()": lambda key, cost: window.hit(key, cost, now=time.time()),
        FLOOR + "TIME + ZRANGE -1 -1": lambda key, cost: (
            log.hit(key, cost) if cost > 1 else time_and_zrange(keys=log.keys(key))),
        FLOOR + "TIME + GET": lambda key, cost: (
            window.hit(key, cost) if cost > 1 else time_and_get(keys=window.keys(key))),
    }


def _script_usec(r: Any) -> tuple[float, int, dict[str, int]]:
    """(µs in script commands, script calls, inner commands by name) since CONFIG RESETSTAT."""
    stats = r.info("commandstats")
    usec = sum(v["usec"] for k, v in stats.items() if k in SCRIPT_COMMANDS)
    calls = sum(v["calls"] for k, v in stats.items() if k in SCRIPT_COMMANDS)
    failed = sum(v.get("failed_calls", 0) + v.get("rejected_calls", 0) for v in stats.values())
    if failed:
        raise RuntimeError(f"{failed} commands failed during a rate-limit measurement: {stats}")
    inner = {k.removeprefix("cmdstat_").upper(): v["calls"] for k, v in stats.items()
             if k not in SCRIPT_COMMANDS and k not in ("cmdstat_config|resetstat", "cmdstat_info")}
    return usec, calls, inner


def bench_ratelimit_peers(r: Any, ns: labkit.Namespace, url: str, repeats: int = 7
                          ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Server µs and latency per decision, labkit vs the `limits` library, on one private server.

    Two paths per limit. "denied": the window already holds ``limit`` (filled by one hit of
    cost ``limit``), so every call is refused. "admitted": windows filled to ``limit - a``
    and then ``a`` admitted hits each (``a = min(limit, 200)``, over 200 / a keys).
    Server time: the script commands' (EVALSHA) microseconds per call in INFO commandstats
    after CONFIG RESETSTAT, which include the commands the script runs; nothing else is
    counted. Every repeat runs every variant once, in a rotating order, so drift on the
    machine hits every variant alike. Latency: the median wall time of the same calls, one
    round trip each, with PING's median in the same repeat for scale.
    """
    labkit.require_private(r, "CONFIG RESETSTAT")
    server_rows, latency_rows = [], []
    for limit in RL_LIMITS:
        variants = _ratelimit_variants(r, ns, url, limit)
        names = list(variants)
        per_key = min(limit, 200)
        keys = 200 // per_key
        server: dict[tuple[str, str], list[float]] = {}
        latency: dict[tuple[str, str], list[float]] = {}
        ratio: dict[tuple[str, str], list[float]] = {}
        inner: dict[tuple[str, str], dict[str, float]] = {}
        for rep in range(repeats):
            ping = float(np.median(time_calls(r.ping, 300, warmup=20))) * 1e6
            latency.setdefault(("PING", ""), []).append(ping)
            for name in names[rep % len(names):] + names[:rep % len(names)]:
                hit = variants[name]
                for path in ("denied", "admitted"):
                    if path == "admitted" and name.startswith(FLOOR):
                        continue
                    tag = f"{rep}-{name.replace(' ', '-')}"
                    if path == "denied":  # a full window; one refused call loads the script
                        targets, calls = [f"full-{tag}"], 1000
                        hit(targets[0], limit)
                        hit(targets[0], 1)
                    else:  # windows with room for `per_key` more
                        targets, calls = [f"open-{tag}-{i}" for i in range(keys)], per_key
                        for key in targets:
                            if limit > per_key:
                                hit(key, limit - per_key)
                    samples = []
                    clock = time.perf_counter
                    r.config_resetstat()
                    for key in targets:
                        for _ in range(calls):
                            t0 = clock()
                            hit(key, 1)
                            samples.append(clock() - t0)
                    usec, n, commands = _script_usec(r)
                    if n != len(samples):
                        raise RuntimeError(f"{name}: {len(samples)} decisions, {n} script calls")
                    server.setdefault((name, path), []).append(usec / n)
                    latency.setdefault((name, path), []).append(float(np.median(samples)) * 1e6)
                    ratio.setdefault((name, path), []).append(latency[(name, path)][-1] / ping)
                    inner[(name, path)] = {c: round(k / n, 2) for c, k in commands.items()}
            ns.cleanup()
        for (name, path), values in server.items():
            row = {"limit": limit, "path": path, "variant": name,
                   **{f"server µs {k}": round(v, 2) for k, v in spread(values).items()},
                   "commands a script ran, per decision": ", ".join(
                       f"{c}" if k == 1 else f"{c} x{k:g}" for c, k in sorted(inner[(name, path)].items())
                   ) or "-"}
            server_rows.append(row)
        pings = latency.pop(("PING", ""))
        latency_rows.append({"limit": limit, "path": "", "variant": "PING (same repeats)",
                             **{f"µs {k}": round(v, 1) for k, v in spread(pings).items()},
                             **{f"x PING {k}": 1.0 for k in ("min", "median", "max")}})
        for (name, path), values in latency.items():
            latency_rows.append({"limit": limit, "path": path, "variant": name,
                                 **{f"µs {k}": round(v, 1) for k, v in spread(values).items()},
                                 **{f"x PING {k}": round(v, 2) for k, v in spread(ratio[(name, path)]).items()}})
    return pd.DataFrame(server_rows), pd.DataFrame(latency_rows)


def paired_with_ping(r: Any, ns: labkit.Namespace, url: str, limit: int = 100_000,
                     pairs: int = 2000) -> dict[str, float]:
    """A denied limits moving-window hit and a PING, alternating call by call on one machine
    state: their median latencies, and how often the hit beat the PING just before it."""
    hit = _ratelimit_variants(r, ns, url, limit)["limits moving window"]
    hit("paired", limit)
    hit("paired", 1)
    clock = time.perf_counter
    ping_us, hit_us = np.empty(pairs), np.empty(pairs)
    r.config_resetstat()  # also zeroes total_connections_received
    connections = r.info("stats")["total_connections_received"]
    for i in range(pairs):
        t0 = clock()
        r.ping()
        t1 = clock()
        hit("paired", 1)
        t2 = clock()
        ping_us[i], hit_us[i] = (t1 - t0) * 1e6, (t2 - t1) * 1e6
    usec, calls, inner = _script_usec(r)
    connected = r.info("stats")["total_connections_received"] - connections
    ns.cleanup()
    return {"connected": connected, "ping": float(np.median(ping_us)), "hit": float(np.median(hit_us)),
            "faster": float(np.mean(hit_us < ping_us)), "server": usec / calls,
            "lindex": inner.get("LINDEX", 0) / calls, "calls": calls, "pairs": pairs}


RL_TITLE = "Rate limiting: server time and latency per decision"


def ratelimit_section(r: Any, ns: labkit.Namespace, url: str) -> str:
    """The rate-limit peers section: the server-time table, a verdict rendered from it, the
    latency table."""
    server, latency = bench_ratelimit_peers(r, ns, url)
    median = server.set_index(["limit", "path", "variant"])["server µs median"]
    lines = []
    for path in ("denied", "admitted"):
        for ours, theirs in (("labkit SlidingLog", "limits moving window"),
                             ("labkit FixedWindow", "limits fixed window")):
            pairs = [(median[(limit, path, ours)], median[(limit, path, theirs)]) for limit in RL_LIMITS]
            verdict = "at or below" if all(a <= b for a, b in pairs) else "NOT at or below"
            detail = ", ".join(f"{a:.2f} vs {b:.2f}" for a, b in pairs)
            lines.append(f"- {path}: {ours} is {verdict} {theirs} at every limit "
                         f"(median server µs at {' / '.join(f'{x:,}' for x in RL_LIMITS)}: {detail})")
    p = paired_with_ping(r, ns, url)
    pairing = (
        f"Alternating a PING and a denied limits moving-window hit at 100,000 call by call "
        f"({p['pairs']:,} pairs): median PING {p['ping']:.1f} µs, median hit {p['hit']:.1f} µs; "
        f"the hit was faster than the PING just before it in {p['faster']:.0%} of pairs. Every "
        f"hit reached the server: {p['calls']:,} EVALSHA calls, {p['lindex']:g} LINDEX per "
        f"call, {p['server']:.1f} server µs per call, no failed calls, "
        f"{p['connected']} new connections."
    )
    return "\n".join([
        "Server µs per decision: EVALSHA microseconds per call from INFO commandstats after "
        "CONFIG RESETSTAT (they include the commands the script runs), min / median / max over "
        "repeats that interleave the variants. The last column lists the commands the script "
        "ran per decision (from the same commandstats). Medians, labkit vs limits:",
        "",
        *lines,
        "",
        server.to_markdown(index=False),
        "",
        "Latency per decision: µs, the median of the same calls, and that median over the "
        "median PING of the same repeat (x PING):",
        "",
        latency.to_markdown(index=False),
        "",
        pairing,
    ])


def bench_sliding_log_worst_case(r: Any, ns: labkit.Namespace) -> pd.DataFrame:
    """Server time of the first decision after a full window of ``limit`` entries expired.

    The control is what the log did before decisions were bounded: remove every expired
    entry in the decision (ZREMRANGEBYSCORE over the same full log), timed on a copy.
    The steady column is the mean server time of the 1,000 decisions that follow.
    """
    from labkit.ratelimit import SlidingLog

    rows = []
    for limit in (1_000, 10_000, 100_000):
        limiter = SlidingLog(r, limit, 10.0, prefix=ns.prefix_for(f"worst-{limit}"))
        limiter.hit("u", cost=limit, now=100.0)  # a full window, then it expires
        log = limiter.keys("u")[0]
        r.copy(log, log + ":copy")
        first = server_time(r, lambda limiter=limiter: limiter.hit("u", now=200.0), calls=1)
        steady = server_time(r, lambda limiter=limiter: limiter.hit("u", now=200.0), calls=1_000)
        unbounded = server_time(r, lambda log=log: r.zremrangebyscore(log + ":copy", "-inf", 110_000_000), calls=1)
        rows.append({"limit": limit, "first decision after expiry, server µs": round(first, 1),
                     "steady decision, server µs": round(steady, 1),
                     "control: removing every expired entry at once, server µs": round(unbounded, 1)})
        ns.cleanup()
    return pd.DataFrame(rows).set_index("limit")


def replace_section(title: str, table: str, command: str) -> None:
    """Replace (or append) one "### <title>" section of RESULTS.md, leaving the rest as it is."""
    path = HERE / "RESULTS.md"
    text = path.read_text()
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    section = f"### {title}\n\nMeasured {stamp} on {machine()} (`python -m benchmarks {command}`).\n\n{table}\n"
    head = f"### {title}\n"
    if head in text:
        start = text.index(head)
        end = text.find("\n#", start + 1)
        text = text[:start] + section + (text[end:] if end != -1 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text)
    print(table)


def bench_lock_peers(r: Any, ns: labkit.Namespace, url: str) -> pd.DataFrame:
    """Uncontended cost, contended throughput and handoff latency, labkit vs two peers.

    Each thread gets its own lock object for the same lock name (an object's token, or
    python-redis-lock's id, must not be shared between holders).
    """
    import redis
    import redis_lock

    from labkit.locks import Lock

    peer_client = redis.Redis.from_url(url)
    factories: dict[str, Callable[[], Any]] = {
        f"labkit {strategy}": functools.partial(
            Lock, r, f"peer-{strategy}", ttl=5.0, strategy=strategy, prefix=ns.key("lock") + ":"
        )
        for strategy in ("spin", "backoff", "notify")
    }
    factories["redis-py Lock"] = lambda: redis.lock.Lock(r, ns.key("redis-py-lock"), timeout=5.0, sleep=0.1)
    factories["python-redis-lock"] = lambda: redis_lock.Lock(peer_client, ns.key("prl"), expire=5)

    rows = []
    for name, make_lock in factories.items():
        lock = make_lock()

        def pair(lock: Any = lock) -> None:
            lock.acquire()
            lock.release()

        uncontended = [median_latency(pair, 500) * 1e6 for _ in range(REPEATS)]
        throughput = [contended_throughput(make_lock, workers=8, hold=0.002) for _ in range(3)]
        handoffs = handoff_latencies(make_lock, rounds=30)
        rows.append({
            "lock": name,
            "uncontended acquire+release µs (median)": round(float(np.median(uncontended)), 1),
            "handoff ms p50": round(float(np.median(handoffs)) * 1e3, 2),
            "handoff ms max": round(float(np.max(handoffs)) * 1e3, 2),
            "8 workers, 2 ms sections: sections/s min": round(min(throughput), 1),
            "median": round(float(np.median(throughput)), 1),
            "max": round(max(throughput), 1),
        })
    return pd.DataFrame(rows).set_index("lock")


def contended_throughput(make_lock: Callable[[], Any], *, workers: int, hold: float,
                         seconds: float = 2.0) -> float:
    """Critical sections per second with ``workers`` threads, each with its own lock object."""
    done = [0] * workers
    stop_at = time.monotonic() + seconds

    def work(i: int) -> None:
        lock = make_lock()
        while time.monotonic() < stop_at:
            lock.acquire()
            time.sleep(hold)
            lock.release()
            done[i] += 1

    threads = [threading.Thread(target=work, args=(i,)) for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(done) / seconds


def handoff_latencies(make_lock: Callable[[], Any], rounds: int) -> list[float]:
    """Seconds from a holder's release to a blocked waiter's acquire, ``rounds`` times."""
    holder, waiter = make_lock(), make_lock()
    result = []
    for _ in range(rounds):
        holder.acquire()
        acquired_at: list[float] = []

        def wait(acquired_at: list[float] = acquired_at) -> None:
            waiter.acquire()
            acquired_at.append(time.perf_counter())
            waiter.release()

        thread = threading.Thread(target=wait)
        thread.start()
        time.sleep(0.02)  # let the waiter block
        released_at = time.perf_counter()
        holder.release()
        thread.join()
        result.append(acquired_at[0] - released_at)
    return result


def bench_cache_overhead(r: Any, ns: labkit.Namespace) -> pd.DataFrame:
    from labkit.cache import PageCache

    pages = PageCache(r, prefix=ns.prefix_for("overhead"))
    value = {"title": "home", "items": list(range(20))}
    pages.set_page("/home", value)
    raw_key = ns.key("raw")
    r.set(raw_key, json.dumps(value))
    labkit_hit = [median_latency(lambda: pages.get_page("/home")) * 1e6 for _ in range(REPEATS)]
    raw_hit = [median_latency(lambda: json.loads(r.get(raw_key))) * 1e6 for _ in range(REPEATS)]
    return pd.DataFrame([
        {"variant": "raw GET + json.loads", **{f"µs {k}": round(v, 1) for k, v in spread(raw_hit).items()}},
        {"variant": "labkit PageCache.get_page", **{f"µs {k}": round(v, 1) for k, v in spread(labkit_hit).items()}},
    ]).set_index("variant")


# ---------------------------------------------------------------------------------------
# 3. Throughput ceiling
# ---------------------------------------------------------------------------------------

def bench_ceiling(r: Any, ns: labkit.Namespace, server: labkit.RedisServer) -> pd.DataFrame:
    from labkit.analytics import Analytics
    from labkit.streams import StreamQueue

    n = 50_000
    queue = StreamQueue(r, ns.key("ceiling"), "g")
    queue.setup()
    t0 = time.perf_counter()
    for start in range(0, n, 100):
        queue.add_many({"i": i} for i in range(start, start + 100))
    stream_rate = n / (time.perf_counter() - t0)

    analytics = Analytics(r, prefix=ns.key("ceiling-an") + ":")
    events = [{"event": "view", "user_id": i % 5000, "ts": 1_767_225_600 + i} for i in range(n)]
    t0 = time.perf_counter()
    analytics.track_events(events, batch=100)
    track_rate = n / (time.perf_counter() - t0)

    rows = [
        {"path": "labkit StreamQueue.add_many (batches of 100)", "ops/s": round(stream_rate)},
        {"path": "labkit Analytics.track_events (batches of 100)", "ops/s": round(track_rate)},
    ]
    tool = shutil.which("redis-benchmark") or shutil.which("valkey-benchmark")
    if tool:
        for label, command in (("XADD", ["XADD", "bench:stream", "*", "i", "1"]),
                               ("HINCRBY", ["HINCRBY", "bench:h", "view", "1"])):
            out = subprocess.run(
                [tool, "-h", server.host, "-p", str(server.port), "-n", str(n), "-P", "100",
                 "-c", "1", "-q", *command],
                capture_output=True, text=True, timeout=120,
            ).stdout
            rate = _requests_per_second(out)
            rows.append({"path": f"redis-benchmark {label} -P 100 -c 1", "ops/s": round(rate)})
    else:
        rows.append({"path": "redis-benchmark", "ops/s": "not on PATH"})
    return pd.DataFrame(rows).set_index("path")


def _requests_per_second(output: str) -> float:
    """The rate from ``redis-benchmark -q`` output ("<command>: 123456.79 requests per second")."""
    for line in reversed(output.replace("\r", "\n").splitlines()):
        if "requests per second" in line:
            return float(line.rsplit(": ", 1)[1].split()[0].replace(",", ""))
    return float("nan")


# ---------------------------------------------------------------------------------------
# 4. Notebook wall time
# ---------------------------------------------------------------------------------------

NOTEBOOKS_TITLE = "Notebook wall time (nbconvert with its kernel start, private server each)"


def bench_notebooks() -> pd.DataFrame:
    rows = []
    jupyter = Path(sys.executable).with_name("jupyter")
    for notebook in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        t0 = time.perf_counter()
        done = subprocess.run(
            [str(jupyter), "nbconvert", "--to", "notebook", "--execute", "--stdout",
             "--ExecutePreprocessor.timeout=300", str(notebook)],
            capture_output=True, text=True, env={k: v for k, v in os.environ.items() if k != "REDIS_URL"},
        )
        rows.append({"notebook": notebook.name, "seconds": round(time.perf_counter() - t0, 1),
                     "ok": done.returncode == 0})
    return pd.DataFrame(rows).set_index("notebook")


# ---------------------------------------------------------------------------------------

@contextmanager
def private_server() -> Iterator[tuple[Any, labkit.Namespace, labkit.RedisServer]]:
    with labkit.RedisServer() as server:
        r = server.client()
        yield r, labkit.namespace(r, "bench"), server


def machine() -> str:
    with labkit.RedisServer() as server:
        info = labkit.server_info(server.client())
    cpu = platform.processor() or platform.machine()
    return (f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, "
            f"{info.product} {info.version} ({info.backend}), {platform.system()} {platform.release()}")


def replace_locks_table() -> None:
    """Re-measure the lock peers and replace only the "### Locks" table of RESULTS.md."""
    with private_server() as (r, ns, server):
        table = bench_lock_peers(r, ns, server.url).to_markdown()
    path = HERE / "RESULTS.md"
    text = path.read_text()
    start = text.index("### Locks\n")
    end = text.index("\n###", start + 1)
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    path.write_text(f"{text[:start]}### Locks\n\nRe-measured {stamp} (`python -m benchmarks locks`).\n\n{table}\n{text[end:]}")
    print(table)


def main(sections: list[str]) -> None:
    if sections == ["locks"]:
        replace_locks_table()
        return
    if sections == ["ratelimit-server"]:
        with private_server() as (r, ns, server):
            body = ratelimit_section(r, ns, server.url)
        replace_section(RL_TITLE, body, "ratelimit-server")
        return
    if sections == ["notebooks"]:
        replace_section(NOTEBOOKS_TITLE, bench_notebooks().to_markdown(), "notebooks")
        return
    if sections == ["sliding-log"]:
        with private_server() as (r, ns, _server):
            table = bench_sliding_log_worst_case(r, ns).to_markdown()
        replace_section("Rate limiting: the sliding log's worst-case decision", table, "sliding-log")
        return
    wanted = set(sections) or {"floor", "peers", "ceiling", "notebooks"}
    report = [f"# Benchmark results\n\nMachine: {machine()}. Run: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.\n"
              f"Each figure: min / median / max over {REPEATS} repeats (median of {CALLS} calls each) "
              "unless stated. Ratios are against a PING from the same client in the same repeat.\n"]
    floor = None
    with private_server() as (r, ns, server):
        url = server.url
        if "floor" in wanted:
            floor = bench_floor(r, ns)
            report += ["## 1. The round-trip floor\n", "Target: every single-key operation <= 1.5x PING.\n",
                       floor.to_markdown(), ""]
            ns.cleanup()
        if "peers" in wanted:
            report += ["## 2. Peers\n", f"### {RL_TITLE}\n", ratelimit_section(r, ns, url), ""]
            ns.cleanup()
            report += ["### Locks\n", bench_lock_peers(r, ns, url).to_markdown(), ""]
            ns.cleanup()
            report += ["### Caching: the abstraction's overhead\n", bench_cache_overhead(r, ns).to_markdown(), ""]
            ns.cleanup()
        if "ceiling" in wanted:
            report += ["## 3. Throughput ceiling (one Python client vs redis-benchmark, same depth)\n",
                       bench_ceiling(r, ns, server).to_markdown(), ""]
            ns.cleanup()
    if "notebooks" in wanted:
        report += ["## 4. Notebooks\n", f"### {NOTEBOOKS_TITLE}\n", bench_notebooks().to_markdown(), ""]
    (HERE / "RESULTS.md").write_text("\n".join(report) + "\n")
    if floor is not None:
        fig, ax = chart("labkit operations vs the round-trip floor", "median latency / median PING latency",
                        "operation", figsize=(8, 6))
        ax.barh(floor.index, floor["x PING median"], color=color("labkit"))
        ax.axvline(1.5, color=color("naive"), linestyle="--", label="target 1.5x PING")
        ax.invert_yaxis()
        finish(ax)
        fig.savefig(HERE / "results.png", dpi=120)
    print("\n".join(report))


if __name__ == "__main__":
    main(sys.argv[1:])
