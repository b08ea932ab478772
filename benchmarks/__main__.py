"""Benchmarks: how close each labkit operation comes to the round-trip floor, how it compares
with peer libraries, and how long each notebook takes. Run by hand: ``make bench``.

Every figure is a ratio measured side by side in the same run, on the same private server,
so the machine's speed cancels out. Each measurement is repeated; the tables give the
minimum, median and maximum over repeats. Results go to ``benchmarks/RESULTS.md`` and
``benchmarks/results.png``.

    python -m benchmarks                 # everything (a few minutes)
    python -m benchmarks floor peers     # selected sections
    python -m benchmarks locks           # only the lock peers; replaces that table in RESULTS.md
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
    """Microseconds the server spends per operation (INFO commandstats; private server only)."""
    labkit.require_private(r, "CONFIG RESETSTAT")
    r.config_resetstat()
    for _ in range(calls):
        op()
    stats = r.info("commandstats")
    busy = sum(v["usec"] for k, v in stats.items() if k not in ("cmdstat_info", "cmdstat_config|resetstat", "cmdstat_config"))
    return busy / calls


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

def bench_ratelimit_peers(r: Any, ns: labkit.Namespace, url: str) -> pd.DataFrame:
    """Per-decision latency at a full window, labkit vs the `limits` library."""
    from limits import RateLimitItemPerHour
    from limits.storage import RedisStorage
    from limits.strategies import FixedWindowRateLimiter, MovingWindowRateLimiter

    from labkit.ratelimit import FixedWindow, SlidingLog

    storage = RedisStorage(url, key_prefix=ns.key("limits"))
    moving, fixed = MovingWindowRateLimiter(storage), FixedWindowRateLimiter(storage)
    rows = []
    for limit in (10, 1_000, 100_000):
        item = RateLimitItemPerHour(limit)
        variants: dict[str, Callable[[str], object]] = {
            "labkit SlidingLog": SlidingLog(r, limit, 3600, prefix=ns.key("sl", limit) + ":").hit,
            "limits moving-window": functools.partial(moving.hit, item),
            "labkit FixedWindow": FixedWindow(r, limit, 3600, prefix=ns.key("fw", limit) + ":").hit,
            "limits fixed-window": functools.partial(fixed.hit, item),
        }
        for name, hit in variants.items():
            fill = f"{name.replace(' ', '-')}-{limit}"  # limits strategies share key names
            for _ in range(limit):  # fill the window, so the log variants hold `limit` entries
                hit(fill)
            samples = [median_latency(lambda hit=hit, fill=fill: hit(fill), 300) * 1e6 for _ in range(REPEATS)]
            rows.append({"limit": limit, "variant": name, **{f"µs {k}": round(v, 1) for k, v in spread(samples).items()}})
    return pd.DataFrame(rows)


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
            report += ["## 2. Peers\n", "### Rate limiting: per-decision latency with a full window\n",
                       bench_ratelimit_peers(r, ns, url).to_markdown(index=False), ""]
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
        report += ["## 4. Notebook wall time (nbconvert, private server each)\n", bench_notebooks().to_markdown(), ""]
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
