"""labkit.naive: every defect of the article's snippets, shown happening with a number.

One test per defect id (C1..G4), named after it, so a demonstration the notebooks rely on
cannot rot. Races are forced with barriers and events (a client wrapper that stops after a
chosen command), clocks are injected by patching ``labkit.naive.time``, and waits are on
conditions, never fixed sleeps.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from helpers import wait_for

from labkit import naive
from labkit.client import is_cluster
from labkit.keys import Namespace
from labkit.measure import counting_client
from labkit.server import RedisServer, require_private

# ---------------------------------------------------------------- helpers


class Gate:
    """A client wrapper: after each call of ``method`` returns, run ``after()`` (wait on a barrier).

    Every other attribute is the wrapped client's, so a naive class takes it as its client.
    """

    def __init__(self, r: Any, method: str, after: Callable[[], object]) -> None:
        self._r = r
        self._method = method
        self._after = after
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._r, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            result = attr(*args, **kwargs)
            if name == self._method:
                self._after()
            return result

        return call


def counting(r: Any) -> Gate:
    """A wrapper that only counts the commands a naive class calls, by name."""
    return Gate(r, "", lambda: None)


class FakeTime:
    """Stands in for the ``time`` module inside ``labkit.naive``: an app server's clock."""

    def __init__(self, now: float, *, sleep_step: float | None = None) -> None:
        self.now = now
        self.sleep_step = sleep_step

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += self.sleep_step if self.sleep_step is not None else seconds

    def strftime(self, fmt: str) -> str:
        return time.strftime(fmt, time.gmtime(self.now))


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeTime:
    fake = FakeTime(1_000_000.0)
    monkeypatch.setattr(naive, "time", fake)
    return fake


def raw_client(r: Any) -> Any:
    """A client to the same server or cluster as ``r`` without ``decode_responses``."""
    if is_cluster(r):
        from redis.cluster import ClusterNode, RedisCluster

        return RedisCluster(startup_nodes=[ClusterNode(n.host, n.port) for n in r.get_nodes()])
    kwargs = dict(r.connection_pool.connection_kwargs)
    kwargs["decode_responses"] = False
    return redis.Redis(connection_pool=redis.ConnectionPool(**kwargs))


def skip_on_cluster(r: Any, why: str) -> None:
    if is_cluster(r):
        pytest.skip(why)


# ---------------------------------------------------------------- RedisCache (C1..C6)


def test_c1_caller_text_is_a_glob(r: Any, ns: Namespace) -> None:
    cache = naive.RedisCache(r, prefix=ns.prefix)
    for url in ["/a", "/ab", "/abc", "/b", "/products/1", "/products/2"]:
        cache.set_page(url, {"url": url})
    pages = ns.prefix + "cache:page:"

    def left() -> int:
        return len(list(r.scan_iter(match=pages + "*", count=100)))

    cache.invalidate_pattern("/a")  # meant: the page /a
    assert left() == 3  # 3 removed for 1 intended: /ab and /abc went too
    cache.invalidate_pattern("/products/[1]")  # a URL with brackets is a character class
    assert r.exists(pages + "/products/1") == 0 and left() == 2
    cache.invalidate_pattern("*")  # a user-supplied "*" empties the whole cache
    assert left() == 0


def test_c2_scan_cost_grows_with_the_whole_keyspace(
    r: Any, ns: Namespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = naive.RedisCache(r, prefix=ns.prefix)
    calls = Counter[str]()
    real_scan = r.scan

    def scan(*args: Any, **kwargs: Any) -> Any:
        calls["scan"] += 1
        return real_scan(*args, **kwargs)

    monkeypatch.setattr(r, "scan", scan)

    def fill(start: int, stop: int) -> None:
        pipe = r.pipeline(transaction=False)
        for i in range(start, stop):
            pipe.set(ns.key("other", i), "x")
        pipe.execute()

    def scans_to_invalidate_one_page() -> int:
        cache.set_page("/only", "x")
        calls.clear()
        cache.invalidate_pattern("/only")
        assert cache.get_page("/only") is None
        return calls["scan"]

    fill(0, 1_000)
    small = scans_to_invalidate_one_page()
    fill(1_000, 20_000)
    large = scans_to_invalidate_one_page()
    # one matching key both times; 20x the keyspace costs roughly 20x the SCAN calls
    assert large >= 8 * small, (small, large)


def test_c3_falsy_row_is_never_cached(r: Any, ns: Namespace) -> None:
    loads = Counter[str]()

    def db(user_id: Any) -> dict[str, Any]:
        loads[user_id] += 1
        return {}  # the user exists, the profile is empty

    for _ in range(50):
        assert naive.get_user_profile(r, db, 7, prefix=ns.prefix) == {}
    assert loads[7] == 50  # 50 requests, 50 database queries, 0 cache hits
    assert r.exists(ns.prefix + "user:profile:7") == 0


def test_c4_concurrent_misses_each_load(r: Any, ns: Namespace) -> None:
    n = 8
    barrier = threading.Barrier(n, timeout=10)
    gated = Gate(r, "get", barrier.wait)  # every request has missed before any one fills
    loads = Counter[str]()
    guard = threading.Lock()

    def db(user_id: Any) -> dict[str, Any]:
        with guard:
            loads["n"] += 1
        return {"id": user_id}

    threads = [
        threading.Thread(
            target=naive.get_user_profile, args=(gated, db, 1), kwargs={"prefix": ns.prefix}
        )
        for _ in range(n)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert loads["n"] == n  # 8 concurrent misses, 8 database loads (single flight would make 1)


def test_c5_one_fixed_ttl_expires_together(r: Any, ns: Namespace) -> None:
    cache = naive.RedisCache(r, prefix=ns.prefix)
    for i in range(100):
        cache.set_page(f"/p/{i}", i)
    ttls = [r.ttl(f"{ns.prefix}cache:page:/p/{i}") for i in range(100)]
    assert min(ttls) >= 3599 and max(ttls) == 3600
    assert max(ttls) - min(ttls) <= 1  # 100 pages expire within 1 s of each other


def test_c6_invalidation_racing_a_load_keeps_stale_for_a_full_ttl(r: Any, ns: Namespace) -> None:
    rows = {1: {"name": "old"}}
    read_done, go = threading.Event(), threading.Event()

    def slow_db(user_id: int) -> dict[str, str]:
        row = dict(rows[user_id])
        read_done.set()
        go.wait(10)  # the query result is on its way back
        return row

    reader = threading.Thread(
        target=naive.get_user_profile, args=(r, slow_db, 1), kwargs={"prefix": ns.prefix}
    )
    reader.start()
    assert read_done.wait(10)
    rows[1] = {"name": "new"}  # the write ...
    r.delete(ns.prefix + "user:profile:1")  # ... and its invalidation, both done
    go.set()
    reader.join(10)
    assert naive.get_user_profile(r, lambda _: rows[1], 1, prefix=ns.prefix) == {"name": "old"}
    assert r.ttl(ns.prefix + "user:profile:1") >= 3590  # stale for about an hour


# ---------------------------------------------------------------- RedisSession (S1..S6)


def test_s1_concurrent_updates_of_different_fields_are_lost(r: Any, ns: Namespace) -> None:
    sessions = naive.RedisSession(r, prefix=ns.prefix)
    sid = sessions.create_session("u1")
    n = 8
    barrier = threading.Barrier(n, timeout=10)
    gated = naive.RedisSession(Gate(r, "get", barrier.wait), prefix=ns.prefix)
    threads = [
        threading.Thread(target=gated.update_session, args=(sid, {f"field{i}": i}))
        for i in range(n)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    session = sessions.get_session(sid)
    assert session is not None
    kept = [i for i in range(n) if f"field{i}" in session]
    assert len(kept) == 1  # 8 updates of 8 different fields; 7 lost


def test_s2_update_racing_logout_resurrects_the_session(r: Any, ns: Namespace) -> None:
    sessions = naive.RedisSession(r, prefix=ns.prefix)
    sid = sessions.create_session("u1")
    read_done, go = threading.Event(), threading.Event()

    def after_get() -> None:
        read_done.set()
        go.wait(10)

    gated = naive.RedisSession(Gate(r, "get", after_get), prefix=ns.prefix)
    updater = threading.Thread(target=gated.update_session, args=(sid, {"cart": 3}))
    updater.start()
    assert read_done.wait(10)
    sessions.destroy_session(sid)  # the user logs out
    assert r.exists(ns.prefix + f"session:{sid}") == 0
    go.set()
    updater.join(10)
    assert r.exists(ns.prefix + f"session:{sid}") == 1  # logged out, and back again
    assert r.ttl(ns.prefix + f"session:{sid}") >= 3590  # for another full hour


def test_s3_activity_keeps_a_session_alive_forever(
    r: Any, ns: Namespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    days = 30
    monkeypatch.setattr(naive, "time", FakeTime(time.time() - days * 86400))
    sessions = naive.RedisSession(r, prefix=ns.prefix)
    sid = sessions.create_session("u1")  # logged in 30 days ago ...
    monkeypatch.setattr(naive, "time", time)
    session = sessions.get_session(sid)
    assert session is not None
    age_days = (time.time() - session["created_at"]) / 86400
    for _ in range(10):  # ... and active since: each request extends it again
        assert sessions.refresh_session(sid) is True
    assert age_days >= 29.9
    assert r.ttl(ns.prefix + f"session:{sid}") >= 3590  # a 30-day-old login gets another hour


def test_s4_no_id_rotation_at_login(r: Any, ns: Namespace) -> None:
    sessions = naive.RedisSession(r, prefix=ns.prefix)
    planted = sessions.create_session(None)  # an attacker's anonymous session id
    # The victim logs in with that id in their cookie; the article's only tool is update.
    assert sessions.update_session(planted, {"user_id": "victim"}) is True
    stolen = sessions.get_session(planted)
    assert stolen is not None and stolen["user_id"] == "victim"  # 1 of 1 planted ids now logged in
    assert not [m for m in dir(naive.RedisSession) if "rotate" in m or "regenerate" in m]


def test_s5_no_per_user_index_makes_logout_everywhere_a_full_scan(r: Any, ns: Namespace) -> None:
    sessions = naive.RedisSession(r, prefix=ns.prefix)
    mine = {sessions.create_session("alice") for _ in range(3)}
    for i in range(97):
        sessions.create_session(f"user{i}")
    reader = counting(r)
    found = set()
    for key in r.scan_iter(match=ns.prefix + "session:*", count=100):
        blob = reader.get(key)  # the only way to learn whose session a key is
        if blob and json.loads(blob)["user_id"] == "alice":
            found.add(key.rsplit(":", 1)[1])
    assert found == mine
    assert reader.calls["get"] == 100  # 100 sessions read to find alice's 3


def test_s6_sessions_are_strings_not_hashes(r: Any, ns: Namespace) -> None:
    sessions = naive.RedisSession(r, prefix=ns.prefix)
    sid = sessions.create_session("u1", {"ip": "10.0.0.1"})
    assert r.type(ns.prefix + f"session:{sid}") == "string"
    assert r.strlen(ns.prefix + f"session:{sid}") > 0


# ---------------------------------------------------------------- RedisPubSub (P1..P5)


def channel_prefix(ns: Namespace) -> str:
    # One hash tag for every channel of a test: on a cluster all of them are published
    # through the same node, so they reach a subscriber in the order they were sent.
    return "{" + ns.prefix + "}"


class Inbox:
    def __init__(self) -> None:
        self.items: list[Any] = []
        self.lock = threading.Lock()

    def __call__(self, message: Any) -> None:
        with self.lock:
            self.items.append(message)

    def has(self, message: Any) -> bool:
        with self.lock:
            return message in self.items

    def count(self, predicate: Callable[[Any], bool]) -> int:
        with self.lock:
            return sum(1 for m in self.items if predicate(m))


def handshake(pubsub: naive.RedisPubSub, channel: str, inbox: Inbox, tag: str) -> None:
    """Publish ``tag`` to ``channel`` until the subscriber has it (so it is subscribed)."""
    assert wait_for(lambda: pubsub.publish(channel, tag) >= 0 and inbox.has(tag), timeout=10)


def stop_listener(r: Any, channel: str, thread: threading.Thread) -> None:
    """The listener loop has no stop; a non-JSON message ends it (defect P3, used on purpose)."""
    assert wait_for(
        lambda: r.publish(channel, "not json") >= 0 and not thread.is_alive(), timeout=10
    )


@pytest.fixture
def quiet_threads(monkeypatch: pytest.MonkeyPatch) -> list[BaseException]:
    """Collect exceptions that end threads (instead of printing them)."""
    seen: list[BaseException] = []

    def hook(args: threading.ExceptHookArgs) -> None:
        if args.exc_value is not None:
            seen.append(args.exc_value)

    monkeypatch.setattr(threading, "excepthook", hook)
    return seen


def test_p1_subscribe_takes_the_star_literally(
    r: Any, ns: Namespace, quiet_threads: list[BaseException]
) -> None:
    pubsub = naive.RedisPubSub(r, prefix=channel_prefix(ns))
    inbox = Inbox()
    listener = naive.start_subscriber(pubsub, "notifications:*", inbox)
    handshake(pubsub, "notifications:*", inbox, "ready")  # only the literal name reaches it
    for i in range(10):
        pubsub.publish(f"user:{i}:notifications", {"n": i})
        pubsub.publish(f"notifications:{i}", {"n": i})
    handshake(pubsub, "notifications:*", inbox, "done")
    assert inbox.count(lambda m: isinstance(m, dict)) == 0  # 0 of 20 delivered
    stop_listener(r, channel_prefix(ns) + "notifications:*", listener)


def test_p2_pattern_would_not_match_the_publishers_channels(
    r: Any, ns: Namespace, quiet_threads: list[BaseException]
) -> None:
    pubsub = naive.RedisPubSub(r, prefix=channel_prefix(ns))
    inbox = Inbox()
    listener = threading.Thread(
        target=pubsub.pattern_subscribe, args=("notifications:*", inbox), daemon=True
    )
    listener.start()
    handshake(pubsub, "notifications:ready", inbox, "ready")
    for i in range(10):
        pubsub.publish(f"user:{i}:notifications", {"n": i})  # where the senders publish
    handshake(pubsub, "notifications:done", inbox, "done")
    assert inbox.count(lambda m: isinstance(m, dict)) == 0  # 0 of 10 delivered
    stop_listener(r, channel_prefix(ns) + "notifications:stop", listener)


def test_p3_bad_message_or_handler_error_kills_the_listener(
    r: Any, ns: Namespace, quiet_threads: list[BaseException]
) -> None:
    pubsub = naive.RedisPubSub(r, prefix=channel_prefix(ns))
    dead = []
    for poison in ("not json", "handler error"):
        inbox = Inbox()

        def handler(message: Any, inbox: Inbox = inbox, poison: str = poison) -> None:
            if message == poison:
                raise RuntimeError("the handler failed on one message")
            inbox(message)

        listener = naive.start_subscriber(pubsub, "alerts", handler)
        handshake(pubsub, "alerts", inbox, "ready")
        if poison == "not json":
            r.publish(channel_prefix(ns) + "alerts", poison)
        else:
            pubsub.publish("alerts", poison)
        assert wait_for(lambda listener=listener: not listener.is_alive(), timeout=10)
        for i in range(5):
            pubsub.publish("alerts", {"n": i})
        dead.append(inbox.count(lambda m: isinstance(m, dict)))
    assert dead == [0, 0]  # after either poison, 0 of 5 later messages are handled
    assert len(quiet_threads) == 2  # and nothing but the thread's excepthook ever heard of it


def test_p4_offline_subscriber_misses_messages_for_good(
    r: Any, ns: Namespace, quiet_threads: list[BaseException]
) -> None:
    pubsub = naive.RedisPubSub(r, prefix=channel_prefix(ns))
    receivers = [pubsub.publish("orders", {"n": i}) for i in range(10)]  # nobody listening
    assert receivers == [0] * 10
    inbox = Inbox()
    listener = naive.start_subscriber(pubsub, "orders", inbox)
    handshake(pubsub, "orders", inbox, "ready")
    assert inbox.count(lambda m: isinstance(m, dict)) == 0  # 0 of the 10 ever arrive
    stop_listener(r, channel_prefix(ns) + "orders", listener)


def test_p5_slow_subscriber_is_disconnected_by_the_output_buffer_limit(
    quiet_threads: list[BaseException],
) -> None:
    with RedisServer() as server:
        r = server.client()
        require_private(r, "CONFIG SET client-output-buffer-limit")
        r.config_set("client-output-buffer-limit", "pubsub 256kb 0 0")
        pubsub = naive.RedisPubSub(r)
        inbox = Inbox()
        busy = threading.Event()
        release = threading.Event()

        def slow(message: Any) -> None:
            inbox(message)
            if message == "ready":
                busy.set()
                release.wait(30)  # the handler is stuck; the socket is not read

        listener = naive.start_subscriber(pubsub, "feed", slow)
        handshake(pubsub, "feed", inbox, "ready")
        assert busy.wait(10)
        payload = "x" * 10_000
        published = 2_000  # 20 MB: far more than the buffer limit plus the kernel buffers
        for i in range(published):
            pubsub.publish("feed", {"n": i, "pad": payload})
        stats = r.info("stats")
        disconnections = stats.get("client_output_buffer_limit_disconnections")
        assert wait_for(lambda: r.pubsub_numsub("feed")[0][1] == 0, timeout=10)
        release.set()
        # the listener either dies or reconnects and resubscribes; either way the rest is gone
        assert wait_for(
            lambda: (
                not listener.is_alive() or (pubsub.publish("feed", "end") >= 0 and inbox.has("end"))
            ),
            timeout=20,
        )
        delivered = inbox.count(lambda m: isinstance(m, dict))
        assert delivered < published / 2, delivered  # most of the 2000 messages lost
        if disconnections is not None:  # newer servers count them in INFO stats
            assert int(disconnections) >= 1
        assert server.workdir is not None
        with open(os.path.join(server.workdir, "server.out")) as log:
            closed = log.read().count("overcoming of output buffer limits")
        assert closed >= 1  # the server's own log: the subscriber was closed for it
        if listener.is_alive():
            stop_listener(r, "feed", listener)
        r.close()


# ---------------------------------------------------------------- RedisStreamQueue (Q1..Q4)


def pending_of(r: Any, stream: str, group: str) -> dict[str, int]:
    summary = r.xpending(stream, group)
    return {c["name"]: int(c["pending"]) for c in summary["consumers"]}


def add(queue: naive.RedisStreamQueue, n: int, tag: str = "ok") -> list[str]:
    return [queue.add_message({"job": f"{tag}-{i}"}) for i in range(n)]


def test_q1_failed_message_stays_pending_forever(
    r: Any, ns: Namespace, capsys: pytest.CaptureFixture[str]
) -> None:
    queue = naive.RedisStreamQueue(r, ns.key("jobs"))
    attempts = Counter[str]()

    def process(data: dict[str, Any]) -> None:
        attempts[data["job"]] += 1
        if data["job"] == "bad-0":
            raise ValueError("cannot process")

    (bad,) = add(queue, 1, "bad")
    add(queue, 4, "first")
    naive.run_worker(queue, "w1", process, rounds=1)
    for round_no in range(5):
        add(queue, 5, f"round{round_no}")
        naive.run_worker(queue, "w1", process, rounds=1)
    assert "Error processing message" in capsys.readouterr().out
    assert attempts["bad-0"] == 1  # tried once in 6 rounds, never again
    detail = r.xpending_range(queue.stream, queue.group, min="-", max="+", count=10)
    assert [(d["message_id"], d["times_delivered"]) for d in detail] == [(bad, 1)]


def test_q2_crashed_workers_pending_are_never_reclaimed(r: Any, ns: Namespace) -> None:
    queue = naive.RedisStreamQueue(r, ns.key("jobs"))
    add(queue, 5, "a")
    taken = queue.consume("worker-a", count=5)  # worker-a takes 5 and crashes
    assert len(taken[0][1]) == 5
    done = Counter[str]()
    for round_no in range(4):
        add(queue, 5, f"b{round_no}")
        naive.run_worker(queue, "worker-b", lambda d: done.update([d["job"][0]]), rounds=1)
    assert done == Counter({"b": 20})  # worker-b did 20 new jobs and 0 of worker-a's 5
    assert pending_of(r, queue.stream, queue.group) == {"worker-a": 5}


def test_q3_restarted_worker_never_rereads_its_own_pending(r: Any, ns: Namespace) -> None:
    queue = naive.RedisStreamQueue(r, ns.key("jobs"))
    add(queue, 3, "old")
    queue.consume("w1", count=3)  # w1 crashes before acking
    add(queue, 2, "new")
    done: list[str] = []
    naive.run_worker(queue, "w1", lambda d: done.append(d["job"]), rounds=1)  # w1 restarted
    assert sorted(done) == ["new-0", "new-1"]  # 0 of its 3 pending re-read
    own = r.xreadgroup(queue.group, "w1", {queue.stream: "0"}, count=10)
    assert len(own[0][1]) == 3  # reading from id 0 would have found them


def test_q4_stream_grows_without_bound(r: Any, ns: Namespace) -> None:
    queue = naive.RedisStreamQueue(r, ns.key("jobs"))
    add(queue, 200)
    done: list[str] = []
    naive.run_worker(queue, "w1", lambda d: done.append(d["job"]), rounds=40)
    assert len(done) == 200 and pending_of(r, queue.stream, queue.group) == {}
    assert r.xlen(queue.stream) == 200  # 200 acknowledged, 200 still stored
    add(queue, 300)
    assert r.xlen(queue.stream) == 500  # and it only grows


# ---------------------------------------------------------------- RateLimiter (R1..R7)


def test_r1_rejected_requests_shut_out_a_retrying_client(
    r: Any, ns: Namespace, clock: FakeTime
) -> None:
    limiter = naive.RateLimiter(r, prefix=ns.prefix)
    admitted = 0
    for _ in range(100):  # one request a second for 100 s; the limit is 5 per 10 s
        admitted += limiter.is_allowed("client", 5, 10)[0]
        clock.now += 1
    assert admitted == 5  # a limiter that forgot rejections would admit 50
    assert r.zcard(ns.prefix + "rate_limit:client") == 10  # the window is full of rejections


def test_r2_same_timestamp_members_collide(r: Any, ns: Namespace, clock: FakeTime) -> None:
    limiter = naive.RateLimiter(r, prefix=ns.prefix)
    admitted = sum(limiter.is_allowed("client", 3, 60)[0] for _ in range(10))
    assert admitted == 10  # 10 requests in the same clock tick, limit 3: all admitted
    assert r.zcard(ns.prefix + "rate_limit:client") == 1


def test_r3_half_second_window_disables_the_limiter(r: Any, ns: Namespace) -> None:
    limiter = naive.RateLimiter(r, prefix=ns.prefix)
    admitted = sum(limiter.is_allowed("half", 5, 0.5)[0] for _ in range(100))
    assert admitted == 100  # limit 5 per 0.5 s, 100 admitted: EXPIRE 0 deleted the log each time
    assert r.exists(ns.prefix + "rate_limit:half") == 0
    limiter.is_allowed("one-and-a-half", 5, 1.5)
    assert r.ttl(ns.prefix + "rate_limit:one-and-a-half") == 1  # 1.5 s window, 1 s log


def test_r4_app_server_clocks_disagree(
    r: Any, ns: Namespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    limiter = naive.RateLimiter(r, prefix=ns.prefix)
    now = time.time()
    server_a, server_b = FakeTime(now), FakeTime(now + 30)  # b's clock runs 30 s ahead
    admitted = 0
    for server in (server_a, server_b):
        monkeypatch.setattr(naive, "time", server)
        admitted += sum(limiter.is_allowed("client", 5, 10)[0] for _ in range(5))
    assert admitted == 10  # limit 5 per 10 s, 10 admitted at the same instant: 2x


def test_r5_retry_after_is_always_the_whole_period(r: Any, ns: Namespace, clock: FakeTime) -> None:
    limiter = naive.RateLimiter(r, prefix=ns.prefix)
    start = clock.now
    for t in (0, 1, 2):
        clock.now = start + t
        assert naive.rate_limit_middleware(limiter, "client", limit=3, period=60) is None
    clock.now = start + 59
    response = naive.rate_limit_middleware(limiter, "client", limit=3, period=60)
    assert response is not None and response["status"] == 429
    oldest = r.zrange(ns.prefix + "rate_limit:client", 0, 0, withscores=True)[0][1]
    true_wait = oldest + 60 - clock.now
    assert true_wait == pytest.approx(1.0)
    assert response["retry_after"] == 60  # told 60 s, the oldest entry leaves in 1 s


def test_r6_memory_grows_with_the_limit(r: Any, ns: Namespace, clock: FakeTime) -> None:
    limiter = naive.RateLimiter(r, prefix=ns.prefix)
    usage = {}
    for limit in (10, 1000):
        for _ in range(limit):
            limiter.is_allowed(f"client-{limit}", limit, 60)
            clock.now += 0.001
        assert r.zcard(ns.prefix + f"rate_limit:client-{limit}") == limit
        usage[limit] = r.memory_usage(ns.prefix + f"rate_limit:client-{limit}", samples=0)
    assert usage[1000] >= 20 * usage[10], usage  # 100x the limit, >= 20x the bytes
    assert usage[1000] / 1000 >= 20  # tens of bytes per admitted request


def test_r7_fixed_window_admits_twice_the_limit_across_a_boundary(
    r: Any, ns: Namespace, clock: FakeTime
) -> None:
    limiter = naive.FixedWindowLimiter(r, prefix=ns.prefix)
    boundary = 60 * 30_000
    clock.now = boundary - 0.1
    admitted = sum(limiter.is_allowed("client", 10, 60) for _ in range(10))
    clock.now = boundary + 0.0
    admitted += sum(limiter.is_allowed("client", 10, 60) for _ in range(10))
    assert admitted == 20  # limit 10 per minute, 20 admitted within 0.1 s


# ---------------------------------------------------------------- RedisLock (L1..L5)


def test_l1_with_body_runs_without_the_lock(
    r: Any, ns: Namespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    holder = naive.RedisLock(r, "job", prefix=ns.prefix)
    assert holder.acquire() is True
    # The waiter's 30 s blocking timeout passes in a few polls: its clock jumps 10 s a sleep.
    monkeypatch.setattr(naive, "time", FakeTime(time.time(), sleep_step=10))
    inside = []
    with naive.RedisLock(r, "job", prefix=ns.prefix) as waiter:
        inside.append(r.get(holder.name) == holder.token)
        assert waiter.acquired is False
    assert inside == [True]  # the body ran once while the holder held the lock: 2 in at once
    assert r.get(holder.name) == holder.token


def test_l2_polling_costs_about_100_commands_per_second_per_waiter(r: Any, ns: Namespace) -> None:
    holder = naive.RedisLock(r, "job", timeout=30, prefix=ns.prefix)
    assert holder.acquire() is True
    waiters = 4
    clients = [counting_client(r) for _ in range(waiters)]
    start = threading.Barrier(waiters + 1, timeout=10)
    rates: list[float] = []
    guard = threading.Lock()

    def wait(client: Any, counter: Any) -> None:
        lock = naive.RedisLock(client, "job", prefix=ns.prefix)
        start.wait()
        counter.reset()
        t0 = time.monotonic()
        assert lock.acquire(blocking_timeout=1.0) is False
        with guard:
            rates.append(counter.count / (time.monotonic() - t0))

    threads = [threading.Thread(target=wait, args=pair) for pair in clients]
    for t in threads:
        t.start()
    start.wait()
    for t in threads:
        t.join(10)
    for client, _ in clients:
        client.close()
    assert len(rates) == waiters
    # up to 100 SETs/s per waiter (10 ms sleeps plus the round trip), while nobody is served
    assert all(20 <= rate <= 105 for rate in rates), rates


def test_l3_body_longer_than_ttl_loses_the_lock_silently(r: Any, ns: Namespace) -> None:
    other = naive.RedisLock(r, "job", prefix=ns.prefix)
    slow = naive.RedisLock(r, "job", timeout=1, prefix=ns.prefix)
    answers: list[bool] = []
    real_release = slow.release

    def recording_release() -> bool:
        answers.append(real_release())
        return answers[-1]

    slow.release = recording_release  # type: ignore[method-assign]
    with slow:
        assert slow.acquired is True
        assert wait_for(lambda: r.exists(slow.name) == 0, timeout=10)  # the body overran 1 s
        assert other.acquire(blocking=False) is True  # someone else is in as well
        assert slow.acquired is True  # and the slow holder still believes it holds it
    assert answers == [False]  # release found another token: 0, and __exit__ ignored it
    assert slow.acquired is False
    assert r.get(other.name) == other.token  # no error raised; 2 holders overlapped


def test_l4_no_fencing_token_lets_a_stale_write_land(r: Any, ns: Namespace) -> None:
    account = ns.key("balance")
    r.set(account, "100")
    a = naive.RedisLock(r, "balance", timeout=1, prefix=ns.prefix)
    b = naive.RedisLock(r, "balance", timeout=1, prefix=ns.prefix)
    assert a.acquire() is True  # True, not a number a storage could check
    seen_by_a = int(r.get(account))
    assert wait_for(lambda: r.exists(a.name) == 0, timeout=10)  # a pauses (GC, swap) past its TTL
    assert b.acquire(blocking=False) is True
    r.set(account, str(int(r.get(account)) + 50))  # b's deposit: 150
    b.release()
    r.set(account, str(seen_by_a - 30))  # a wakes up and writes from its stale read
    a.release()
    assert r.get(account) == "70"  # 1 of 1 stale writes landed; b's +50 is gone


def test_l5_one_object_shared_by_threads_shares_its_token(r: Any, ns: Namespace) -> None:
    shared = naive.RedisLock(r, "job", prefix=ns.prefix)
    holding, done = threading.Event(), threading.Event()
    tokens: list[str] = []

    def worker_one() -> None:
        shared.acquire()
        tokens.append(shared.token)
        holding.set()
        done.wait(10)

    one = threading.Thread(target=worker_one)
    one.start()
    assert holding.wait(10)
    tokens.append(shared.token)  # thread two uses the same object
    assert shared.release() is True  # thread two releases thread one's lock
    assert r.exists(shared.name) == 0
    third = naive.RedisLock(r, "job", prefix=ns.prefix)
    assert third.acquire(blocking=False) is True  # while thread one is still in its body
    done.set()
    one.join(10)
    assert len(set(tokens)) == 1  # 2 threads, 1 token


# ---------------------------------------------------------------- RedisAnalytics (A1..A5)

A5_SKIP = "A5: on a cluster the pipeline fails (its keys span slots), so this defect is shown on a single node"


@pytest.fixture
def local_time_zone(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An app server whose local date differs from the UTC date right now (POSIX TZ, no tzdata)."""
    hour = time.gmtime().tm_hour
    tz = "LAB-14" if hour >= 10 else "LAB+12"  # UTC+14 after 10:00 UTC, UTC-12 before 12:00
    monkeypatch.setenv("TZ", tz)
    time.tzset()
    yield tz
    monkeypatch.undo()
    time.tzset()


def test_a1_local_and_ingest_time_misdate_events(
    r: Any, ns: Namespace, local_time_zone: str
) -> None:
    skip_on_cluster(r, A5_SKIP)
    analytics = naive.RedisAnalytics(r, prefix=ns.prefix)
    happened = time.time()
    utc_day = time.strftime("%Y-%m-%d", time.gmtime(happened))
    analytics.track_event("signup", "u1", {"at": happened})  # now, on a server in local_time_zone
    yesterday = happened - 86400
    analytics.track_event("purchase", "u2", {"at": yesterday})  # yesterday's event, arriving now
    local_day = time.strftime("%Y-%m-%d")
    assert local_day != utc_day
    assert analytics.get_daily_stats(utc_day)["events"] == {}  # the UTC day it happened: 0 events
    assert analytics.get_daily_stats(local_day)["events"] == {"signup": "1", "purchase": "1"}
    # 2 of 2 events under a day that is neither's UTC day


def test_a2_exact_user_set_grows_with_users(r: Any, ns: Namespace) -> None:
    skip_on_cluster(r, A5_SKIP)
    analytics = naive.RedisAnalytics(r, prefix=ns.prefix)
    day = time.strftime("%Y-%m-%d")
    key = ns.prefix + f"analytics:users:{day}"
    usage = {}
    users = 0
    for target in (200, 2000):
        for i in range(users, target):
            analytics.track_event("view", f"user-{i:06d}")
        users = target
        usage[target] = r.memory_usage(key, samples=0)
    assert r.scard(key) == 2000
    assert usage[2000] >= 5 * usage[200], usage  # 10x the users, >= 5x the memory
    assert usage[2000] / 2000 >= 10  # bytes per user, for ever (a HyperLogLog stays 12 KB)


def test_a3_event_stream_grows_forever(r: Any, ns: Namespace) -> None:
    skip_on_cluster(r, A5_SKIP)
    analytics = naive.RedisAnalytics(r, prefix=ns.prefix)
    for i in range(500):
        analytics.track_event("view", f"u{i % 7}")
    assert r.xlen(ns.prefix + "events:stream") == 500  # 500 events, 500 entries, no MAXLEN


def test_a4_day_keys_never_expire(r: Any, ns: Namespace) -> None:
    skip_on_cluster(r, A5_SKIP)
    analytics = naive.RedisAnalytics(r, prefix=ns.prefix)
    analytics.track_event("view", "u1")
    day = time.strftime("%Y-%m-%d")
    ttls = [
        r.ttl(ns.prefix + f"analytics:events:{day}"),
        r.ttl(ns.prefix + f"analytics:users:{day}"),
        r.ttl(ns.prefix + "events:stream"),
    ]
    assert ttls == [-1, -1, -1]  # 3 of 3 keys without a TTL


def test_a5_keys_span_slots_so_the_cluster_pipeline_fails(r: Any, ns: Namespace) -> None:
    if not is_cluster(r):
        pytest.skip("A5 is a cluster failure; on a single node the pipeline works")
    analytics = naive.RedisAnalytics(r, prefix=ns.prefix)
    with pytest.raises(redis.exceptions.RedisClusterException) as failure:
        analytics.track_event("view", "u1")
    assert "slot" in str(failure.value).lower(), failure.value
    assert ns.keys() == []  # 0 of 3 writes landed


# ---------------------------------------------------------------- Leaderboard (B1..B3)


def test_b1_default_rank_is_zero_based_from_the_bottom(r: Any, ns: Namespace) -> None:
    board = naive.Leaderboard(r, "game", prefix=ns.prefix)
    for i in range(10):
        board.add_score(f"p{i}", i * 10)
    assert board.get_rank("p9") == 9  # the leader of 10 is "rank 9"
    assert board.get_rank("p0") == 0  # the last is "rank 0"


def test_b2_tied_players_get_different_ranks(r: Any, ns: Namespace) -> None:
    board = naive.Leaderboard(r, "game", prefix=ns.prefix)
    for name in ("ann", "bob", "cat"):
        board.add_score(name, 50)
    board.add_score("dan", 10)
    ranks = {name: board.get_rank(name, reverse=True) for name in ("ann", "bob", "cat")}
    assert sorted(ranks.values()) == [0, 1, 2]  # 1 score, 3 different ranks


def test_b3_leaders_percentile_is_zero_and_costs_two_round_trips(r: Any, ns: Namespace) -> None:
    board = naive.Leaderboard(r, "game", prefix=ns.prefix)
    for i in range(10):
        board.add_score(f"p{i}", i * 10)
    client, counter = counting_client(r)
    try:
        counted = naive.Leaderboard(client, "game", prefix=ns.prefix)
        counter.reset()
        assert counted.get_percentile("p9") == 0.0  # the leader: the 0th percentile
        assert counter.count == 2  # ZREVRANK, then ZCARD
        assert counted.get_percentile("p0") == 90.0  # the last: the 90th
    finally:
        client.close()


# ---------------------------------------------------------------- FeatureFlags (G1..G4)


def test_g1_bytes_reply_never_equals_the_string_one(r: Any, ns: Namespace) -> None:
    raw = raw_client(r)
    try:
        flags = naive.FeatureFlags(raw, prefix=ns.prefix)
        flags.enable("checkout")
        assert raw.get(ns.prefix + "feature:checkout") == b"1"
        assert flags.is_enabled("checkout") is False  # enabled, read as off: 0 of 1
        assert naive.FeatureFlags(r, prefix=ns.prefix).is_enabled("checkout") is True
    finally:
        raw.close()


def test_g2_disable_leaves_per_user_enablements_on(r: Any, ns: Namespace) -> None:
    flags = naive.FeatureFlags(r, prefix=ns.prefix)
    for i in range(100):
        flags.enable_for_user("beta", f"u{i}")
    flags.enable("beta")
    flags.disable("beta")  # the kill switch
    assert flags.is_enabled("beta") is False
    still_on = sum(flags.is_enabled_for_user("beta", f"u{i}") for i in range(100))
    assert still_on == 100  # 100 of 100 users keep the feature


def test_g3_user_check_takes_two_round_trips(r: Any, ns: Namespace) -> None:
    naive.FeatureFlags(r, prefix=ns.prefix).enable_for_user("beta", "u1")
    client, counter = counting_client(r)
    try:
        flags = naive.FeatureFlags(client, prefix=ns.prefix)
        counter.reset()
        assert flags.is_enabled_for_user("beta", "u1") is True
        assert counter.count == 2  # GET, then SISMEMBER
    finally:
        client.close()


def test_g4_random_rollout_flickers_per_request(
    r: Any, ns: Namespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(naive, "random", random.Random(2026))
    flags = naive.FeatureFlags(r, prefix=ns.prefix)
    answers = [flags.is_enabled_for_percentage("new-ui", "u1", 50) for _ in range(100)]
    flips = sum(a != b for a, b in itertools.pairwise(answers))
    assert 30 <= sum(answers) <= 70  # one user, 100 requests: on about half of them
    assert flips >= 25  # and the answer changed between consecutive requests this often


def test_no_pattern_module_imports_naive() -> None:
    import pathlib

    package = pathlib.Path(naive.__file__).parent
    importers = [
        path.name
        for path in package.glob("*.py")  # experiments/ drivers may use it
        if path.name != "naive.py"
        and any(
            line.strip().startswith(
                ("import labkit.naive", "from labkit.naive", "from labkit import naive")
            )
            or line.strip().startswith("from . import naive")
            for line in path.read_text().splitlines()
        )
    ]
    assert importers == []
