"""Notebook 10's cluster experiments (no failover; that is :mod:`labkit.experiments.failover`).

- ``pattern_tour``: every labkit pattern runs a few of its operations on a cluster under its
  own prefix, and reports the keys it left and their slots. A multi-key script or transaction
  whose keys were in different slots would be refused (CROSSSLOT), so "ok" is the proof that
  the pattern's hash tags work.
- ``spread_over_primaries``: the same records written once with a hash tag per entity and
  once with one constant tag, measured on each primary (keys, memory, commands served).
- ``bus_messages``: cluster-bus messages a ``PUBLISH`` and an ``SPUBLISH`` cost, from each
  node's ``CLUSTER INFO`` counters.

These drive the pattern modules; no pattern module imports anything from here.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pandas as pd
from redis.cluster import RedisCluster

from labkit import checks
from labkit.keys import Namespace, escape_glob
from labkit.server import LocalCluster


def _cache(rc: RedisCluster, prefix: str) -> str:
    from labkit.cache import CacheAside

    cache = CacheAside(
        rc, lambda key: {"sku": key, "price": 9.5}, ttl=60, prefix=prefix, single_flight=True
    )
    assert cache.get("sku-1") == cache.get("sku-1") == {"sku": "sku-1", "price": 9.5}
    return "get (miss, load, store), get (hit)"


def _sessions(rc: RedisCluster, prefix: str) -> str:
    from labkit.sessions import SessionStore

    store = SessionStore(rc, prefix=prefix)
    sid = store.create_session("alice", theme="dark")
    new = store.rotate_session(sid)
    assert new is not None and store.get_session(sid) is None
    session = store.get_session(new)
    assert session is not None and session.data == {"theme": "dark"}
    assert store.list_user_sessions("alice") == [new]
    return "create, rotate, get, list the user's sessions"


def _pubsub(rc: RedisCluster, prefix: str) -> str:
    from labkit.pubsub import PubSub

    bus, heard = PubSub(rc, prefix=prefix), threading.Event()
    with bus.subscribe("news", lambda message: heard.set()):
        assert bus.publish("news", {"text": "hi"}) == 1 and heard.wait(5)
    return "subscribe, publish, receive (channels, no keys)"


def _streams(rc: RedisCluster, prefix: str) -> str:
    from labkit.streams import StreamQueue

    queue = StreamQueue(rc, prefix + "{orders}", "billing")
    queue.setup()
    queue.add({"order_id": "17"})
    [message] = queue.consume("worker-1", count=1)
    assert queue.ack(message.id) == 1
    return "group setup, add, consume, ack"


def _ratelimit(rc: RedisCluster, prefix: str) -> str:
    from labkit.ratelimit import SlidingLog, TokenBucket

    assert SlidingLog(rc, limit=5, window=60, prefix=prefix).hit("user:42").allowed
    assert TokenBucket(rc, rate=1, burst=5, prefix=prefix).hit("user:42").allowed
    return "sliding log hit, token bucket hit"


def _locks(rc: RedisCluster, prefix: str) -> str:
    from labkit.locks import FencedStore, Lock

    with Lock(rc, "invoice-42", ttl=5, prefix=prefix) as token:
        assert FencedStore(rc, prefix + "{invoice-42}:record").write("paid", token)
    return "acquire, fenced write, release"


def _analytics(rc: RedisCluster, prefix: str) -> str:
    from labkit.analytics import Analytics

    stats = Analytics(rc, prefix=prefix)
    for ts, user in ((1_700_000_000, 1), (1_700_086_400, 2), (1_700_086_400, 1)):
        stats.track_event("login", user, ts)
    assert stats.active_users("2023-11-15", days=2) == 2
    return "track 3 events over 2 days, 2-day active users"


def _leaderboard(rc: RedisCluster, prefix: str) -> str:
    from labkit.leaderboard import Leaderboard

    board = Leaderboard(rc, "weekly", prefix=prefix, rank_method="dense")
    board.set_score("ann", 10)
    board.set_score("bob", 10)
    assert board.get_rank("ann") == board.get_rank("bob") == 1
    return "set 2 scores, dense rank"


def _flags(rc: RedisCluster, prefix: str) -> str:
    from labkit.flags import FeatureFlags

    flags = FeatureFlags(rc, prefix=prefix)
    flags.set_rollout("new-checkout", 0)
    flags.enable_for_user("new-checkout", 42)
    assert flags.is_enabled("new-checkout", 42) and not flags.is_enabled("new-checkout", 7)
    return "rollout, per-user override, check"


PATTERNS: dict[str, Callable[[RedisCluster, str], str]] = {
    "cache": _cache,
    "sessions": _sessions,
    "pubsub": _pubsub,
    "streams": _streams,
    "ratelimit": _ratelimit,
    "locks": _locks,
    "analytics": _analytics,
    "leaderboard": _leaderboard,
    "flags": _flags,
}


def pattern_tour(rc: RedisCluster, ns: Namespace) -> pd.DataFrame:
    """Run every pattern in ``PATTERNS`` on ``rc`` under ``ns.prefix_for(<pattern>)``.

    One row per pattern: the operations, ``"ok"`` or ``"FAILED: <error>"`` (an exception is
    recorded, not raised, so one broken pattern does not hide the others), the keys it left
    (after the namespace prefix) and their slots.
    """
    rows = []
    for name, run in PATTERNS.items():
        prefix = ns.prefix_for(name)
        try:
            operations, result = run(rc, prefix), "ok"
        except Exception as exc:  # recorded, and failed by the notebook's claim check
            operations, result = "", f"FAILED: {type(exc).__name__}: {exc}"
        keys = sorted(rc.scan_iter(match=escape_glob(prefix) + "*"))
        rows.append(
            {
                "pattern": name,
                "operations": operations,
                "result": result,
                "keys left (after the namespace prefix)": [k.removeprefix(ns.prefix) for k in keys],
                "slots": sorted({rc.keyslot(k) for k in keys}),
            }
        )
    return pd.DataFrame(rows)


def _primary_stats(cluster: LocalCluster) -> dict[int, dict[str, int]]:
    stats = {}
    for node in cluster.nodes:
        if not node.running:
            continue
        client = node.client()
        try:
            if client.info("replication")["role"] != "master":
                continue
            stats[node.port] = {
                "memory": int(client.info("memory")["used_memory"]),
                "commands": int(client.info("stats")["total_commands_processed"]),
            }
        finally:
            client.close()
    return stats


def _keys_on(cluster: LocalCluster, port: int, match: str) -> int:
    """Keys matching ``match`` that the node on ``port`` holds, counted by the node itself."""
    node = next(n for n in cluster.nodes if n.port == port)
    client = node.client()
    try:
        return sum(1 for _ in client.scan_iter(match=match, count=1000))
    finally:
        client.close()


def _primary_label(cluster: LocalCluster, port: int) -> str:
    # The name notebook 10 gives a primary: its index among the primaries the cluster started.
    started = [n.port for n in cluster.primaries]
    return f"primary {started.index(port)} (:{port})" if port in started else f"promoted (:{port})"


def spread_over_primaries(
    cluster: LocalCluster,
    rc: RedisCluster,
    prefix: str,
    tags: dict[str, Callable[[int], str]],
    *,
    entities: int = 3000,
    batch: int = 500,
) -> pd.DataFrame:
    """Write ``entities`` small carts once per tagging scheme; measure each primary.

    ``tags`` maps a scheme's name to the hash tag of entity ``i`` (``lambda i: f"user:{i}"``
    spreads; ``lambda i: "shop"`` piles everything in one slot). Each scheme writes
    ``<prefix><scheme>:{<tag>}:cart:<i>`` (a 3-field hash) in pipelines of ``batch``; each
    primary counts the scheme's keys it holds (SCAN), and the memory and commands it gained
    are read from its own INFO; then the keys are deleted before the next scheme. Memory and
    commands include whatever else the primary did meanwhile (an expiring key, the client's
    own INFO calls); ``used_memory`` also moves by some KiB with no data at all (allocator).
    Primaries are named ``primary <i> (:<port>)`` by their index in ``cluster.primaries``.
    """
    entities = checks.integer("entities", entities, low=1, high=1_000_000)
    batch = checks.integer("batch", batch, low=1, high=10_000)
    checks.prefix(prefix)
    for scheme in tags:
        checks.tag_safe("scheme", scheme)  # it goes in the key, before the tag that must count
    rows: list[dict[str, Any]] = []
    for scheme, tag in tags.items():
        keys = [f"{prefix}{scheme}:{{{tag(i)}}}:cart:{i}" for i in range(entities)]
        before = _primary_stats(cluster)
        for start in range(0, entities, batch):
            pipe = rc.pipeline(transaction=False)
            for key in keys[start : start + batch]:
                pipe.hset(key, mapping={"book": 1, "lamp": 2, "pen": 5})
            pipe.execute()
        after = _primary_stats(cluster)
        held = {port: _keys_on(cluster, port, escape_glob(f"{prefix}{scheme}:") + "*") for port in after}
        for start in range(0, entities, batch):
            pipe = rc.pipeline(transaction=False)
            for key in keys[start : start + batch]:
                pipe.delete(key)
            pipe.execute()
        started = [n.port for n in cluster.primaries]
        for port in sorted(after, key=lambda p: (started.index(p) if p in started else len(started), p)):
            gained = {k: after[port][k] - before.get(port, after[port])[k] for k in after[port]}
            rows.append(
                {
                    "scheme": scheme,
                    "primary": _primary_label(cluster, port),
                    "keys": held[port],
                    "share of keys": held[port] / entities,
                    "memory (KiB)": gained["memory"] / 1024,
                    "commands": gained["commands"],
                }
            )
    return pd.DataFrame(rows)


def _bus_counters(cluster: LocalCluster) -> dict[str, int]:
    totals: dict[str, int] = {}
    for node in cluster.nodes:
        if not node.running:
            continue
        client = node.client()
        try:
            for line in str(client.execute_command("CLUSTER", "INFO")).splitlines():
                name, _, value = line.partition(":")
                if name.startswith("cluster_stats_messages_publish") and name.endswith("_sent"):
                    totals[name] = totals.get(name, 0) + int(value)
        finally:
            client.close()
    return totals


def bus_messages(
    cluster: LocalCluster, rc: RedisCluster, channel: str, messages: int = 100
) -> dict[str, float]:
    """Cluster-bus messages sent per message, for ``PUBLISH`` and for ``SPUBLISH`` (7.0+).

    Read from the ``cluster_stats_messages_publish*_sent`` counters of every node, before and
    after ``messages`` publishes of each kind on ``channel``. Nobody need be subscribed: the
    cost is the forwarding, which does not depend on subscribers.
    """
    messages = checks.integer("messages", messages, low=1, high=100_000)
    checks.text("channel", channel)
    per_message = {}
    for command, publish in (("PUBLISH", rc.publish), ("SPUBLISH", rc.spublish)):
        before = _bus_counters(cluster)
        for _ in range(messages):
            publish(channel, "x")
        after = _bus_counters(cluster)
        sent = sum(after.values()) - sum(before.values())
        per_message[command] = sent / messages
    return per_message
