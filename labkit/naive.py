"""The code NOT to copy: the widely copied article snippets, reproduced on purpose, defects and all.

The workbook teaches each pattern by running it "the way it is usually written" until it
breaks, then the fix. The usual way is the article most readers copy from, so this module
reproduces its snippets command for command: the same Redis commands in the same order, the
same defaults, the same return values and the same defects. A learner who later meets the
real snippet should recognise it here.

Do not use these classes in an application, and no pattern module imports this one. The fixed
versions live in ``labkit.cache``, ``labkit.sessions``, ``labkit.pubsub``, ``labkit.streams``,
``labkit.ratelimit``, ``labkit.locks``, ``labkit.analytics``, ``labkit.leaderboard`` and
``labkit.flags``.

Every class docstring lists its defects by id (C1..C6, S1..S6, P1..P5, Q1..Q4, R1..R7, L1..L5,
A1..A5, B1..B3, G1..G4); ``tests/test_naive.py`` has one test per id that shows the defect
happening with a number, and the README's "Defect catalogue" maps each id to that test.

The one addition to the article: constructors take a keyword ``prefix=""`` (the article's
empty prefix by default) that is put in front of every key or channel name, so a notebook or a
test can keep the keys under its namespace. Nothing else changes. There is no input
validation, on purpose: the article has none. Pipelines say ``transaction=True``: that is
redis.Redis's default, the MULTI/EXEC the article runs; a cluster client's default is a plain
batch, so naming it keeps the article's commands on both. SETEX is sent with ``execute_command`` because
redis-py 8 deprecates its ``setex`` method; the command on the wire is the article's SETEX.
"""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from labkit import scripts
from labkit.client import is_cluster

__all__ = [
    "FeatureFlags",
    "FixedWindowLimiter",
    "Leaderboard",
    "RateLimiter",
    "RedisAnalytics",
    "RedisCache",
    "RedisLock",
    "RedisPubSub",
    "RedisSession",
    "RedisStreamQueue",
    "get_user_profile",
    "rate_limit_middleware",
    "run_worker",
    "start_subscriber",
]


class RedisCache:
    """The article's page cache: ``cache:page:<url>`` holding ``json.dumps(content)``.

    Defects:

    - C1: ``invalidate_pattern``'s argument is a glob: ``*?[]`` in a URL deletes other
      pages, and ``"/a"`` also deletes ``/ab``.
    - C2: the SCAN walks the whole keyspace, so invalidation costs grow with every key on
      the server, not with the pages that match.
    - C5: one fixed TTL (3600 s), no jitter: pages cached together expire together.

    C3, C4 and C6 belong to :func:`get_user_profile`, the article's read-through.
    """

    def __init__(self, r: Any, *, prefix: str = "") -> None:
        self.redis = r
        self.prefix = prefix

    def _key(self, url: str) -> str:
        return f"{self.prefix}cache:page:{url}"

    def get_page(self, url: str) -> Any:
        cached = self.redis.get(self._key(url))
        if cached:
            return json.loads(cached)
        return None

    def set_page(self, url: str, content: Any, ttl: int = 3600) -> None:
        self.redis.execute_command("SETEX", self._key(url), ttl, json.dumps(content))

    def invalidate_page(self, url: str) -> None:
        self.redis.delete(self._key(url))

    def invalidate_pattern(self, pattern: str) -> None:
        match = f"{self.prefix}cache:page:{pattern}*"
        for scan in _scanners(self.redis):  # one on a single node, one per cluster primary
            cursor = 0
            while True:
                cursor, keys = scan(cursor, match=match, count=100)
                if keys:
                    self.redis.delete(*keys)
                if cursor == 0:
                    break


def _scanners(r: Any) -> list[Callable[..., tuple[int, list[Any]]]]:
    """SCAN callables ``(cursor, **kw) -> (cursor, keys)``: the client's own, or one per primary.

    Not the article's: its cursor loop runs on one server, and a cluster keeps a cursor per
    node, so on a cluster client the same loop runs once per primary.
    """
    if not is_cluster(r):
        return [r.scan]

    def on(node: Any) -> Callable[..., tuple[int, list[Any]]]:
        def scan(cursor: int, **kwargs: Any) -> tuple[int, list[Any]]:
            reply: Any = r.scan(cursor, target_nodes=node, **kwargs)
            cursors, keys = reply
            return int(cursors[node.name]), keys

        return scan

    return [on(node) for node in r.get_primaries()]


def get_user_profile(r: Any, db: Callable[[Any], Any], user_id: Any, *, prefix: str = "") -> Any:
    """The article's cache-aside read: GET ``user:profile:<id>``, else ask ``db``, SETEX 3600.

    ``db`` stands for the article's database query: ``db(user_id)`` returns the row (a dict)
    or something falsy.

    Defects:

    - C3: ``if profile:`` on both sides: an empty or falsy row is never cached, so every
      request for it reaches the database.
    - C4: N concurrent misses make N database loads (no single flight).
    - C5: one fixed TTL, no jitter.
    - C6: an invalidation racing a load leaves the stale row cached for a full TTL (the
      load read the old row, the DEL ran, then the SETEX wrote the old row back).
    """
    key = f"{prefix}user:profile:{user_id}"
    profile = r.get(key)
    if profile:
        return json.loads(profile)
    profile = db(user_id)
    if profile:
        r.execute_command("SETEX", key, 3600, json.dumps(profile))
    return profile


class RedisSession:
    """The article's session store: ``session:<uuid4>`` holding one JSON string, SETEX ttl.

    Defects:

    - S1: ``update_session`` reads, updates a dict and writes the whole blob back: two
      concurrent updates of different fields lose one of them.
    - S2: an update racing a logout writes the blob back after the DEL: the destroyed
      session is resurrected.
    - S3: ``refresh_session`` resets the full TTL on every call and nothing checks
      ``created_at``: activity keeps a session alive forever (no absolute timeout).
    - S4: no id rotation at login: the id a visitor had before logging in stays valid after.
    - S5: no per-user index: finding (and ending) all of a user's sessions means reading
      every session in the keyspace; "log out everywhere" is impossible in practice.
    - S6: the article's TTL table says Hash, but this stores a String.
    """

    def __init__(self, r: Any, ttl: int = 3600, *, prefix: str = "") -> None:
        self.redis = r
        self.ttl = ttl
        self.prefix = prefix

    def _key(self, session_id: str) -> str:
        return f"{self.prefix}session:{session_id}"

    def create_session(self, user_id: Any, metadata: dict[str, Any] | None = None) -> str:
        session_id = str(uuid.uuid4())
        session_data = {
            "user_id": user_id,
            "created_at": time.time(),
            "metadata": metadata or {},
        }
        self.redis.execute_command(
            "SETEX", self._key(session_id), self.ttl, json.dumps(session_data)
        )
        return session_id

    def get_session(self, session_id: str) -> dict[str, Any] | None:
        data = self.redis.get(self._key(session_id))
        if data:
            loaded: dict[str, Any] = json.loads(data)
            return loaded
        return None

    def update_session(self, session_id: str, data: dict[str, Any]) -> bool:
        session = self.get_session(session_id)
        if session:
            session.update(data)
            self.redis.execute_command(
                "SETEX", self._key(session_id), self.ttl, json.dumps(session)
            )
            return True
        return False

    def refresh_session(self, session_id: str) -> bool:
        key = self._key(session_id)
        if self.redis.exists(key):
            self.redis.expire(key, self.ttl)
            return True
        return False

    def destroy_session(self, session_id: str) -> None:
        self.redis.delete(self._key(session_id))


class RedisPubSub:
    """The article's pub/sub wrapper: PUBLISH of JSON, a blocking ``listen()`` loop per subscriber.

    The article's wiring runs ``subscribe("notifications:*", handler)`` in a daemon thread
    while senders publish to ``user:<id>:notifications``.

    Defects:

    - P1: SUBSCRIBE takes ``*`` literally: the article's subscriber receives 0 messages.
    - P2: even PSUBSCRIBE ``notifications:*`` would not match the publishers' channel
      names ``user:<id>:notifications``.
    - P3: a handler exception or a non-JSON message ends the ``listen()`` loop, and with it
      the listener thread, silently (the caller ignores ``publish``'s receiver count).
    - P4: at most once: a subscriber that is offline when a message is published never
      gets it.
    - P5: a slow subscriber is disconnected by the server's ``client-output-buffer-limit
      pubsub``; the messages queued for it are lost.
    """

    def __init__(self, r: Any, *, prefix: str = "") -> None:
        self.redis = r
        self.prefix = prefix

    def publish(self, channel: str, message: Any) -> int:
        count: int = self.redis.publish(f"{self.prefix}{channel}", json.dumps(message))
        return count

    def subscribe(self, channel: str, callback: Callable[[Any], Any]) -> None:
        pubsub = self.redis.pubsub()
        pubsub.subscribe(f"{self.prefix}{channel}")
        for message in pubsub.listen():
            if message["type"] == "message":
                callback(json.loads(message["data"]))

    def pattern_subscribe(self, pattern: str, callback: Callable[[Any], Any]) -> None:
        pubsub = self.redis.pubsub()
        pubsub.psubscribe(f"{self.prefix}{pattern}")
        for message in pubsub.listen():
            if message["type"] == "pmessage":
                callback(json.loads(message["data"]))


class RedisStreamQueue:
    """The article's stream queue: one consumer group ``<stream>:group``, read with ``>``.

    ``stream`` is the full key name (a notebook passes ``ns.key("jobs")``).

    Defects:

    - Q1: a message whose processing fails stays pending forever: it is never retried
      and never dead-lettered.
    - Q2: a crashed worker's pending messages are never reclaimed by another worker.
    - Q3: a restarted worker reads only ``>`` (new messages), never its own pending ones.
    - Q4: XADD without MAXLEN, and acknowledged entries are never deleted: the stream
      grows without bound.
    """

    def __init__(self, r: Any, stream: str) -> None:
        self.redis = r
        self.stream = stream
        self.group = f"{stream}:group"
        try:
            self.redis.xgroup_create(stream, self.group, id="0", mkstream=True)
        except Exception as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def add_message(self, data: dict[str, Any]) -> Any:
        return self.redis.xadd(self.stream, data)

    def consume(self, consumer: str, count: int = 1, block: int = 5000) -> Any:
        return self.redis.xreadgroup(
            self.group, consumer, {self.stream: ">"}, count=count, block=block
        )

    def acknowledge(self, message_id: Any) -> Any:
        return self.redis.xack(self.stream, self.group, message_id)


def run_worker(
    queue: RedisStreamQueue,
    consumer: str,
    process: Callable[[dict[str, Any]], Any],
    *,
    rounds: int | None = None,
) -> None:
    """The article's worker loop: consume 5, process each, ack; on an exception print and move on.

    The article loops forever; ``rounds`` (None = forever) only lets a test or a notebook
    stop it after that many ``consume`` calls. See :class:`RedisStreamQueue` for Q1..Q4.
    """
    done = 0
    while rounds is None or done < rounds:
        done += 1
        messages = queue.consume(consumer, count=5)
        for _stream, entries in messages or []:
            for message_id, data in entries:
                try:
                    process(data)
                    queue.acknowledge(message_id)
                except Exception as exc:
                    print(f"Error processing message {message_id}: {exc}")


class RateLimiter:
    """The article's sliding-log limiter: one MULTI/EXEC of ZREMRANGEBYSCORE, ZCARD, ZADD, EXPIRE.

    ``is_allowed(key, limit, window)`` returns ``(allowed, remaining)``, allowed when the
    ZCARD result (taken before this request's ZADD) is below ``limit``. The clock is the app
    server's ``time.time()``. The key is ``rate_limit:<key>``.

    Defects:

    - R1: rejected requests are recorded too, so a client that keeps retrying within the
      window is shut out for good.
    - R2: the member is ``str(now)``: two requests with the same timestamp are one entry,
      so the limiter over-admits.
    - R3: ``EXPIRE int(window)``: a 0.5 s window gives EXPIRE 0, which deletes the log on
      every request, so the limiter admits everything (and 1.5 s becomes 1 s).
    - R4: each app server's clock decides what is "old": clocks that disagree trim each
      other's entries.
    - R5: the middleware's Retry-After is always the whole period, however soon the oldest
      entry leaves the window.
    - R6: one entry per request in the window: memory grows with the limit.
    """

    def __init__(self, r: Any, *, prefix: str = "") -> None:
        self.redis = r
        self.prefix = prefix

    def is_allowed(self, key: str, limit: int, window: float) -> tuple[bool, int]:
        now = time.time()
        redis_key = f"{self.prefix}rate_limit:{key}"
        pipe = self.redis.pipeline(transaction=True)
        pipe.zremrangebyscore(redis_key, 0, now - window)
        pipe.zcard(redis_key)
        pipe.zadd(redis_key, {str(now): now})
        pipe.expire(redis_key, int(window))
        results = pipe.execute()
        current = int(results[1])
        allowed = current < limit
        return allowed, max(0, limit - current - 1)


def rate_limit_middleware(
    limiter: RateLimiter, client_id: str, limit: int = 100, period: int = 60
) -> dict[str, Any] | None:
    """The article's middleware: None lets the request through, else a 429 response.

    R5: ``retry_after`` is always ``period``, whatever the log holds.
    """
    allowed, _remaining = limiter.is_allowed(client_id, limit, period)
    if not allowed:
        return {"status": 429, "error": "Rate limit exceeded", "retry_after": period}
    return None


class FixedWindowLimiter:
    """The article's fixed window: INCR ``fw:<key>:<int(now // window)>`` + EXPIRE in one pipeline.

    Allowed when the count after INCR is at most ``limit``.

    Defects:

    - R7: a burst at the end of one window and another at the start of the next admit up
      to 2x the limit within a moment.
    """

    def __init__(self, r: Any, *, prefix: str = "") -> None:
        self.redis = r
        self.prefix = prefix

    def is_allowed(self, key: str, limit: int, window: int) -> bool:
        now = time.time()
        redis_key = f"{self.prefix}fw:{key}:{int(now // window)}"
        pipe = self.redis.pipeline(transaction=True)
        pipe.incr(redis_key)
        pipe.expire(redis_key, window)
        results = pipe.execute()
        return int(results[0]) <= limit


class RedisLock:
    """The article's lock: ``lock:<name>``, SET NX EX in a 10 ms polling loop, scripted release.

    One uuid4 token per object. ``release()`` sets ``acquired = False`` whatever the script
    returned; ``__enter__`` calls ``acquire()`` and ignores its result.

    Defects:

    - L1: when ``acquire()`` times out, the ``with`` body runs anyway, without the lock.
    - L2: every waiter polls every 10 ms (at most 100 SET NX a second per waiter: a 10 ms sleep plus the round trip),
      and whoever polls at the right moment wins: no order among waiters.
    - L3: a body that runs longer than ``timeout`` loses the lock silently: nothing extends
      it, and ``release()`` returning 0 is ignored.
    - L4: no fencing token: a holder that paused past the TTL still writes, and its stale
      write lands after the new holder's.
    - L5: one object shared by threads shares one token: any thread can release the lock
      another thread holds.
    """

    RELEASE = scripts.load("naive/lock_release")

    def __init__(self, r: Any, name: str, timeout: int = 10, *, prefix: str = "") -> None:
        self.redis = r
        self.name = f"{prefix}lock:{name}"
        self.timeout = timeout
        self.token = str(uuid.uuid4())
        self.acquired = False
        self._release = scripts.register(r, self.RELEASE)

    def acquire(self, blocking: bool = True, blocking_timeout: float = 30) -> bool:
        end = time.time() + blocking_timeout
        while True:
            if self.redis.set(self.name, self.token, nx=True, ex=self.timeout):
                self.acquired = True
                return True
            if not blocking or time.time() > end:
                return False
            time.sleep(0.01)

    def release(self) -> bool:
        result = self._release(keys=[self.name], args=[self.token])
        self.acquired = False
        return bool(result)

    def __enter__(self) -> RedisLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class RedisAnalytics:
    """The article's event tracker: one pipeline of HINCRBY, SADD and XADD per event.

    The day is ``time.strftime("%Y-%m-%d")``: the app server's local date, now.

    Defects:

    - A1: local time and ingest time decide the day: an event is counted under the day the
      server's time zone says it arrived, not the UTC day it happened.
    - A2: an exact SET of user ids per day: memory grows with the number of users.
    - A3: ``events:stream`` has no MAXLEN: it grows forever.
    - A4: the day keys have no TTL: they pile up forever.
    - A5: the three keys hash to different slots, so on a cluster the (transactional)
      pipeline fails.
    """

    def __init__(self, r: Any, *, prefix: str = "") -> None:
        self.redis = r
        self.prefix = prefix

    def track_event(
        self, event_type: str, user_id: Any, properties: dict[str, Any] | None = None
    ) -> None:
        day = time.strftime("%Y-%m-%d")
        pipe = self.redis.pipeline(transaction=True)
        pipe.hincrby(f"{self.prefix}analytics:events:{day}", event_type, 1)
        pipe.sadd(f"{self.prefix}analytics:users:{day}", user_id)
        pipe.xadd(
            f"{self.prefix}events:stream",
            {
                "type": event_type,
                "user_id": user_id,
                "properties": json.dumps(properties or {}),
                "timestamp": time.time(),
            },
        )
        pipe.execute()

    def get_daily_stats(self, date: str | None = None) -> dict[str, Any]:
        day = date or time.strftime("%Y-%m-%d")
        events = self.redis.hgetall(f"{self.prefix}analytics:events:{day}")
        unique_users = self.redis.scard(f"{self.prefix}analytics:users:{day}")
        return {"date": day, "events": events, "unique_users": unique_users}


class Leaderboard:
    """The article's leaderboard: one ZSET ``leaderboard:<name>``.

    Defects:

    - B1: ``get_rank``'s default is ZRANK: 0-based from the bottom, so the leader of N
      players is rank N-1.
    - B2: tied players get different ranks (ZSET order breaks ties by member name).
    - B3: ``get_percentile`` is ZREVRANK / ZCARD * 100: the leader's percentile is 0
      (inverted), and it takes two round trips.
    """

    def __init__(self, r: Any, name: str, *, prefix: str = "") -> None:
        self.redis = r
        self.key = f"{prefix}leaderboard:{name}"

    def add_score(self, member: str, score: float) -> Any:
        return self.redis.zadd(self.key, {member: score})

    def increment_score(self, member: str, amount: float) -> Any:
        return self.redis.zincrby(self.key, amount, member)

    def get_rank(self, member: str, reverse: bool = False) -> Any:
        if reverse:
            return self.redis.zrevrank(self.key, member)
        return self.redis.zrank(self.key, member)

    def get_top(self, count: int = 10) -> Any:
        return self.redis.zrevrange(self.key, 0, count - 1, withscores=True)

    def get_around_me(self, member: str, count: int = 5) -> Any:
        rank = self.redis.zrevrank(self.key, member)
        if rank is None:
            return []
        start = max(0, rank - count)
        return self.redis.zrevrange(self.key, start, rank + count, withscores=True)

    def get_percentile(self, member: str) -> float | None:
        rank = self.redis.zrevrank(self.key, member)
        if rank is None:
            return None
        total = self.redis.zcard(self.key)
        return float(rank) / total * 100


class FeatureFlags:
    """The article's flags: ``feature:<name>`` = "1", and a SET ``feature:<name>:users``.

    Defects:

    - G1: ``is_enabled`` compares GET's reply with the str ``"1"``: on a client without
      ``decode_responses`` the reply is ``b"1"`` and the flag is never on.
    - G2: ``disable`` deletes the global key only: every per-user enablement stays on (the
      kill switch does not kill).
    - G3: ``is_enabled_for_user`` makes two round trips (GET, then SISMEMBER).
    - G4: the percentage rollout readers add, ``random() * 100 < percentage``, gives one
      user a different answer on each request.
    """

    def __init__(self, r: Any, *, prefix: str = "") -> None:
        self.redis = r
        self.prefix = prefix

    def _key(self, name: str) -> str:
        return f"{self.prefix}feature:{name}"

    def enable(self, name: str) -> None:
        self.redis.set(self._key(name), "1")

    def disable(self, name: str) -> None:
        self.redis.delete(self._key(name))

    def is_enabled(self, name: str) -> bool:
        return bool(self.redis.get(self._key(name)) == "1")

    def enable_for_user(self, name: str, user_id: Any) -> None:
        self.redis.sadd(f"{self._key(name)}:users", user_id)

    def is_enabled_for_user(self, name: str, user_id: Any) -> bool:
        if self.is_enabled(name):
            return True
        return bool(self.redis.sismember(f"{self._key(name)}:users", user_id))

    def is_enabled_for_percentage(self, name: str, user_id: Any, percentage: float) -> bool:
        # As readers write it: a fresh random draw per call, nothing tied to user_id (G4).
        return random.random() * 100 < percentage


# Kept importable for readers who look for it next to RedisPubSub: the article starts the
# subscriber this way (a daemon thread, nothing watching it).
def start_subscriber(
    pubsub: RedisPubSub, channel: str, handler: Callable[[Any], Any]
) -> threading.Thread:
    """The article's wiring: ``subscribe(channel, handler)`` in a daemon thread (see P1..P3)."""
    thread = threading.Thread(target=pubsub.subscribe, args=(channel, handler), daemon=True)
    thread.start()
    return thread
