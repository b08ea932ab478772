"""labkit.streams: a consumer-group queue that delivers at least once and dead-letters."""

from __future__ import annotations

import functools
import json
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis
from helpers import bytes_client, wait_for
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.crc import key_slot

from labkit import checks
from labkit.experiments.streams import recording_handler, run_worker, start_worker_process
from labkit.keys import Namespace
from labkit.measure import counting_client
from labkit.server import address
from labkit.streams import (
    MAX_COUNT,
    MAX_FIELDS,
    GroupNotFoundError,
    Message,
    StreamQueue,
    Worker,
    stream_keys,
)
from labkit.workloads import VirtualClock

# Worker processes start slowly on a loaded machine: give them longer than the default.
wait_for = functools.partial(wait_for, timeout=10.0)


@pytest.fixture
def queue(r: Any, ns: Namespace) -> StreamQueue:
    q = StreamQueue(r, ns.key("orders"), "billing", max_deliveries=3)
    q.setup()
    return q


def url_of(r: Any) -> str:
    host, port = address(r)
    return f"redis://{host}:{port}"


# -- keys and setup ---------------------------------------------------------------------------


def test_stream_keys_share_one_hash_slot() -> None:
    assert stream_keys("lab:x:orders") == ("lab:x:{orders}", "lab:x:{orders}:dead")
    assert stream_keys("lab:x:{o}:orders") == ("lab:x:{o}:orders", "lab:x:{o}:orders:dead")
    assert stream_keys("orders") == ("{orders}", "{orders}:dead")
    for name in ("lab:x:orders", "a:{b}:c", "plain", "x:}:y"):
        main, dead = stream_keys(name)
        assert key_slot(main.encode()) == key_slot(dead.encode())
    for bad in ("x:{}:y", "x:{y", "x:}{:y"):
        with pytest.raises(ValueError, match="empty or unclosed"):
            stream_keys(bad)


def test_stream_keys_stay_under_the_namespace(queue: StreamQueue, ns: Namespace) -> None:
    queue.add({"a": "1"})
    assert queue.stream.startswith(ns.prefix) and queue.dead.startswith(ns.prefix)
    assert ns.keys() == [queue.stream]


def test_setup_creates_group_once_and_is_idempotent(r: Any, ns: Namespace) -> None:
    q = StreamQueue(r, ns.key("s"), "g")
    assert q.setup() is True
    assert q.setup() is False
    assert [g["name"] for g in r.xinfo_groups(q.stream)] == ["g"]


def test_setup_consumes_messages_added_before_it(r: Any, ns: Namespace) -> None:
    r.xadd(stream_keys(ns.key("s"))[0], {"early": "1"})
    q = StreamQueue(r, ns.key("s"), "g")
    q.setup()
    assert [m.data for m in q.consume("c")] == [{"early": "1"}]


# -- adding -------------------------------------------------------------------------------------


def test_add_stores_flat_fields_and_json(queue: StreamQueue, r: Any) -> None:
    flat = queue.add({"order_id": "17", "qty": 2, "price": 9.5})
    nested = queue.add({"items": [1, 2], "ok": True})
    scalar = queue.add("just text")
    assert r.xrange(queue.stream, flat, flat)[0][1] == {
        "order_id": "17",
        "qty": "2",
        "price": "9.5",
    }
    got = {m.id: m.data for m in queue.consume("c", count=10)}
    assert got == {
        flat: {"order_id": "17", "qty": "2", "price": "9.5"},
        nested: {"items": [1, 2], "ok": True},
        scalar: "just text",
    }


def test_add_many_is_one_round_trip(queue: StreamQueue, r: Any) -> None:
    if hasattr(r, "get_default_node"):
        pytest.skip("counting_client counts single-node connections")
    counted, counter = counting_client(r)
    q = StreamQueue(counted, queue.stream, queue.group)
    ids = q.add_many({"n": i} for i in range(100))
    assert counter.count == 1
    assert len(ids) == 100 and queue.length() == 100
    assert q.add_many([]) == []


def test_maxlen_trims_approximately(r: Any, ns: Namespace) -> None:
    q = StreamQueue(r, ns.key("capped"), "g", maxlen=100)
    q.setup()
    q.add_many({"n": i} for i in range(2000))
    assert 100 <= q.length() < 2000 * 0.5  # "~" trims whole nodes: at least maxlen kept
    unbounded = StreamQueue(r, ns.key("all"), "g")
    unbounded.add_many({"n": i} for i in range(2000))
    assert unbounded.length() == 2000


# -- consuming, acking, pending --------------------------------------------------------------


def test_consume_delivers_each_new_message_once_per_group(queue: StreamQueue) -> None:
    ids = queue.add_many({"n": i} for i in range(5))
    first = queue.consume("a", count=3)
    second = queue.consume("b", count=10)
    assert [m.id for m in first + second] == ids
    assert all(m.deliveries == 1 for m in first + second)
    assert queue.consume("a") == [] and queue.consume("b") == []


def test_consume_blocks_then_returns_empty(queue: StreamQueue) -> None:
    t0 = time.monotonic()
    assert queue.consume("a", block_ms=50) == []
    assert time.monotonic() - t0 >= 0.03


def test_consume_wakes_up_when_a_message_arrives(queue: StreamQueue) -> None:
    timer = threading.Timer(0.05, lambda: queue.add({"late": "1"}))
    timer.start()
    try:
        got = queue.consume("a", block_ms=5000)
    finally:
        timer.join()
    assert [m.data for m in got] == [{"late": "1"}]


def test_ack_removes_from_pending(queue: StreamQueue) -> None:
    queue.add_many({"n": i} for i in range(4))
    a = queue.consume("a", count=3)
    queue.consume("b", count=3)
    summary = queue.pending()
    assert (summary.count, summary.consumers) == (4, {"a": 3, "b": 1})
    assert queue.ack(a[0].id, a[1].id) == 2
    assert queue.ack(a[0].id) == 0  # acking twice is harmless
    assert queue.ack() == 0
    assert queue.pending().consumers == {"a": 1, "b": 1}


def test_register_makes_a_consumer_visible_before_it_reads(queue: StreamQueue, r: Any) -> None:
    assert queue.register("w") is True
    assert queue.register("w") is False
    assert [c["name"] for c in r.xinfo_consumers(queue.stream, queue.group)] == ["w"]


def test_pending_is_empty_for_a_fresh_group(queue: StreamQueue) -> None:
    summary = queue.pending()
    assert (summary.count, summary.lowest, summary.highest, summary.consumers) == (
        0,
        None,
        None,
        {},
    )


# -- recovery, claiming, dead letters --------------------------------------------------------


def test_recover_redelivers_own_pending_with_count(queue: StreamQueue) -> None:
    ids = queue.add_many({"n": i} for i in range(3))
    queue.consume("a", count=3)
    again = queue.recover("a")
    assert [(m.id, m.deliveries) for m in again] == [(i, 2) for i in ids]
    assert queue.recover("someone-else") == []
    assert queue.pending().consumers == {"a": 3}


def test_claim_stale_takes_only_idle_messages(queue: StreamQueue) -> None:
    ids = queue.add_many({"n": i} for i in range(3))
    queue.consume("dead-worker", count=3)
    assert queue.claim_stale("survivor", min_idle_ms=60_000) == []
    time.sleep(0.02)
    claimed = queue.claim_stale("survivor", min_idle_ms=10, count=2)
    assert [(m.id, m.deliveries) for m in claimed] == [(ids[0], 2), (ids[1], 2)]
    assert queue.pending().consumers == {"dead-worker": 1, "survivor": 2}


def test_claim_dead_letters_after_max_deliveries(queue: StreamQueue) -> None:
    (mid,) = queue.add_many([{"poison": "1"}])
    queue.consume("a")  # delivery 1
    assert [m.deliveries for m in queue.claim_stale("b", 0)] == [2]
    assert [m.deliveries for m in queue.recover("b")] == [3]
    assert queue.claim_stale("c", 0) == []  # delivered 3 times: dead-lettered instead
    assert queue.pending().count == 0
    (dead,) = queue.dead_letters()
    assert (dead.origin_id, dead.deliveries, dead.data) == (mid, 3, {"poison": "1"})
    assert "3 deliveries" in dead.error


def test_dead_letter_moves_and_acks_only_for_the_owner(queue: StreamQueue) -> None:
    (mid,) = queue.add_many([{"order_id": "9"}])
    queue.consume("a")
    assert queue.dead_letter(mid, "not-the-owner", "nope") is False
    assert queue.dead_letter(mid, "a", "ValueError: bad order") is True
    assert queue.dead_letter(mid, "a", "again") is False
    assert queue.pending().count == 0
    (dead,) = queue.dead_letters()
    assert (dead.origin_id, dead.deliveries, dead.error, dead.consumer) == (
        mid,
        1,
        "ValueError: bad order",
        "a",
    )
    assert dead.fields == {"order_id": "9"}


def test_trimmed_pending_entries_are_dropped_not_redelivered(queue: StreamQueue, r: Any) -> None:
    ids = queue.add_many({"n": i} for i in range(3))
    queue.consume("a", count=3)
    r.xdel(queue.stream, ids[0])
    assert [m.id for m in queue.recover("a")] == ids[1:]
    assert queue.pending().count == 2


def test_queue_works_with_a_client_that_does_not_decode(r: Any, ns: Namespace) -> None:
    raw = bytes_client(r)
    try:
        q = StreamQueue(raw, ns.key("raw"), "g", max_deliveries=2)
        q.setup()
        first = q.add({"a": "1"})
        ids = q.add_many([{"b": 2}, ["json", 1]])
        assert all(isinstance(i, str) and not i.startswith("b'") for i in [first, *ids])
        got = q.consume("c1", count=10)
        assert [(m.id, m.data) for m in got] == [
            (first, {"a": "1"}),
            (ids[0], {"b": "2"}),
            (ids[1], ["json", 1]),
        ]
        assert q.ack(first) == 1
        summary = q.pending()
        assert (summary.count, summary.lowest, summary.highest) == (2, ids[0], ids[1])
        assert summary.consumers == {"c1": 2}
        assert [(m.id, m.deliveries) for m in q.recover("c1", count=1)] == [(ids[0], 2)]
        # c2 dead-letters ids[0] (delivered twice) and takes ids[1]; c3 dead-letters that
        assert [m.id for m in q.claim_stale("c2", 0)] == [ids[1]]
        assert q.claim_stale("c3", 0) == []
        dead = q.dead_letters()
        assert [(d.origin_id, d.consumer, d.data) for d in dead] == [
            (ids[0], "c2", {"b": "2"}),
            (ids[1], "c3", ["json", 1]),
        ]
        assert all(isinstance(d.id, str) and not d.id.startswith("b'") for d in dead)
    finally:
        raw.close()


def test_worker_works_with_a_client_that_does_not_decode(r: Any, ns: Namespace) -> None:
    raw = bytes_client(r)
    try:
        q = StreamQueue(raw, ns.key("raw"), "g")
        q.setup()
        ids = q.add_many({"n": i} for i in range(7))
        q.consume("w", count=5)  # a previous run of "w" died holding five
        seen: list[str] = []
        stats = Worker(
            q, "w", lambda m: seen.append(m.id), count=2, block_ms=10, exit_when_idle=True
        ).run()
        assert sorted(seen) == sorted(ids) and len(seen) == 7
        assert (stats.recovered, stats.processed) == (5, 7)  # recovered in pages of two
        assert q.pending().count == 0
    finally:
        raw.close()


# -- the worker loop -------------------------------------------------------------------------


def test_worker_acks_successes(queue: StreamQueue, ns: Namespace, r: Any) -> None:
    ids = queue.add_many({"n": i} for i in range(25))
    handler = recording_handler(r, ns.key("seen"))
    stats = Worker(queue, "w", handler, count=10, block_ms=10, exit_when_idle=True).run()
    assert (stats.processed, stats.failed, stats.batches) == (25, 0, 3)
    assert r.hgetall(ns.key("seen")) == {i: "1" for i in ids}
    assert queue.pending().count == 0


def test_worker_retries_failure_then_succeeds(queue: StreamQueue) -> None:
    queue.add({"flaky": "1"})
    calls: list[int] = []

    def flaky(m: Message) -> None:
        calls.append(m.deliveries)
        if m.deliveries < 2:
            raise RuntimeError("transient")

    stats = Worker(
        queue, "w", flaky, block_ms=10, min_idle_ms=0, claim_every_s=0, exit_when_idle=True
    ).run()
    assert calls == [1, 2]
    assert (stats.processed, stats.failed, stats.claimed) == (1, 1, 1)
    assert queue.pending().count == 0 and queue.dead_letters() == []


def test_worker_dead_letters_poison_after_exactly_max_deliveries(
    queue: StreamQueue, ns: Namespace, r: Any
) -> None:
    ids = queue.add_many([{"n": "1"}, {"n": "2", "poison": "1"}, {"n": "3"}])
    handler = recording_handler(r, ns.key("seen"), fail_field="poison")
    stats = Worker(
        queue, "w", handler, block_ms=10, min_idle_ms=0, claim_every_s=0, exit_when_idle=True
    ).run()
    assert r.hgetall(ns.key("seen")) == {ids[0]: "1", ids[1]: "3", ids[2]: "1"}
    assert (stats.processed, stats.failed, stats.dead_lettered) == (2, 3, 1)
    (dead,) = queue.dead_letters()
    assert (dead.origin_id, dead.deliveries) == (ids[1], queue.max_deliveries)
    assert dead.error == f"ValueError: poison message {ids[1]}"
    assert queue.pending().count == 0


def test_worker_recovers_own_pending_first(queue: StreamQueue) -> None:
    old = queue.add_many([{"n": "old"}])
    queue.consume("w")  # a previous life of "w" read it and died
    new = queue.add_many([{"n": "new"}])
    order: list[tuple[str, int]] = []
    stats = Worker(
        queue, "w", lambda m: order.append((m.id, m.deliveries)), block_ms=10, exit_when_idle=True
    ).run()
    assert order == [(old[0], 2), (new[0], 1)]
    assert (stats.recovered, stats.processed) == (1, 2)


def test_worker_stop_from_another_thread_returns(queue: StreamQueue) -> None:
    worker = Worker(queue, "w", lambda m: None, block_ms=20)
    thread = threading.Thread(target=worker.run)
    thread.start()
    queue.add({"n": "1"})
    assert wait_for(lambda: worker.stats.processed == 1)
    worker.stop()
    thread.join(5)
    assert not thread.is_alive()
    assert queue.pending().count == 0


def test_worker_stop_leaves_unhandled_batch_entries_pending(queue: StreamQueue) -> None:
    queue.add_many({"n": i} for i in range(5))
    worker: Worker

    def handler(m: Message) -> None:
        worker.stop()  # stop after this message

    worker = Worker(queue, "w", handler, count=5, block_ms=10)
    stats = worker.run()
    assert stats.processed == 1
    assert queue.pending().consumers == {"w": 4}


# -- real processes ------------------------------------------------------------------------


def spawn_worker(
    r: Any,
    queue: StreamQueue,
    ns: Namespace,
    consumer: str,
    work_ms: float = 2,
    **worker_kwargs: Any,
) -> Any:
    ctx = multiprocessing.get_context("spawn")
    proc = ctx.Process(
        target=run_worker,
        args=(url_of(r), queue.stream, queue.group, consumer, recording_handler),
        kwargs={
            "handler_kwargs": {"seen_key": ns.key("seen"), "work_ms": work_ms},
            "queue_kwargs": {"max_deliveries": queue.max_deliveries},
            "worker_kwargs": {"count": 20, "block_ms": 20, **worker_kwargs},
        },
    )
    proc.start()
    return proc


@pytest.fixture
def single_node(r: Any) -> None:
    if hasattr(r, "get_default_node"):
        pytest.skip("worker processes connect to one node by URL")


@pytest.mark.usefixtures("single_node")
def test_worker_process_stops_gracefully_on_sigterm(
    queue: StreamQueue, ns: Namespace, r: Any
) -> None:
    queue.add_many({"n": i} for i in range(50))
    proc = spawn_worker(r, queue, ns, "w")
    try:
        assert wait_for(lambda: r.hlen(ns.key("seen")) > 0)
        os.kill(proc.pid, signal.SIGTERM)
        proc.join(10)
        assert proc.exitcode == 0
        # whatever it handled was acked; what it did not handle is still pending for it
        seen = r.hlen(ns.key("seen"))
        pending = queue.pending().count
        assert seen + pending + len(queue.consume("other", count=100)) == 50
    finally:
        if proc.is_alive():
            proc.kill()
            proc.join()


@pytest.mark.usefixtures("single_node")
def test_sigkilled_worker_loses_nothing(queue: StreamQueue, ns: Namespace, r: Any) -> None:
    ids = queue.add_many({"n": i} for i in range(200))
    # one batch of 200 at 5 ms each: it dies long before the end of it
    victim = spawn_worker(r, queue, ns, "victim", work_ms=5, count=200)
    try:
        assert wait_for(lambda: r.hlen(ns.key("seen")) > 0)
        os.kill(victim.pid, signal.SIGKILL)
        victim.join(10)
        assert victim.exitcode == -signal.SIGKILL
    finally:
        if victim.is_alive():
            victim.kill()
            victim.join()
    held = queue.pending().consumers.get("victim", 0)
    handled = r.hlen(ns.key("seen"))
    # it died holding what it had not settled: some of it handled already, none of it lost
    assert 200 - handled <= held <= 200
    survivor = recording_handler(r, ns.key("seen"))
    stats = Worker(
        queue, "survivor", survivor, count=50, block_ms=10, min_idle_ms=50,
        claim_every_s=0.05, exit_when_idle=True,
    ).run()  # fmt: skip
    seen = r.hgetall(ns.key("seen"))
    assert set(seen) == set(ids)  # lost: 0
    assert stats.claimed >= held
    assert queue.pending().count == 0


# -- properties ------------------------------------------------------------------------------

# keys starting with "_" are reserved in a flat mapping (a dict of scalars)
json_keys = st.text(max_size=8).filter(lambda k: not k.startswith("_"))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(json_keys, inner, max_size=4)
    ),
    max_leaves=10,
)
payloads = st.dictionaries(
    st.text(min_size=1, max_size=10).filter(lambda k: not k.startswith("_")),
    st.text(max_size=20) | st.integers(-(10**9), 10**9),
    min_size=1,
    max_size=5,
) | json_values.filter(lambda v: v is not None and v not in ("", [], {}))


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(items=st.lists(payloads, min_size=1, max_size=8))
def test_every_payload_comes_back_as_added(r: Any, ns: Namespace, items: list[Any]) -> None:
    ns.cleanup()
    q = StreamQueue(r, ns.key("prop"), "g")
    q.setup()
    ids = q.add_many(items)
    got = q.consume("c", count=len(items))
    assert [m.id for m in got] == ids
    for item, m in zip(items, got, strict=True):
        if isinstance(item, dict) and m.fields.keys() == item.keys():
            assert m.data == {k: str(v) for k, v in item.items()}
        else:
            assert m.data == item


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    fail_times=st.lists(st.integers(0, 5), min_size=1, max_size=6),
    max_deliveries=st.integers(1, 4),
)
def test_every_message_ends_acked_or_dead_lettered_after_max_deliveries(
    r: Any, ns: Namespace, fail_times: list[int], max_deliveries: int
) -> None:
    """Message i fails its first fail_times[i] deliveries: it ends processed if it
    succeeds within max_deliveries, else dead-lettered with exactly max_deliveries."""
    ns.cleanup()
    q = StreamQueue(r, ns.key("prop"), "g", max_deliveries=max_deliveries)
    q.setup()
    ids = q.add_many({"i": i} for i in range(len(fail_times)))
    fails = dict(zip(ids, fail_times, strict=True))
    calls: dict[str, int] = {}

    def handler(m: Message) -> None:
        calls[m.id] = calls.get(m.id, 0) + 1
        assert m.deliveries == calls[m.id]
        if calls[m.id] <= fails[m.id]:
            raise RuntimeError("fail")

    Worker(q, "w", handler, block_ms=5, min_idle_ms=0, claim_every_s=0, exit_when_idle=True).run()
    dead = {d.origin_id: d.deliveries for d in q.dead_letters()}
    for mid, n in fails.items():
        if n >= max_deliveries:
            assert dead[mid] == max_deliveries == calls[mid]
        else:
            assert mid not in dead and calls[mid] == n + 1
    assert q.pending().count == 0


# -- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize("empty", [None, "", {}, [], b""])
def test_add_rejects_empty_payload(queue: StreamQueue, empty: object) -> None:
    with pytest.raises(ValueError, match="data must not be empty"):
        queue.add(empty)
    with pytest.raises(ValueError, match="data must not be empty"):
        queue.add_many([{"ok": "1"}, empty])
    assert queue.length() == 0  # nothing reached Redis


@pytest.mark.parametrize("bad", [{1, 2}, object(), {"x": b"raw"}, {"x": {1, 2}}])
def test_add_rejects_non_serialisable_payload(queue: StreamQueue, bad: object) -> None:
    with pytest.raises(TypeError, match="data is not JSON-serialisable"):
        queue.add(bad)
    with pytest.raises(TypeError, match="data is not JSON-serialisable"):
        queue.add_many([{"ok": "1"}, bad])
    assert queue.length() == 0  # nothing reached Redis


@pytest.mark.parametrize(
    "bad",
    [
        float("inf"),
        {"x": float("nan")},
        {"x": "1", "y": float("-inf")},
        {"x": [float("nan")]},
        {"x": 10**5000},
        [10**5000],
        {f"f{i}": i for i in range(MAX_FIELDS + 1)},
    ],
)
def test_add_rejects_values_redis_or_json_cannot_hold(queue: StreamQueue, bad: object) -> None:
    with pytest.raises(ValueError, match="data"):
        queue.add(bad)
    with pytest.raises(ValueError, match="data"):
        queue.add_many([{"ok": "1"}, bad])
    assert queue.length() == 0  # nothing reached Redis


def test_a_flat_payload_of_max_fields_is_stored_and_dead_lettered_whole(queue: StreamQueue) -> None:
    big = {f"f{i}": i for i in range(MAX_FIELDS)}
    (mid,) = queue.add_many([big])
    queue.consume("a")
    assert queue.dead_letter(mid, "a", "too big to handle") is True
    assert queue.dead_letters()[0].data == {k: str(v) for k, v in big.items()}


def test_add_rejects_reserved_field_names(queue: StreamQueue) -> None:
    with pytest.raises(ValueError, match="reserved"):
        queue.add({"_json": "x"})


def test_unknown_group_is_a_named_error(r: Any, ns: Namespace) -> None:
    q = StreamQueue(r, ns.key("s"), "nobody")
    q.add({"a": "1"})
    for call in (
        lambda: q.consume("c"),
        q.pending,
        lambda: q.claim_stale("c", 0),
        lambda: q.recover("c"),
        lambda: q.dead_letter("0-1", "c", "x"),
        lambda: q.register("c"),
    ):
        with pytest.raises(GroupNotFoundError, match=r"group 'nobody' does not exist.*setup"):
            call()


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda q: q.consume("c", block_ms=-1), "block_ms must be between 1 and 70368744177664, got -1"),
        (lambda q: q.consume("c", block_ms=0), "block_ms must be between 1 and"),
        (lambda q: q.consume("c", count=0), "count must be between 1 and 1048576, got 0"),
        (lambda q: q.consume(""), "consumer must be a non-empty string"),
        (lambda q: q.claim_stale("c", min_idle_ms=-5), "min_idle_ms must be between 0 and"),
        (lambda q: q.claim_stale("c", 0, count=0), "count must be between 1 and"),
        (lambda q: q.recover("c", count=-1), "count must be between 1 and"),
        (lambda q: q.dead_letters(count=0), "count must be between 1 and"),
        (lambda q: q.consume("c", count=2**63), "count must be between 1 and 1048576"),
        (lambda q: q.consume("c", block_ms=2**63), "block_ms must be between 1 and"),
        (lambda q: q.claim_stale("c", 2**63), "min_idle_ms must be between 0 and"),
        (lambda q: q.ack("ok", ""), "ids must be a non-empty string"),
        (lambda q: Worker(q, "w", print, block_ms=-1), "block_ms must be between 1 and"),
        (lambda q: Worker(q, "w", print, min_idle_ms=-1), "min_idle_ms must be between 0"),
        (lambda q: Worker(q, "w", print, count=2**63), "count must be between 1 and"),
        (lambda q: Worker(q, "w", print, claim_every_s=-1), "claim_every_s must be >= 0"),
        (lambda q: Worker(q, "w", print, claim_every_s=float("nan")), "claim_every_s"),
        (lambda q: Worker(q, "w", print, claim_every_s=float("inf")), "claim_every_s"),
        (lambda q: recording_handler(q.r, "seen", work_ms=float("nan")), "work_ms"),
        (
            lambda q: start_worker_process("redis://x", q, "w", "seen", claim_every_s=float("nan")),
            "claim_every_s",
        ),
        (
            lambda q: start_worker_process("redis://x", q, "w", "seen", work_ms=float("inf")),
            "work_ms",
        ),
    ],
)
def test_out_of_range_sizes_and_times_are_rejected(
    queue: StreamQueue, call: Callable[[StreamQueue], Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        call(queue)


def test_constructor_rejects_bad_arguments(r: Any, ns: Namespace) -> None:
    with pytest.raises(ValueError, match="maxlen must be between 1 and"):
        StreamQueue(r, ns.key("s"), "g", maxlen=0)
    with pytest.raises(ValueError, match="max_deliveries must be between 1 and"):
        StreamQueue(r, ns.key("s"), "g", max_deliveries=0)
    with pytest.raises(TypeError, match="maxlen must be an int"):
        StreamQueue(r, ns.key("s"), "g", maxlen=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="group must be a non-empty string"):
        StreamQueue(r, ns.key("s"), "")
    with pytest.raises(ValueError, match="stream must not end with ':'"):
        StreamQueue(r, ns.prefix, "g")
    with pytest.raises(TypeError, match="stream must be a str"):
        StreamQueue(r, None, "g")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="queue must be a StreamQueue"):
        Worker(object(), "w", print)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="handler must be callable"):
        Worker(StreamQueue(r, ns.key("s"), "g"), "w", None)  # type: ignore[arg-type]
    assert ns.keys() == []


@pytest.mark.usefixtures("single_node")
def test_worker_process_runs_until_idle_and_prints_stats(
    queue: StreamQueue, ns: Namespace, r: Any
) -> None:
    ids = queue.add_many({"n": i} for i in range(30))
    proc = start_worker_process(
        url_of(r), queue, "cli", ns.key("seen"), block_ms=20, exit_when_idle=True
    )
    try:
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0
    assert json.loads(out)["processed"] == 30
    assert set(r.hgetall(ns.key("seen"))) == set(ids)


def test_redis_errors_other_than_nogroup_pass_through(r: Any, ns: Namespace) -> None:
    r.set(stream_keys(ns.key("notastream"))[0], "string")
    q = StreamQueue(r, ns.key("notastream"), "g")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        q.setup()


# -- bad numbers, property-tested -------------------------------------------------------------


def bad_ints(low: int, high: int) -> st.SearchStrategy[Any]:
    """Everything an int argument in [low, high] must refuse: ints just outside and far
    outside (2**63, 2**64, 10**30 and their negatives), floats (nan, inf, 1.5), bools, None,
    text."""
    extremes = [2**63, 2**64, 10**30, -(2**63) - 1, -(10**30), high + 1, low - 1]
    return st.one_of(
        st.integers(max_value=low - 1),
        st.integers(min_value=high + 1),
        st.sampled_from([x for x in extremes if not low <= x <= high]),
        st.floats(allow_nan=True, allow_infinity=True),
        st.booleans(),
        st.none(),
        st.text(max_size=3),
    )


def bad_seconds(high: float) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.floats(max_value=-1e-9),
        st.floats(min_value=high * 1.001, allow_infinity=True),
        st.sampled_from([float("nan"), float("inf"), float("-inf"), 2**63, 10**400, -1]),
        st.booleans(),
        st.none(),
        st.text(max_size=3),
    )


MS = (0, checks.MAX_MS)
BAD_NUMBERS: dict[str, tuple[str, Callable[[StreamQueue, Any], Any], st.SearchStrategy[Any]]] = {
    "StreamQueue.maxlen": (
        "maxlen",
        lambda q, v: StreamQueue(q.r, q.stream, "g", maxlen=v),
        bad_ints(1, checks.MAX_INT).filter(lambda v: v is not None),
    ),
    "StreamQueue.max_deliveries": (
        "max_deliveries",
        lambda q, v: StreamQueue(q.r, q.stream, "g", max_deliveries=v),
        bad_ints(1, checks.MAX_EXACT),
    ),
    "consume.count": ("count", lambda q, v: q.consume("c", count=v), bad_ints(1, MAX_COUNT)),
    "consume.block_ms": (
        "block_ms",
        lambda q, v: q.consume("c", block_ms=v),
        bad_ints(1, checks.MAX_MS).filter(lambda v: v is not None),
    ),
    "recover.count": ("count", lambda q, v: q.recover("c", count=v), bad_ints(1, MAX_COUNT)),
    "claim_stale.min_idle_ms": ("min_idle_ms", lambda q, v: q.claim_stale("c", v), bad_ints(*MS)),
    "claim_stale.count": (
        "count", lambda q, v: q.claim_stale("c", 0, count=v), bad_ints(1, MAX_COUNT),
    ),
    "dead_letters.count": ("count", lambda q, v: q.dead_letters(count=v), bad_ints(1, MAX_COUNT)),
    "Worker.count": ("count", lambda q, v: Worker(q, "w", print, count=v), bad_ints(1, MAX_COUNT)),
    "Worker.block_ms": (
        "block_ms", lambda q, v: Worker(q, "w", print, block_ms=v), bad_ints(1, checks.MAX_MS),
    ),
    "Worker.min_idle_ms": (
        "min_idle_ms", lambda q, v: Worker(q, "w", print, min_idle_ms=v), bad_ints(*MS),
    ),
    "Worker.claim_every_s": (
        "claim_every_s",
        lambda q, v: Worker(q, "w", print, claim_every_s=v),
        bad_seconds(checks.MAX_MS / 1000),
    ),
    "recording_handler.work_ms": (
        "work_ms",
        lambda q, v: recording_handler(q.r, "seen", work_ms=v),
        bad_seconds(checks.MAX_MS),
    ),
    "start_worker_process.count": (
        "count",
        lambda q, v: start_worker_process("redis://x", q, "w", "seen", count=v),
        bad_ints(1, MAX_COUNT),
    ),
    "start_worker_process.block_ms": (
        "block_ms",
        lambda q, v: start_worker_process("redis://x", q, "w", "seen", block_ms=v),
        bad_ints(1, checks.MAX_MS),
    ),
    "start_worker_process.claim_every_s": (
        "claim_every_s",
        lambda q, v: start_worker_process("redis://x", q, "w", "seen", claim_every_s=v),
        bad_seconds(checks.MAX_MS / 1000),
    ),
    "start_worker_process.work_ms": (
        "work_ms",
        lambda q, v: start_worker_process("redis://x", q, "w", "seen", work_ms=v),
        bad_seconds(checks.MAX_MS),
    ),
    "start_worker_process.min_idle_ms": (
        "min_idle_ms",
        lambda q, v: start_worker_process("redis://x", q, "w", "seen", min_idle_ms=v),
        bad_ints(*MS),
    ),
}  # fmt: skip


def snapshot(r: Any, ns: Namespace, queue: StreamQueue) -> tuple[Any, ...]:
    """What a call could have written: the keys, the stream, the group's consumers."""
    consumers = sorted(c["name"] for c in r.xinfo_consumers(queue.stream, queue.group))
    return (ns.keys(), queue.length(), consumers, queue.pending().count)


@pytest.mark.parametrize("target", sorted(BAD_NUMBERS))
@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_bad_numbers_are_refused_naming_the_argument_before_any_command(
    queue: StreamQueue, r: Any, ns: Namespace, target: str, data: st.DataObject
) -> None:
    arg, call, bad = BAD_NUMBERS[target]
    value = data.draw(bad, label=arg)
    before = snapshot(r, ns, queue)
    with pytest.raises((TypeError, ValueError), match=arg):
        call(queue, value)
    assert snapshot(r, ns, queue) == before


def test_the_largest_accepted_numbers_reach_redis_without_error(
    queue: StreamQueue, r: Any, ns: Namespace
) -> None:
    """The upper bounds are what Redis (and Lua's doubles) accept: no ResponseError."""
    big = StreamQueue(r, ns.key("big"), "g", maxlen=checks.MAX_INT, max_deliveries=checks.MAX_EXACT)
    big.setup()
    big.add({"n": "1"})
    assert len(big.consume("c", count=MAX_COUNT, block_ms=checks.MAX_MS)) == 1
    assert big.recover("c", count=MAX_COUNT)[0].deliveries == 2
    assert big.claim_stale("d", min_idle_ms=checks.MAX_MS, count=MAX_COUNT) == []
    assert big.claim_stale("d", min_idle_ms=0, count=MAX_COUNT)[0].deliveries == 3
    assert big.dead_letters(count=MAX_COUNT) == []


# -- regressions (issue 19) ------------------------------------------------------------------


def age(r: Any, queue: StreamQueue, consumer: str, ms: int) -> None:
    """Let ``ms`` of server time pass for ``consumer``'s pending entries, without waiting:
    XCLAIM to the same owner with ``IDLE <idle + ms>`` and JUSTID (owner and delivery count
    unchanged). A controlled clock for the idle times XAUTOCLAIM compares."""
    rows = r.xpending_range(queue.stream, queue.group, "-", "+", 1000, consumername=consumer)
    for row in rows:
        r.xclaim(
            queue.stream,
            queue.group,
            consumer,
            0,
            [row["message_id"]],
            idle=int(row["time_since_delivered"]) + ms,
            justid=True,
        )


def test_worker_acks_each_message_at_once_and_keeps_the_rest_of_its_batch_fresh(
    r: Any, ns: Namespace
) -> None:
    """Issue 19, bug 2: count=10, handlers of 50 ms (here 5 s each, of server time through
    ``age`` and of the worker's clock in lockstep) and min_idle_ms 4x that. While the worker
    is on message 7, another worker's claim_stale must find nothing: messages 1-6 are acked,
    7-10 were idle for one handler run at most. Before the fix the batch was acked only at
    its end, so all ten were 35 s idle and, with max_deliveries=1, went to the dead-letter
    stream though handled."""
    queue = StreamQueue(r, ns.key("orders"), "billing", max_deliveries=1)
    queue.setup()
    ids = queue.add_many({"n": i} for i in range(10))
    handler_ms, min_idle_ms = 5_000, 20_000
    seen: list[str] = []
    pending_at_seventh: list[int] = []
    taken: list[Message] = []

    clock = VirtualClock()

    def handler(m: Message) -> None:
        seen.append(m.id)
        age(r, queue, "w1", handler_ms)  # this handler "runs" for 5 s ...
        clock.advance(handler_ms / 1000)  # ... by the server's idle times and the worker's clock
        if len(seen) == 7:
            pending_at_seventh.append(queue.pending().count)
            taken.extend(queue.claim_stale("w2", min_idle_ms))

    stats = Worker(
        queue, "w1", handler, count=10, block_ms=10, min_idle_ms=min_idle_ms,
        exit_when_idle=True, clock=clock,
    ).run()  # fmt: skip
    assert queue.dead_letters() == []
    assert taken == []
    assert pending_at_seventh == [4]  # 7 (running) and 8-10 (waiting); 1-6 acked
    assert seen == ids
    assert (stats.processed, stats.dead_lettered) == (10, 0)
    assert queue.pending().count == 0


def trim_all(r: Any, queue: StreamQueue) -> None:
    r.xtrim(queue.stream, maxlen=0, approximate=False)


def test_trimmed_pending_entries_are_acked_never_empty_dead_letters(
    r: Any, ns: Namespace
) -> None:
    """Issue 19, bug 7: entries that had their last allowed delivery and were then trimmed.
    recover() used to dead-letter them with empty fields while claim_stale() dropped them
    silently; both now ack them and dead-letter nothing."""
    queue = StreamQueue(r, ns.key("orders"), "billing", max_deliveries=1)
    queue.setup()
    queue.add_many({"n": i} for i in range(4))
    queue.consume("a", count=2)
    queue.consume("b", count=2)
    trim_all(r, queue)
    assert queue.recover("a") == []
    assert queue.claim_stale("c", 0) == []
    assert queue.dead_letters() == []
    assert queue.pending().count == 0


def test_worker_counts_trimmed_pending_entries_on_every_path(r: Any, ns: Namespace) -> None:
    """Issue 19, bug 7, through the Worker: its own trimmed entries at start-up (recover),
    another consumer's (claim_stale), and one whose handler failed on its last delivery
    after the entry was trimmed (dead_letter) are all acked and counted as trimmed."""
    queue = StreamQueue(r, ns.key("orders"), "billing", max_deliveries=1)
    queue.setup()
    queue.add_many({"n": i} for i in range(4))
    queue.consume("w", count=2)  # w's previous life died holding two
    queue.consume("gone", count=2)  # a dead consumer holds two more
    trim_all(r, queue)
    queue.add({"n": "fails after a trim"})

    def handler(m: Message) -> None:
        trim_all(r, queue)
        raise RuntimeError("downstream refused")

    stats = Worker(
        queue, "w", handler, block_ms=10, min_idle_ms=0, claim_every_s=0, exit_when_idle=True
    ).run()
    assert queue.dead_letters() == []
    assert (stats.trimmed, stats.failed, stats.dead_lettered) == (5, 1, 0)
    assert queue.pending().count == 0


def test_worker_skips_batch_messages_another_consumer_claimed_meanwhile(
    r: Any, ns: Namespace
) -> None:
    """A handler that runs longer than min_idle_ms loses the rest of its batch to another
    worker's claim_stale: the first worker then skips those messages instead of running
    them a second time, concurrently with their new owner."""
    queue = StreamQueue(r, ns.key("orders"), "billing")
    queue.setup()
    ids = queue.add_many({"n": i} for i in range(10))
    clock = VirtualClock()
    seen: list[str] = []
    taken: list[Message] = []

    def handler(m: Message) -> None:
        seen.append(m.id)
        if len(seen) == 1:  # the first handler runs for 30 s, past min_idle_ms
            age(r, queue, "w1", 30_000)
            clock.advance(30.0)
            taken.extend(queue.claim_stale("w2", 20_000))

    worker = Worker(queue, "w1", handler, count=10, block_ms=10, min_idle_ms=20_000, clock=clock)
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        assert wait_for(lambda: worker.stats.taken_over > 0)
    finally:
        worker.stop()
        thread.join(10)
    assert [m.id for m in taken] == ids
    assert seen == ids[:1]
    assert (worker.stats.processed, worker.stats.taken_over) == (1, 9)
    # its ack of the message it did finish still counts (XACK does not check the owner)
    assert queue.pending().consumers == {"w2": 9}
