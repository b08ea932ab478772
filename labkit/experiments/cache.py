"""Experiments for notebook 01 (caching): trace replay, exact LRU, the TTL-cache model, and
stampede measurement.

- ``replay(streams, value, times=...)``: a key trace replayed against real servers, in real
  time (so Redis's own expiry and eviction decide every hit) or flat out;
- ``lru_hits(trace, capacity)``: exact LRU simulated in Python, the yardstick for Redis's
  sampled LRU;
- ``ttl_hit_ratio(weights, rate, ttl)``: the textbook hit ratio of a TTL cache under
  Poisson requests;
- ``hammer(call, n_threads, duration)`` and ``recompute_bursts(starts, window)``: drive a
  ``labkit.cache.CacheAside`` from many threads and count the loads each expiry caused.
"""

from __future__ import annotations

import math
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import redis

from labkit import checks
from labkit.client import Client


@dataclass(frozen=True)
class Stream:
    """One trace to replay: ``keys[i]`` is requested at ``times[i]`` on client ``r``.

    Each request is ``SET key value NX GET PX ttl_ms``: one command that returns the cached
    value (a hit) or stores ``value`` (a miss, then the entry lives ``ttl_ms``), which is
    cache-aside's get-then-set in one atomic step, so a pipeline of them has the same
    semantics as issuing them one by one. Needs Redis/Valkey >= 7.0 (SET with NX and GET).
    """

    r: Client
    keys: Sequence[str]
    ttl_ms: int


class Hits(list[np.ndarray]):
    """What ``replay`` returns: one hit/miss array per stream, plus ``refused``, per stream
    the requests the server refused with OOM (counted as misses: the value was not cached),
    and ``sent``, the seconds from the start at which each request's pipeline went out (late
    on a loaded machine; ``ttl_hits`` replays an exact TTL cache on these times)."""

    refused: list[int]
    sent: np.ndarray


def replay(
    streams: Sequence[Stream],
    value: str,
    *,
    times: np.ndarray | None = None,
    chunk: int = 200,
    max_bytes: int = 8192,
    progress: bool = False,
) -> Hits:
    """Replay every stream (all the same length) and return one hit/miss array per stream.

    With ``times`` (seconds from the start, sorted) requests go out in real time: each loop
    sends every request whose time has come, one pipeline per client, so expiry and eviction
    happen on the server's own clock. Without ``times`` requests go out as fast as possible
    in pipelines of ``chunk``.

    A pipeline carries at most ``max_bytes`` of values (and at most ``chunk`` requests per
    stream), however far a real-time replay has fallen behind. Client buffers count towards
    ``maxmemory``: a replay that fell behind on a loaded machine used to catch up with
    pipelines of ``chunk`` requests, whose query and reply buffers could outgrow a small
    server's whole key budget, so eviction emptied the keyspace and still could not make
    room. A request the server refuses with OOM anyway counts as a miss (the value was not
    cached, as a cache-aside client whose SET failed would see) and in ``Hits.refused``;
    any other error is raised.
    """
    if not streams:
        raise ValueError("streams must not be empty")
    n = len(streams[0].keys)
    if any(len(s.keys) != n for s in streams):
        raise ValueError("every stream must have the same number of keys")
    if times is not None and len(times) != n:
        raise ValueError(f"times must have one entry per request ({n}), got {len(times)}")
    chunk = checks.integer("chunk", chunk, low=1)
    max_bytes = checks.integer("max_bytes", max_bytes, low=1)
    for stream in streams:
        checks.integer("ttl_ms", stream.ttl_ms, low=1, high=checks.MAX_MS)
    by_client: dict[int, list[int]] = {}
    for index, stream in enumerate(streams):
        by_client.setdefault(id(stream.r), []).append(index)
    per_request = len(value.encode()) + 64  # the value, plus the key and framing
    widest = max(len(indexes) for indexes in by_client.values())
    step = max(1, min(chunk, max_bytes // (per_request * widest)))
    hits = Hits(np.zeros(n, dtype=bool) for _ in streams)
    hits.refused = [0] * len(streams)
    hits.sent = np.zeros(n)
    bar = _progress_bar(n) if progress else None
    start, done = time.perf_counter(), 0
    while done < n:
        if times is None:
            upto = min(n, done + step)
        else:
            upto = int(np.searchsorted(times, time.perf_counter() - start, side="right"))
            upto = min(upto, done + step)
            if upto == done:
                time.sleep(max(0.0, min(0.002, times[done] - (time.perf_counter() - start))))
                continue
        hits.sent[done:upto] = time.perf_counter() - start
        for indexes in by_client.values():
            pipe = streams[indexes[0]].r.pipeline(transaction=False)
            for index in indexes:
                stream = streams[index]
                for key in stream.keys[done:upto]:
                    pipe.set(key, value, nx=True, get=True, px=stream.ttl_ms)
            replies = pipe.execute(raise_on_error=False)
            for slot, index in enumerate(indexes):
                part = replies[slot * (upto - done) : (slot + 1) * (upto - done)]
                for reply in part:
                    if isinstance(reply, redis.exceptions.OutOfMemoryError):
                        hits.refused[index] += 1
                    elif isinstance(reply, Exception):
                        raise reply
                hits[index][done:upto] = [
                    reply is not None and not isinstance(reply, Exception) for reply in part
                ]
        if bar is not None:
            bar.update(upto - done)
        done = upto
    if bar is not None:
        bar.close()
    return hits


def cap_memory(r: redis.Redis, budget: int, value: str, *, max_bytes: int = 8192) -> int:
    """Set ``maxmemory`` on a private, empty server to its working baseline + ``budget`` bytes.

    The baseline is read after a warm-up pipeline as large as ``replay``'s largest
    (``max_bytes`` of ``value``), then dropped: a fresh connection's query and reply buffers
    are not allocated yet, and a baseline read before they are leaves the keys tens of KiB
    less room than ``budget`` says, which is all the room a small budget has. Returns the
    ``maxmemory`` set. Never run it on a server you do not own (it sets maxmemory and
    deletes its warm-up keys).
    """
    budget = checks.integer("budget", budget, low=1)
    r.config_set("maxmemory", 0)
    n = max(1, max_bytes // (len(value.encode()) + 64))
    pipe = r.pipeline(transaction=False)
    for i in range(n):
        pipe.set(f"labkit:warmup:{i}", value, nx=True, get=True)
    pipe.execute()
    r.unlink(*(f"labkit:warmup:{i}" for i in range(n)))
    limit = int(r.info("memory")["used_memory"]) + budget
    r.config_set("maxmemory", limit)
    return limit


def _progress_bar(total: int) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="req", leave=False)


def lru_hits(trace: Sequence[Any] | np.ndarray, capacity: int) -> np.ndarray:
    """Exact LRU in Python: which requests of ``trace`` hit a cache of ``capacity`` keys."""
    capacity = checks.integer("capacity", capacity, low=1)
    cache: OrderedDict[Any, None] = OrderedDict()
    hits = np.zeros(len(trace), dtype=bool)
    for i, key in enumerate(trace):
        if key in cache:
            cache.move_to_end(key)
            hits[i] = True
        else:
            cache[key] = None
            if len(cache) > capacity:
                cache.popitem(last=False)
    return hits


def ttl_hits(keys: Sequence[Any], times: np.ndarray, ttl: float) -> np.ndarray:
    """An exact TTL cache in Python: request i (``keys[i]`` at ``times[i]`` s) hits when it
    comes less than ``ttl`` s after the miss that stored its key; a miss stores it afresh."""
    ttl = checks.seconds("ttl", ttl)
    expires: dict[Any, float] = {}
    hits = np.zeros(len(keys), dtype=bool)
    for i, (key, t) in enumerate(zip(keys, times, strict=True)):
        if t < expires.get(key, -math.inf):
            hits[i] = True
        else:
            expires[key] = t + ttl
    return hits


def ttl_hit_ratio(weights: np.ndarray, rate: float, ttl: float) -> float:
    """Expected hit ratio of a TTL cache (no refresh on hit) under Poisson requests.

    Key k is requested at ``rate * weights[k]`` per second; each miss starts a ``ttl``-long
    window whose requests all hit, so key k hits with probability ``x / (1 + x)``,
    ``x = rate * weights[k] * ttl``.
    """
    x = rate * np.asarray(weights, dtype=float) * ttl
    return float(np.sum(np.asarray(weights) * x / (1 + x)))


def hammer(
    call: Callable[[], object], n_threads: int, duration: float, think: float = 0.001
) -> int:
    """Call ``call`` from ``n_threads`` threads for ``duration`` seconds, pausing ``think``
    seconds between calls; return how many calls completed. Threads start together."""
    n_threads = checks.integer("n_threads", n_threads, low=1, high=10_000)
    duration = checks.seconds("duration", duration)
    think = checks.seconds("think", think, allow_zero=True)
    barrier = threading.Barrier(n_threads)
    counts = [0] * n_threads
    errors: list[BaseException] = []

    def run(slot: int) -> None:
        barrier.wait()
        stop = time.perf_counter() + duration
        try:
            while time.perf_counter() < stop:
                call()
                counts[slot] += 1
                time.sleep(think)
        except BaseException as exc:  # re-raised in the caller's thread below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(slot,)) for slot in range(n_threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return sum(counts)


def recompute_bursts(starts: Sequence[float], window: float) -> list[int]:
    """Group loader start times into bursts: a load starting within ``window`` seconds of
    the first load of the current burst joins it. Returns the size of each burst, i.e. the
    recomputations each expiry (or early refresh) caused."""
    bursts: list[int] = []
    first = -math.inf
    for t in sorted(starts):
        if t - first <= window:
            bursts[-1] += 1
        else:
            bursts.append(1)
            first = t
    return bursts


class ExpiryRecorder:
    """Samples each server's ``expired_keys`` counter every ``interval`` s in a thread.

    ``start()`` before filling the caches, ``wait_empty(timeout)`` until every server's
    keyspace is empty, then ``stop()`` returns ``(t, counts)``: ``t`` the seconds since
    ``start()`` of each sample, ``counts`` an array (one row per client) of the keys each
    server expired since ``start()``. Give each variant a private server of its own: the
    counter is server-wide. The sampler uses its own connections.
    """

    def __init__(self, clients: Sequence[redis.Redis], interval: float = 0.02) -> None:
        self.interval = checks.seconds("interval", interval)
        self._clients = [
            redis.Redis(connection_pool=redis.ConnectionPool(**c.connection_pool.connection_kwargs))
            for c in clients
        ]
        self._stop = threading.Event()
        self._stamps: list[float] = []
        self._rows: list[list[int]] = []
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> list[int]:
        return [int(c.info("stats")["expired_keys"]) for c in self._clients]

    def _run(self) -> None:
        first = self._sample()
        start = time.perf_counter()
        self._started.set()
        while not self._stop.is_set():
            now = time.perf_counter() - start
            self._rows.append([n - f for n, f in zip(self._sample(), first, strict=True)])
            self._stamps.append(now)
            self._stop.wait(self.interval)

    def start(self) -> ExpiryRecorder:
        self._started = threading.Event()
        self._thread.start()
        self._started.wait(10)
        return self

    def wait_empty(self, timeout: float) -> bool:
        """Wait until every server's keyspace is empty; False if ``timeout`` s passed first."""
        deadline = time.perf_counter() + checks.seconds("timeout", timeout)
        while time.perf_counter() < deadline:
            if all(c.dbsize() == 0 for c in self._clients):
                time.sleep(2 * self.interval)  # one more sample after the last expiry
                return True
            time.sleep(self.interval)
        return False

    def stop(self) -> tuple[np.ndarray, np.ndarray]:
        self._stop.set()
        self._thread.join(10)
        for c in self._clients:
            c.close()
        return np.array(self._stamps), np.array(self._rows, dtype=float).T


def peak_rate(t: np.ndarray, counts: np.ndarray, window: float = 0.1) -> float:
    """The most events per second in any ``window``-long stretch of a cumulative count."""
    window = checks.seconds("window", window)
    best = 0.0
    for i, start in enumerate(t):
        j = int(np.searchsorted(t, start + window, side="left"))
        if j >= len(t):
            break
        best = max(best, (counts[j] - counts[i]) / (t[j] - t[i]))
    return best


def invalidate_during_load(
    read: Callable[[Callable[[], Any]], Any],
    source: dict[str, Any],
    key: str,
    new_value: Any,
    invalidate: Callable[[], object],
    timeout: float = 10.0,
) -> Any:
    """Force C6: a load reads ``source[key]``, then the write and its invalidation both finish,
    then the load's result comes back and is stored (or not) by the cache under test.

    ``read(load)`` is one cache read whose loader is ``load`` (it runs in a thread here);
    ``invalidate()`` drops the cached entry. Returns what that read returned; read the cache
    again afterwards to see what it kept.
    """
    loaded, written = threading.Event(), threading.Event()
    result: list[Any] = []
    errors: list[BaseException] = []

    def load() -> Any:
        row = source[key]
        loaded.set()
        written.wait(timeout)  # the query's answer is on its way back while the write lands
        return row

    def run() -> None:
        try:
            result.append(read(load))
        except BaseException as exc:  # re-raised in the caller's thread
            errors.append(exc)

    reader = threading.Thread(target=run)
    reader.start()
    if not loaded.wait(timeout):
        raise TimeoutError("the read never called its loader (was the key already cached?)")
    source[key] = new_value
    invalidate()
    written.set()
    reader.join(timeout)
    if errors:
        raise errors[0]
    return result[0]


class TrackingCache:
    """A client-side cache kept fresh by the server: RESP2 ``CLIENT TRACKING ... REDIRECT``.

    ``get(key)`` answers from a local dict when it can (no round trip); otherwise it GETs the
    key on a connection with tracking on, so the server remembers this client read it. When
    any client writes the key, the server publishes its name on ``__redis__:invalidate`` to
    this cache's subscriber connection, which drops the local copy. ``dropped`` records
    ``(key, perf_counter())`` of each drop. Needs Redis >= 6.0 (or Valkey); works over RESP2,
    so any redis-py will do. ``close()`` stops the listener thread.
    """

    def __init__(self, r: redis.Redis) -> None:
        self.local: dict[str, Any] = {}
        self.dropped: list[tuple[str, float]] = []
        self._guard = threading.Lock()
        # The subscriber gets a unique name, so its id can be found in CLIENT LIST.
        name = f"labkit-tracking-{secrets.token_hex(6)}"
        # RESP2 on both connections: REDIRECT to a subscriber is the RESP2 way (redis-py may
        # default to RESP3, whose invalidation pushes only its own client-side cache reads).
        kwargs = {
            k: v for k, v in r.connection_pool.connection_kwargs.items() if "maint" not in k
        }
        kwargs["protocol"] = 2
        self._sub_client = redis.Redis(
            connection_pool=redis.ConnectionPool(**dict(kwargs, client_name=name))
        )
        self._pubsub = self._sub_client.pubsub()
        self._pubsub.subscribe(**{"__redis__:invalidate": self._on_invalidate})
        self._thread = self._pubsub.run_in_thread(sleep_time=0.001, daemon=True)
        [listener] = [c for c in r.client_list(_type="pubsub") if c["name"] == name]
        self._reader = redis.Redis(
            connection_pool=redis.ConnectionPool(**kwargs), single_connection_client=True
        )
        self._reader.execute_command("CLIENT", "TRACKING", "ON", "REDIRECT", listener["id"])

    def _on_invalidate(self, message: dict[str, Any]) -> None:
        now = time.perf_counter()
        keys = message["data"]
        with self._guard:
            if keys is None:  # FLUSHDB/FLUSHALL: everything goes
                names = list(self.local)
            else:
                names = [k.decode() if isinstance(k, bytes) else k for k in keys]
            for name in names:
                self.local.pop(name, None)
                self.dropped.append((name, now))

    def get(self, key: str) -> Any:
        with self._guard:
            if key in self.local:
                return self.local[key]
        value = self._reader.get(key)
        with self._guard:
            self.local[key] = value
        return value

    def close(self) -> None:
        self._thread.stop()
        self._thread.join(5)
        self._reader.close()
        self._pubsub.close()
        self._sub_client.close()


class PanelServer:
    """A private server that a widget panel owns for as long as it is displayed.

    ``client()`` returns a client to a running server, starting one (again) if it is not
    running: a notebook's clean-up cell may stop the server, and the panel's next redraw
    brings it back instead of failing with ConnectionError. ``stop()`` is safe to repeat.
    """

    def __init__(self, **config: Any) -> None:
        from labkit.server import RedisServer  # imported late: keeps import of this module light

        self._server = RedisServer(**config)
        self._client: redis.Redis | None = None

    def client(self) -> redis.Redis:
        if not self._server.running or self._client is None:
            self._server.start()
            self._client = self._server.client()
        return self._client

    def stop(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        self._server.stop()


class IndexedPages:
    """Pages grouped under a set index, the C2 fix notebook 01 measures against SCAN.

    ``set_page(group, url, content)`` writes the page and adds its key to the group's set in
    one round trip; ``invalidate_group(group)`` reads the set and unlinks its members and the
    set, so its cost follows the pages in the group, not the keys on the server. Keys are
    ``<prefix>{<group>}:page:<url>`` and ``<prefix>{<group>}:index`` (one hash slot per
    group). Not atomic: a page written between the SMEMBERS and the UNLINK is unlinked from
    the index but stays cached until its TTL. The index's TTL is refreshed to the page's on
    every add, so it never outlives the pages it lists by more than one TTL.
    """

    def __init__(self, r: Client, *, prefix: str = "pages:", ttl: float = 300) -> None:
        self.r = r
        self.prefix = checks.prefix(prefix)
        self._ttl_ms = checks.to_ms("ttl", ttl)

    def _keys(self, group: str) -> tuple[str, str]:
        base = f"{self.prefix}{{{checks.tag_safe('group', group)}}}"
        return base + ":page:", base + ":index"

    def set_page(self, group: str, url: str, content: str) -> None:
        page, index = self._keys(group)
        key = page + checks.text("url", url)
        content = checks.text("content", content)
        pipe = self.r.pipeline(transaction=False)
        pipe.set(key, content, px=self._ttl_ms)
        pipe.sadd(index, key)
        pipe.pexpire(index, self._ttl_ms)
        pipe.execute()

    def get_page(self, group: str, url: str) -> str | None:
        page, _ = self._keys(group)
        raw = self.r.get(page + checks.text("url", url))
        return None if raw is None else checks.as_text(raw)

    def invalidate_group(self, group: str) -> int:
        """Unlink every page in ``group`` and its index; return how many pages were cached."""
        _, index = self._keys(group)
        members = [checks.as_text(m) for m in self.r.smembers(index)]
        if not members:
            return 0
        # The index itself is one of the unlinked keys when it still existed.
        return max(0, int(self.r.unlink(*members, index)) - 1)


def time_group_invalidation(
    pages: IndexedPages, group: str, urls: Sequence[str], *, repeats: int = 3
) -> float:
    """Best of ``repeats``: fill ``group`` with ``urls``, then time ``invalidate_group`` (s).

    The best, not the mean: the call takes milliseconds, and on a loaded machine a single
    descheduling would be most of what a mean measured.
    """
    repeats = checks.integer("repeats", repeats, low=1, high=100)
    best = math.inf
    for _ in range(repeats):
        for url in urls:
            pages.set_page(group, url, url)
        started = time.perf_counter()
        pages.invalidate_group(group)
        best = min(best, time.perf_counter() - started)
    return best


@dataclass(frozen=True)
class TrackingResult:
    """What ``measure_tracking`` saw. ``local_hit`` and ``get`` are ``labkit.measure.summarize``
    tables (µs), ``None`` when the server has no client tracking (Redis < 6); ``delays`` are
    microseconds from each write to its invalidation arriving (``inf`` if it never came)."""

    how: str
    version: str
    local_hit: dict[str, float] | None
    get: dict[str, float] | None
    delays: list[float]
    stale_after_drop: int


def measure_tracking(value: str, *, key: str = "product:42", writes: int = 30,
                     calls: int = 300) -> TrackingResult:
    """On a private server: can redis-py's built-in client-side cache talk to it; how long a
    ``TrackingCache`` hit takes against a GET; and, over ``writes`` writes from another
    client, how long each invalidation took to arrive and whether any read after it was stale.
    """
    from redis.cache import CacheConfig

    from labkit.measure import summarize, time_calls
    from labkit.server import RedisServer  # imported late: keeps import of this module light

    value = checks.text("value", value)
    key = checks.text("key", key)
    writes = checks.integer("writes", writes, low=1, high=10_000)
    calls = checks.integer("calls", calls, low=1, high=1_000_000)
    with RedisServer() as tracked:
        version = str(tracked.client().info("server")["redis_version"])
        try:
            builtin = redis.Redis(host=tracked.host, port=tracked.port, protocol=3,
                                  cache_config=CacheConfig(), decode_responses=True)
            builtin.ping()
            how = f"redis-py {redis.__version__} built-in client-side cache"
            builtin.close()
        except redis.exceptions.ConnectionError as exc:
            how = f"TrackingCache (redis-py {redis.__version__} refused: {exc})"
        if int(version.split(".")[0]) < 6:
            return TrackingResult(how, version, None, None, [], 0)
        writer = tracked.client()
        writer.set(key, value)
        local = TrackingCache(tracked.client())
        try:
            local.get(key)
            local_hit = summarize(time_calls(lambda: local.get(key), calls))
            get = summarize(time_calls(lambda: writer.get(key), calls))
            delays: list[float] = []
            stale = 0
            for i in range(writes):
                written = time.perf_counter()
                writer.set(key, f"version {i}")
                deadline = written + 2      # bounded: a lost invalidation shows as inf
                while key in local.local and time.perf_counter() < deadline:
                    time.sleep(0.0002)
                delays.append((local.dropped[-1][1] - written) * 1e6 if local.dropped else math.inf)
                stale += local.get(key) != f"version {i}"
        finally:
            local.close()
        return TrackingResult(how, version, local_hit, get, delays, stale)
