"""Experiment drivers for notebook 03 (pub/sub): the article's subscriber run live until each
of its defects P1..P5 shows with a number beside labkit's, a TCP proxy that fails the way a
network does, and the cluster and keyspace-notification measurements.

    rows = [p1_star_taken_literally(r, prefix), p2_pattern_misses_names(r, prefix), ...]

Every ``p*`` function returns one row (a dict) for the defect table: ``defect``, ``counted``
(what the number is), ``naive`` and ``labkit`` (the same count on the same workload) and
``labkit uses`` (which labkit tool gave the labkit number). The naive listener has no stop:
a non-JSON message ends it (defect P3, used on purpose), which is how every naive thread
started here is ended; the exceptions that end them are collected, not printed.

The pattern itself is ``labkit.pubsub``; nothing here is needed to use it.
"""

from __future__ import annotations

import gc
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from functools import partial
from typing import Any

import numpy as np
import redis

from labkit import naive
from labkit.pubsub import HandlerError, Message, PubSub
from labkit.server import RedisServer
from labkit.streams import StreamQueue


def wait_for(condition: Callable[[], bool], timeout: float = 10.0, poll: float = 0.005) -> bool:
    """Poll ``condition()`` until it holds or ``timeout`` seconds pass; return whether it held."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(poll)
    return True


class Inbox:
    """A thread-safe list a handler appends to."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self._lock = threading.Lock()

    def __call__(self, item: Any) -> None:
        with self._lock:
            self.items.append(item)

    def has(self, item: Any) -> bool:
        with self._lock:
            return item in self.items

    def count(self, predicate: Callable[[Any], bool] = lambda _: True) -> int:
        with self._lock:
            return sum(1 for item in self.items if predicate(item))


@contextmanager
def thread_deaths() -> Iterator[list[str]]:
    """Collect the names of the exceptions that end threads inside the block instead of
    printing them.

    Nothing but ``threading.excepthook`` ever hears of a naive listener's death; this is
    where the notebook counts them."""
    seen: list[str] = []
    previous = threading.excepthook

    def hook(args: threading.ExceptHookArgs) -> None:
        # keep only the exception's name: holding the exception would keep the dead
        # listener's frames, and with them its PubSub and connection, alive (the default
        # hook prints and drops it, so the article's app keeps nothing either)
        seen.append(args.exc_type.__name__)

    threading.excepthook = hook
    try:
        yield seen
    finally:
        threading.excepthook = previous


def _is_data(item: Any) -> bool:
    return isinstance(item, dict)


def _handshake(pub: naive.RedisPubSub, channel: str, inbox: Inbox, tag: str) -> bool:
    """Publish ``tag`` on ``channel`` until the naive subscriber has it (it is subscribed)."""
    return wait_for(lambda: pub.publish(channel, tag) >= 0 and inbox.has(tag), timeout=10)


def _end_naive(r: Any, channel: str, thread: threading.Thread) -> None:
    """End a naive listener the only way it ends: a message that is not JSON (P3)."""
    wait_for(lambda: r.publish(channel, "not json") >= 0 and not thread.is_alive(), timeout=10)


def _settle(count: Callable[[], int], expected: int, timeout: float = 5.0) -> int:
    """``count()`` once it reaches ``expected`` or ``timeout`` passed (a loaded machine)."""
    wait_for(lambda: count() >= expected, timeout=timeout)
    return count()


def _row(defect: str, counted: str, naive_n: int | str, labkit_n: int, uses: str) -> dict[str, Any]:
    return {"defect": defect, "counted": counted, "naive": naive_n, "labkit": labkit_n,
            "labkit uses": uses}


def p1_star_taken_literally(r: Any, prefix: str, n: int = 20) -> dict[str, Any]:
    """P1: the article's ``subscribe("notifications:*")`` while ``n`` messages go to
    ``notifications:<id>``, the channels the ``*`` was meant to cover; labkit's
    ``psubscribe`` of the same pattern on the same messages."""
    pub = naive.RedisPubSub(r, prefix=prefix)
    inbox = Inbox()
    with thread_deaths():
        thread = naive.start_subscriber(pub, "notifications:*", inbox)
        _handshake(pub, "notifications:*", inbox, "ready")  # only the literal name reaches it
        got = Inbox()
        with PubSub(r, prefix=prefix).psubscribe("notifications:*", got):
            for i in range(n):
                pub.publish(f"notifications:{i}", {"n": i})
            labkit_n = _settle(got.count, n)
        _handshake(pub, "notifications:*", inbox, "done")  # every message before it arrived
        naive_n = inbox.count(_is_data)
        _end_naive(r, prefix + "notifications:*", thread)
    return _row("P1", f"messages on notifications:<id> delivered (of {n})", naive_n, labkit_n,
                "PubSub.psubscribe('notifications:*')")


def p2_pattern_misses_names(r: Any, prefix: str, n: int = 20) -> dict[str, Any]:
    """P2: even ``pattern_subscribe("notifications:*")`` hears none of the ``n`` messages the
    article's senders publish to ``user:<id>:notifications``; labkit subscribes with the
    pattern that matches the publishers' names."""
    pub = naive.RedisPubSub(r, prefix=prefix)
    inbox = Inbox()
    with thread_deaths():
        thread = threading.Thread(
            target=pub.pattern_subscribe, args=("notifications:*", inbox), daemon=True
        )
        thread.start()
        _handshake(pub, "notifications:ready", inbox, "ready")
        got = Inbox()
        with PubSub(r, prefix=prefix).psubscribe("user:*:notifications", got):
            for i in range(n):
                pub.publish(f"user:{i}:notifications", {"n": i})
            labkit_n = _settle(got.count, n)
        _handshake(pub, "notifications:done", inbox, "done")
        naive_n = inbox.count(_is_data)
        _end_naive(r, prefix + "notifications:stop", thread)
    return _row("P2", f"messages on user:<id>:notifications delivered (of {n})", naive_n,
                labkit_n, "PubSub.psubscribe('user:*:notifications')")


POISONS = ("handler raises", "not JSON", "not UTF-8")
NO_COUNTER = "n/a (no counter)"


def _is_dead(thread: threading.Thread) -> bool:
    return not thread.is_alive()


def _is_message(item: Any) -> bool:
    return isinstance(item, Message)


def _failing(inbox: Inbox) -> Callable[[Any], None]:
    """A handler that raises on the message "handler raises" and keeps everything else."""

    def handler(message: Any) -> None:
        if message == "handler raises" or getattr(message, "data", None) == "handler raises":
            raise RuntimeError("the handler failed on one message")
        inbox(message)

    return handler


def _send_poison(r: Any, channel: str, poison: str) -> None:
    if poison == "handler raises":
        r.publish(channel, '"handler raises"')  # valid JSON; the handler raises on it
    elif poison == "not JSON":
        r.publish(channel, "not json")
    else:
        kwargs = {**r.connection_pool.connection_kwargs, "decode_responses": False}
        raw = redis.Redis(connection_pool=redis.ConnectionPool(**kwargs))
        try:
            raw.publish(channel, b"\xff\xfe not utf-8")
        finally:
            raw.close()
            raw.connection_pool.disconnect()


def p3_poison_kills_the_listener(r: Any, prefix: str, n: int = 10) -> list[dict[str, Any]]:
    """P3: one poison message (a handler that raises, a payload that is not JSON, one that is
    not UTF-8), then ``n`` good ones; how many good ones each listener handles, and how many
    failures anyone was told about. ``r`` must decode responses (``connect()`` does)."""
    pub = naive.RedisPubSub(r, prefix=prefix)
    channel = prefix + "alerts"
    rows = []
    naive_dead = labkit_dead = labkit_told = naive_void = labkit_void = 0
    for poison in POISONS:
        inbox = Inbox()
        with thread_deaths() as deaths:
            thread = naive.start_subscriber(pub, "alerts", _failing(inbox))
            _handshake(pub, "alerts", inbox, "ready")
            _send_poison(r, channel, poison)
            wait_for(partial(_is_dead, thread), timeout=5)
            # the app carries on publishing: PUBLISH's count is its only sign of trouble
            naive_void += sum(pub.publish("alerts", {"n": i}) == 0 for i in range(n))
            time.sleep(0.05)
            naive_n = inbox.count(_is_data)
            naive_dead += len(deaths)
            if thread.is_alive():  # not expected: end it anyway
                _end_naive(r, channel, thread)

        got = Inbox()
        errors: list[HandlerError] = []
        bus = PubSub(r, prefix=prefix)
        with bus.subscribe("alerts", _failing(got), on_error=errors.append) as sub:
            _send_poison(r, channel, poison)
            labkit_void += sum(bus.publish("alerts", {"n": i}) == 0 for i in range(n))
            labkit_n = _settle(partial(got.count, _is_message), n)
            labkit_dead += not sub.running
        labkit_told += len(errors)
        rows.append(_row(f"P3 ({poison})", f"later messages handled (of {n})", naive_n,
                         labkit_n, "PubSub.subscribe: reports, keeps listening"))
    rows.append(_row("P3 (dead)", f"listener threads dead after a poison (of {len(POISONS)})",
                     naive_dead, labkit_dead, "Subscription.running"))
    # the article's subscriber has no error channel (only threading.excepthook hears of a
    # death), so there is no count to show for it
    rows.append(_row("P3 (silent)", f"failures the app was told of (of {len(POISONS)})",
                     NO_COUNTER, labkit_told, "Subscription.errors / on_error"))
    rows.append(_row("P3 (void)", f"later PUBLISHes that reached no listener (of {len(POISONS) * n})",
                     naive_void, labkit_void, "PubSub.subscribe: keeps listening"))
    return rows


def p4_offline_misses_for_good(r: Any, prefix: str, n: int = 10) -> list[dict[str, Any]]:
    """P4: ``n`` messages published while the subscriber is offline, then it comes back.
    labkit.pubsub loses them too (at most once is the pattern); a stream consumer group
    (labkit.streams, notebook 04) delivers them when the consumer returns."""
    pub = naive.RedisPubSub(r, prefix=prefix)
    said = sum(pub.publish("orders", {"n": i}) for i in range(n))  # nobody listening
    inbox = Inbox()
    with thread_deaths():
        thread = naive.start_subscriber(pub, "orders", inbox)
        _handshake(pub, "orders", inbox, "ready")
        naive_n = inbox.count(_is_data)
        _end_naive(r, prefix + "orders", thread)
    bus = PubSub(r, prefix=prefix)
    for i in range(n):
        bus.publish("orders", {"n": i})
    got = Inbox()
    with bus.subscribe("orders", got):
        bus.publish("orders", {"n": "ready"})
        _settle(got.count, 1)
        pubsub_n = got.count(lambda m: m.data != {"n": "ready"})
    stream = StreamQueue(r, prefix + "orders-stream", "phones")
    stream.setup()  # the group exists while its consumer is offline
    stream.add_many({"n": i} for i in range(n))
    streams_n = len(stream.consume("phone-1", count=n))
    for key in (stream.stream, stream.dead):
        r.delete(key)
    assert said == 0
    return [
        _row("P4", f"messages sent while offline, received later (of {n})", naive_n, pubsub_n,
             "PubSub: at most once, lost too"),
        _row("P4 (fix)", f"messages sent while offline, received later (of {n})", naive_n,
             streams_n, "streams.StreamQueue (notebook 04)"),
    ]


def slow_subscriber(
    variant: str, *, n: int = 10_000, pad: int = 1000, limit: str = "pubsub 256kb 0 0"
) -> dict[str, Any]:
    """P5 on a private server with ``client-output-buffer-limit`` ``limit``: a subscriber
    whose processing stalls on the first message until the publisher has sent ``n``
    messages of ``pad`` bytes (pipelined, 100 per round trip).

    ``variant``: ``"naive"`` (the article's subscriber, the handler stalls), ``"labkit"``
    (PubSub, the same stalling handler) or ``"hand-off"`` (PubSub whose handler only puts
    the message on a local queue; a worker thread does the stalling work, so the socket is
    read at the speed it arrives). Returns per message the receivers PUBLISH reported and
    the set that reached the handler, the subscription's counters (``"n/a (no counter)"`` for
    the article's) and ``disconnections``: how many subscriber connections the server closed
    (their ids gone from ``CLIENT LIST`` afterwards; counted the same way for all three)."""
    if variant not in ("naive", "labkit", "hand-off"):
        raise ValueError(f"variant must be 'naive', 'labkit' or 'hand-off', got {variant!r}")
    done = threading.Event()
    arrived: set[int] = set()
    lock = threading.Lock()

    def work(seq: int) -> None:
        if seq == 0:
            done.wait(30)  # stuck on one message (a slow database call) while the publisher runs
        with lock:
            arrived.add(seq)

    payload = "x" * pad
    out: dict[str, Any] = {"variant": variant}
    with RedisServer(client_output_buffer_limit=limit) as server:
        r = server.client()
        receivers: list[int] = []
        try:
            with thread_deaths() as deaths:
                if variant == "naive":
                    pub = naive.RedisPubSub(r)
                    inbox = Inbox()

                    def stall(message: Any) -> None:
                        inbox(message)
                        if isinstance(message, dict):
                            work(message["seq"])

                    thread = naive.start_subscriber(pub, "feed", stall)
                    _handshake(pub, "feed", inbox, "ready")
                    sub = None
                else:
                    jobs: queue.Queue[int] = queue.Queue()
                    if variant == "hand-off":
                        def drain() -> None:
                            for _ in range(n):
                                work(jobs.get())

                        worker = threading.Thread(target=drain, daemon=True)
                        worker.start()
                    handle: Callable[[Message], object] = (
                        (lambda m: jobs.put(m.data["seq"])) if variant == "hand-off"
                        else (lambda m: work(m.data["seq"]))
                    )
                    sub = PubSub(r).subscribe("feed", handle)
                wait_for(lambda: bool(_subscriber_ids(r)), timeout=10)
                subscribed = _subscriber_ids(r)
                t0 = time.monotonic()
                for start in range(0, n, 100):
                    pipe = r.pipeline(transaction=False)
                    for seq in range(start, min(start + 100, n)):
                        pipe.publish("feed", f'{{"seq":{seq},"pad":"{payload}"}}')
                    receivers += pipe.execute()
                out["publish_s"] = time.monotonic() - t0
                done.set()
                # what can still arrive: the socket's bytes, then EOF (or all of it)
                _until_still(lambda: len(arrived), n)
                # the server's side: subscriber connections it closed (a redis-py reconnect
                # comes back with a new client id)
                out["disconnections"] = len(subscribed - _subscriber_ids(r))
                # what ended a listener, before the rig ends the naive one on purpose
                out["thread_deaths"] = list(deaths)
                if sub is not None:
                    out["reconnects"] = sub.reconnects
                    out["disconnects"] = len(sub.disconnects)
                    sub.stop()
                else:
                    # the article's subscriber counts nothing: no number to show
                    out["reconnects"] = out["disconnects"] = NO_COUNTER
                    # subscribed again? (redis-py reconnects a pub/sub connection by itself)
                    out["listening_after"] = thread.is_alive() and _handshake(
                        pub, "feed", inbox, "after"
                    )
                    if thread.is_alive():
                        _end_naive(r, "feed", thread)
        finally:
            done.set()
            r.close()
    with lock:
        out["arrived"] = set(arrived)
    out["receivers"] = receivers
    out["n"] = n
    return out


def _subscriber_ids(r: Any) -> set[int]:
    """Ids of the server's pub/sub subscriber connections (``CLIENT LIST`` flag ``P``)."""
    return {int(c["id"]) for c in r.client_list() if "P" in c["flags"]}


def _until_still(count: Callable[[], int], expected: int, quiet: float = 0.3) -> None:
    """Wait until ``count()`` reaches ``expected`` or stops growing for ``quiet`` seconds."""
    last, since = -1, time.monotonic()
    deadline = since + 10
    while time.monotonic() < deadline:
        now = count()
        if now >= expected:
            return
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since > quiet:
            return
        time.sleep(0.01)


def p5_row(naive_run: dict[str, Any], labkit_run: dict[str, Any]) -> dict[str, Any]:
    n = naive_run["n"]
    return _row("P5", f"messages delivered to a stalled subscriber (of {n})",
                len(naive_run["arrived"]), len(labkit_run["arrived"]),
                "PubSub, handler hands off to a local queue")


class FlakyProxy:
    """A TCP proxy in front of a Redis server that fails the way a network does.

    ``blackhole()``: bytes from the server to the client are read and thrown away, so the
    server's socket drains and it keeps counting the subscriber as a receiver, while the
    client hears nothing (a phone in a tunnel; a NAT entry that expired). ``drop()``: every
    current connection is closed on both sides (the TCP connection finally times out) and
    the proxy passes traffic again, so a client that reconnects gets through.
    """

    def __init__(self, host: str, port: int) -> None:
        self.upstream = (host, port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.host, self.port = self._listener.getsockname()[:2]
        self._blackhole = threading.Event()
        self._closing = threading.Event()
        self._lock = threading.Lock()
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self.discarded = 0  # bytes thrown away while blackholed
        threading.Thread(target=self._accept, name="flaky-proxy", daemon=True).start()

    def _accept(self) -> None:
        while not self._closing.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            with self._lock:
                self._pairs.append((client, server))
            threading.Thread(target=self._pump, args=(client, server, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, True), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, downstream: bool) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if downstream and self._blackhole.is_set():
                    self.discarded += len(data)
                    continue
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()

    def blackhole(self) -> None:
        self._blackhole.set()

    def drop(self) -> None:
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            for s in pair:
                with suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
        self._blackhole.clear()

    def close(self) -> None:
        self._closing.set()
        self._listener.close()
        self.drop()

    def __enter__(self) -> FlakyProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _holds(received: dict[int, float], n: int) -> bool:
    return len(received) >= n


def run_outage(
    r: Any,
    prefix: str,
    mode: str,
    *,
    rate: float = 250.0,
    duration: float = 2.0,
    down_at: float = 0.6,
    up_at: float = 1.4,
    progress: Callable[[Any], Any] = iter,
) -> list[tuple[int, float, int, bool]]:
    """A publisher sends ``rate`` numbered messages a second for ``duration`` s on ``ticks``;
    a labkit subscriber connected through a :class:`FlakyProxy` is out between ``down_at``
    and ``up_at`` s. ``mode="unsubscribe"``: it unsubscribes cleanly and subscribes again.
    ``mode="blackhole"``: the network stops delivering (the server still counts it), then at
    ``up_at`` the connection drops and redis-py reconnects and re-subscribes by itself.

    Returns ``(seq, sent at s, receivers PUBLISH reported, arrived)`` per message.
    ``r`` must be a single-node client; ``progress`` wraps the publish loop (tqdm)."""
    if mode not in ("unsubscribe", "blackhole"):
        raise ValueError(f"mode must be 'unsubscribe' or 'blackhole', got {mode!r}")
    kwargs = dict(r.connection_pool.connection_kwargs)
    received: dict[int, float] = {}

    def on_tick(message: Message) -> None:
        received[message.data["seq"]] = time.perf_counter()

    bus = PubSub(r, prefix=prefix)
    sent: list[tuple[int, float, int]] = []
    with FlakyProxy(kwargs["host"], kwargs["port"]) as proxy:
        kwargs.update(host=proxy.host, port=proxy.port)
        client = redis.Redis(connection_pool=redis.ConnectionPool(**kwargs))
        sub = PubSub(client, prefix=prefix).subscribe("ticks", on_tick)
        phase = "before"
        t0 = time.perf_counter()
        try:
            for seq in progress(range(int(rate * duration))):
                if seq == 0:  # the clock starts at the first message, whatever set-up took
                    t0 = time.perf_counter()
                time.sleep(max(0.0, t0 + seq / rate - time.perf_counter()))
                t = time.perf_counter() - t0
                if phase == "before" and t >= down_at:
                    wait_for(partial(_holds, received, seq))  # caught up; now it goes away
                    if mode == "unsubscribe":
                        sub.stop()
                    else:
                        proxy.blackhole()
                    phase = "out"
                elif phase == "out" and t >= up_at:
                    if mode == "unsubscribe":
                        sub = PubSub(client, prefix=prefix).subscribe("ticks", on_tick)
                    else:
                        proxy.drop()
                    phase = "after"
                sent.append((seq, t, bus.publish("ticks", {"seq": seq})))
            last = sent[-1][0]
            wait_for(lambda: last in received, timeout=5)
        finally:
            sub.stop()
            client.close()
            client.connection_pool.disconnect()
    return [(seq, t, n, seq in received) for seq, t, n in sent]


def node_local_counts(cluster: Any, channel: str, n: int = 20) -> list[dict[str, Any]]:
    """On a ``LocalCluster``: one subscriber on the first node; ``n`` PUBLISHes through each
    node in turn. Per node, what PUBLISH returned (summed) and what the subscriber got."""
    nodes = [node.client() for node in cluster.primaries]
    inbox = Inbox()
    sub = nodes[0].pubsub()
    sub.subscribe(**{channel: lambda m: inbox(m["data"])})
    reader = sub.run_in_thread(sleep_time=0.01, daemon=True)
    try:
        wait_for(lambda: nodes[0].pubsub_numsub(channel)[0][1] == 1)
        rows = []
        for i, node in enumerate(nodes):
            before = inbox.count()
            said = sum(int(node.publish(channel, f"{i}:{k}")) for k in range(n))
            got = _settle(inbox.count, before + n) - before
            rows.append({"published through": f"node {i}" + (" (subscriber's)" if i == 0 else ""),
                         "PUBLISH returned (sum)": said, "delivered": got})
    finally:
        reader.stop()
        reader.join(5)
        sub.close()
        for node in nodes:
            node.close()
    return rows


def _patterns_on(rc: Any) -> int:
    """Pattern subscriptions on all the cluster's primaries (PUBSUB NUMPAT is node-local)."""
    return sum(int(node.redis_connection.pubsub_numpat()) for node in rc.get_primaries())


def cluster_pattern_counts(rc: Any, prefix: str, n: int = 20) -> list[dict[str, Any]]:
    """On a cluster client ``rc``: the article's ``pattern_subscribe("user:*:notifications")``
    and labkit's ``psubscribe`` of the same pattern, while ``n`` messages go to
    ``user:<i>:notifications`` (channels in different slots). redis-py sends the pattern
    subscription to the node owning the pattern's slot and each PUBLISH to the node owning
    its channel's slot, so the naive count covers only the PUBLISHes that happened to land on
    the subscriber's node; labkit sends both through one node. Per subscriber: what PUBLISH
    returned (summed) and what it delivered."""
    pattern = "user:*:notifications"
    rows = []
    pub = naive.RedisPubSub(rc, prefix=prefix)
    inbox = Inbox()
    with thread_deaths():
        thread = threading.Thread(target=pub.pattern_subscribe, args=(pattern, inbox), daemon=True)
        thread.start()
        _handshake(pub, "user:ready:notifications", inbox, "ready")
        said = sum(pub.publish(f"user:{i}:notifications", {"n": i}) for i in range(n))
        got = _settle(partial(inbox.count, _is_data), n)
        rows.append({"subscriber": "article's pattern_subscribe", "PUBLISH returned (sum)": said,
                     "delivered": got})
        _end_naive(rc, prefix + "user:end:notifications", thread)
    # the dead listener's PubSub sits in a reference cycle until the collector runs; until
    # then its connection stays subscribed and would be counted beside labkit's
    gc.collect()
    wait_for(lambda: _patterns_on(rc) == 0, timeout=5)
    bus, labkit_inbox = PubSub(rc, prefix=prefix), Inbox()
    with bus.psubscribe(pattern, labkit_inbox):
        said = sum(bus.publish(f"user:{i}:notifications", {"n": i}) for i in range(n))
        got = _settle(labkit_inbox.count, n)
    rows.append({"subscriber": "labkit PubSub.psubscribe", "PUBLISH returned (sum)": said,
                 "delivered": got})
    return rows


def _bus_sent(cluster: Any) -> dict[str, int]:
    """Cluster-bus messages of each pub/sub kind sent, summed over the nodes."""
    totals = {"publish": 0, "publishshard": 0}
    for node in cluster.nodes:
        client = node.client()
        info = str(client.execute_command("CLUSTER", "INFO"))
        client.close()
        for line in info.splitlines():
            for kind in totals:
                if line.startswith(f"cluster_stats_messages_{kind}_sent:"):
                    totals[kind] += int(line.split(":")[1])
    return totals


def _drain(read: Callable[..., Any], inbox: Inbox, n: int, timeout: float = 5.0) -> None:
    """Read messages with ``read`` (``get_message`` or ``get_sharded_message``) into ``inbox``
    until it holds ``n`` or ``timeout`` seconds have passed."""
    deadline = time.monotonic() + timeout
    while inbox.count() < n and time.monotonic() < deadline:
        msg = read(ignore_subscribe_messages=True, timeout=0.05)
        if msg is not None:
            inbox(msg["data"])


def sharded_vs_global(cluster: Any, rc: Any, channel: str, n: int = 50) -> list[dict[str, Any]]:
    """``n`` messages with PUBLISH (a SUBSCRIBE on the first node) and ``n`` with SPUBLISH (an
    SSUBSCRIBE, which redis-py's cluster client sends to the shard owning the channel's
    slot): receivers PUBLISH/SPUBLISH reported, messages delivered, and cluster-bus
    messages the cluster sent for them (CLUSTER INFO, summed over the nodes)."""
    rows = []
    # PUBLISH through a node other than the subscriber's: the message crosses the bus
    first = cluster.primaries[0].client()
    other = cluster.primaries[1].client()
    inbox = Inbox()
    sub = first.pubsub()
    sub.subscribe(channel)
    wait_for(lambda: sub.get_message(timeout=0.1) is not None)
    before = _bus_sent(cluster)
    said = sum(int(other.publish(channel, str(k))) for k in range(n))
    _drain(sub.get_message, inbox, n)
    after = _bus_sent(cluster)
    rows.append({"kind": "PUBLISH / SUBSCRIBE", "receivers reported (sum)": said,
                 "delivered": inbox.count(),
                 "cluster-bus messages sent": after["publish"] - before["publish"]})
    sub.close()
    first.close()
    other.close()
    # SPUBLISH: the shard's primary delivers to its own subscribers (and replicas, none here)
    shard = rc.pubsub()
    shard.ssubscribe(channel)
    wait_for(lambda: shard.get_sharded_message(timeout=0.1) is not None)
    got = Inbox()
    before = _bus_sent(cluster)
    said = sum(int(rc.spublish(channel, str(k))) for k in range(n))
    _drain(shard.get_sharded_message, got, n)
    after = _bus_sent(cluster)
    rows.append({"kind": "SPUBLISH / SSUBSCRIBE", "receivers reported (sum)": said,
                 "delivered": got.count(),
                 "cluster-bus messages sent": after["publishshard"] - before["publishshard"]})
    shard.sunsubscribe(channel)
    shard.close()
    return rows


def keyspace_invalidation(
    prefix: str, *, n: int = 500, expiring: int = 50, ttl_ms: int = 50, spread_ms: int = 200
) -> dict[str, Any]:
    """Keyspace notifications as a cache-invalidation bus, on a private server with
    ``notify-keyspace-events Kg$x`` (never set on a server labkit does not own).

    A listener PSUBSCRIBEs to ``__keyspace@0__:<prefix>cache:*``; a writer alternates SET and
    DEL on ``n`` keys, timing each write to its notification. Then ``expiring`` keys are set
    with TTLs spread evenly from ``ttl_ms`` to ``ttl_ms + spread_ms`` (so their ends fall at
    every point of the server's expiry cycle, 100 ms at the default ``hz 10``): their
    ``expired`` events come when Redis expires them, measured from the TTL's end. Returns
    the counts and the latencies (seconds)."""
    events: list[tuple[str, str, float]] = []
    stop = threading.Event()
    with RedisServer(notify_keyspace_events="Kg$x") as server:
        r = server.client()
        sub = r.pubsub()
        channel_prefix = "__keyspace@0__:"
        sub.psubscribe(channel_prefix + prefix + "cache:*")
        wait_for(lambda: sub.get_message(timeout=0.1) is not None)

        def listen() -> None:
            while not stop.is_set():
                msg = sub.get_message(ignore_subscribe_messages=True, timeout=0.05)
                if msg is not None:
                    key = msg["channel"][len(channel_prefix):]
                    events.append((key, msg["data"], time.perf_counter()))

        thread = threading.Thread(target=listen, daemon=True)
        thread.start()
        writes: list[tuple[str, str, float]] = []
        try:
            for i in range(n):
                key = f"{prefix}cache:user:{i % 50}"
                op = "set" if (i // 50) % 2 == 0 else "del"
                t = time.perf_counter()
                if op == "set":
                    r.set(key, "v")
                else:
                    r.delete(key)
                writes.append((key, op, t))
            wait_for(lambda: len(events) >= n, timeout=5)
            deadline_at: list[tuple[str, float]] = []
            for i in range(expiring):
                key = f"{prefix}cache:ttl:{i}"
                ttl = ttl_ms + spread_ms * i // max(1, expiring - 1)
                t = time.perf_counter()
                r.set(key, "v", px=ttl)
                deadline_at.append((key, t + ttl / 1000))
            wait_for(lambda: sum(1 for e in events if e[1] == "expired") >= expiring, timeout=5)
        finally:
            stop.set()
            thread.join(5)
            sub.close()
            r.close()
    write_events = [e for e in events if e[1] in ("set", "del")]
    latencies = []
    pending: dict[tuple[str, str], list[float]] = {}
    for key, op, t in writes:
        pending.setdefault((key, op), []).append(t)
    for key, op, t in write_events:
        sent = pending.get((key, op))
        if sent:
            latencies.append(t - sent.pop(0))
    expired_at = {e[0]: e[2] for e in events if e[1] == "expired"}
    expiry_delays = [expired_at[k] - d for k, d in deadline_at if k in expired_at]
    return {
        "writes": n,
        "write notifications": len(latencies),
        "latency_s": np.array(latencies),
        "expiring": expiring,
        "expired notifications": len(expiry_delays),
        "expiry_delay_s": np.array(expiry_delays),
    }
