"""labkit.pubsub: JSON messages to live subscribers, background listeners that stop cleanly."""

from __future__ import annotations

import threading
import time

import pytest
import redis
from helpers import wait_for

from labkit.keys import Namespace
from labkit.pubsub import HandlerError, Message, PubSub


@pytest.fixture
def bus(r: redis.Redis, ns: Namespace) -> PubSub:
    return PubSub(r, prefix=ns.prefix)


def test_publish_returns_receivers_and_zero_without_subscribers(bus: PubSub) -> None:
    assert bus.publish("nobody-listens", {"x": 1}) == 0
    with bus.subscribe("orders", lambda m: None):
        assert bus.publish("orders", {"x": 1}) == 1


def test_subscribe_delivers_json_messages_in_order(bus: PubSub) -> None:
    got: list[Message] = []
    payloads = [{"n": i, "text": "é"} for i in range(50)] + [[1, 2], "plain", 3.5, True]
    with bus.subscribe(["a", "b"], got.append) as sub:
        for p in payloads:
            bus.publish("a", p)
        bus.publish("b", {"last": True})
        assert wait_for(lambda: len(got) == len(payloads) + 1)
    assert [m.data for m in got[:-1]] == payloads
    assert {m.channel for m in got} == {"a", "b"}
    assert all(m.pattern is None for m in got)
    assert sub.received == len(payloads) + 1
    assert sub.errors == []


def test_psubscribe_matches_pattern_and_reports_it(bus: PubSub) -> None:
    got: list[Message] = []
    with bus.psubscribe("notifications:*", got.append):
        assert bus.publish("notifications:alice", {"to": "alice"}) == 1
        assert bus.publish("notifications:bob", {"to": "bob"}) == 1
        assert bus.publish("notification:carol", {"to": "carol"}) == 0
        assert wait_for(lambda: len(got) == 2)
    assert [(m.channel, m.pattern, m.data["to"]) for m in got] == [
        ("notifications:alice", "notifications:*", "alice"),
        ("notifications:bob", "notifications:*", "bob"),
    ]


def test_subscribe_to_a_glob_name_hears_nothing(bus: PubSub) -> None:
    got: list[Message] = []
    with bus.subscribe("notifications:*", got.append):
        assert bus.publish("notifications:alice", {"to": "alice"}) == 0
        # only a channel literally named "notifications:*" reaches it
        assert bus.publish("notifications:*", {"to": "everyone"}) == 1
        assert wait_for(lambda: len(got) == 1)
    assert got[0].data == {"to": "everyone"}


def test_prefix_keeps_buses_apart(r: redis.Redis, ns: Namespace) -> None:
    mine, theirs = PubSub(r, prefix=ns.key("a") + ":"), PubSub(r, prefix=ns.key("b") + ":")
    got: list[Message] = []
    with mine.psubscribe("*", got.append):
        assert theirs.publish("x", {"n": 1}) == 0
        assert mine.publish("x", {"n": 2}) == 1
        assert wait_for(lambda: len(got) == 1)
    assert got[0].data == {"n": 2}


def test_handler_exception_is_reported_and_listener_survives(bus: PubSub) -> None:
    got: list[int] = []

    def handler(m: Message) -> None:
        if m.data == 2:
            raise RuntimeError("boom on 2")
        got.append(m.data)

    with bus.subscribe("c", handler) as sub:
        for i in range(1, 5):
            bus.publish("c", i)
        assert wait_for(lambda: len(got) == 3)
        assert sub.running
    assert got == [1, 3, 4]
    assert len(sub.errors) == 1
    assert isinstance(sub.errors[0].error, RuntimeError)
    assert sub.errors[0].raw == "2"


def test_on_error_receives_each_failure(bus: PubSub) -> None:
    failures: list[HandlerError] = []

    def fail(m: Message) -> None:
        raise ValueError(m.data)

    with bus.subscribe("c", fail, on_error=failures.append):
        bus.publish("c", "x")
        bus.publish("c", "y")
        assert wait_for(lambda: len(failures) == 2)
    assert [str(f.error) for f in failures] == ["x", "y"]


def test_non_json_payload_is_reported_not_handled(r: redis.Redis, bus: PubSub) -> None:
    got: list[Message] = []
    with bus.subscribe("c", got.append) as sub:
        r.publish(bus.prefix + "c", "not json {")
        bus.publish("c", {"ok": 1})
        assert wait_for(lambda: len(got) == 1 and len(sub.errors) == 1)
    assert got[0].data == {"ok": 1}
    assert sub.errors[0].raw == "not json {"


def test_stop_joins_thread_and_unsubscribes(r: redis.Redis, bus: PubSub) -> None:
    threads_before = threading.active_count()
    sub = bus.subscribe("c", lambda m: None)
    assert threading.active_count() == threads_before + 1
    assert r.pubsub_numsub(bus.prefix + "c") == [(bus.prefix + "c", 1)]
    sub.stop()
    assert not sub.running
    assert threading.active_count() == threads_before
    assert r.pubsub_numsub(bus.prefix + "c") == [(bus.prefix + "c", 0)]
    sub.stop()  # idempotent


def test_stop_closes_the_connection(bus: PubSub) -> None:
    sub = bus.psubscribe("c:*", lambda m: None)
    sock = sub._pubsub.connection._sock
    assert sock is not None
    sub.stop()
    assert sub._pubsub.connection is None
    assert sock.fileno() == -1


def test_stopped_subscription_stops_counting_reconnects(r: redis.Redis, bus: PubSub) -> None:
    old = bus.subscribe("a", lambda m: None)
    connection = old._pubsub.connection
    old.stop()
    for _ in range(3):  # later subscriptions may reuse the pooled connection
        bus.subscribe("b", lambda m: None).stop()
    r.ping()
    assert (old.reconnects, old.reconnected_at) == (0, [])
    assert all(ref() is None or ref() != old._on_connect for ref in connection._connect_callbacks)


def test_repeated_names_are_subscribed_once(bus: PubSub) -> None:
    got: list[Message] = []
    started = time.monotonic()
    with bus.subscribe(["a", "b", "a"], got.append) as sub:
        assert sub.names == (bus.prefix + "a", bus.prefix + "b")
        assert bus.publish("a", 1) == 1
        assert wait_for(lambda: len(got) == 1)
    with bus.psubscribe(["x*", "x*"], got.append) as psub:
        assert psub.names == (bus.prefix + "x*",)
        assert bus.publish("xy", 2) == 1
        assert wait_for(lambda: len(got) == 2)
    assert time.monotonic() - started < 2  # no wait for confirmations that never come
    assert [m.data for m in got] == [1, 2]


def test_reconnect_resubscribes_and_loses_messages_in_between(r: redis.Redis, bus: PubSub) -> None:
    got: list[int] = []
    busy = threading.Event()

    def handler(m: Message) -> None:
        got.append(m.data)
        if m.data == 1:
            busy.wait(5)  # the listener is busy: it cannot reconnect before we publish 2

    with bus.subscribe("c", handler) as sub:
        bus.publish("c", 1)
        assert wait_for(lambda: got == [1])
        host, port = sub._pubsub.connection._sock.getsockname()[:2]
        on_node = {"target_nodes": bus.node} if bus.node is not None else {}
        assert r.execute_command("CLIENT KILL", f"{host}:{port}", **on_node)
        # published while the subscriber is disconnected: nobody receives it
        assert bus.publish("c", 2) == 0
        busy.set()
        assert wait_for(lambda: sub.reconnects == 1 and bus.publish("c", 3) == 1)
        assert wait_for(lambda: 3 in got)
    assert 2 not in got
    assert sub.errors == []
    assert len(sub.disconnects) <= 1  # seen by the listener unless redis-py retried it away
    assert len(sub.reconnected_at) == 1


def test_messages_published_before_subscribing_are_not_delivered(bus: PubSub) -> None:
    assert bus.publish("c", "early") == 0
    got: list[Message] = []
    with bus.subscribe("c", got.append):
        bus.publish("c", "late")
        assert wait_for(lambda: len(got) == 1)
    assert got[0].data == "late"


@pytest.mark.parametrize("empty", [None, "", {}, []])
def test_publish_rejects_empty_message(bus: PubSub, empty: object) -> None:
    with pytest.raises(ValueError, match="message must not be empty"):
        bus.publish("c", empty)


@pytest.mark.parametrize("bad", [{1, 2}, object(), {"x": b"bytes"}, float("nan")])
def test_publish_rejects_non_serialisable_message(bus: PubSub, bad: object) -> None:
    with pytest.raises(TypeError, match="message must be JSON-serialisable"):
        bus.publish("c", bad)


def test_publish_rejects_bad_channel(bus: PubSub) -> None:
    with pytest.raises(ValueError, match="channel must be non-empty"):
        bus.publish("", {"x": 1})
    with pytest.raises(TypeError, match="channel must be str"):
        bus.publish(b"c", {"x": 1})  # type: ignore[arg-type]


def test_subscribe_rejects_bad_arguments(bus: PubSub) -> None:
    with pytest.raises(ValueError, match="channels must name at least one"):
        bus.subscribe([], lambda m: None)
    with pytest.raises(ValueError, match="patterns must be non-empty"):
        bus.psubscribe(["ok:*", ""], lambda m: None)
    with pytest.raises(TypeError, match="handler must be callable"):
        bus.subscribe("c", "not callable")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="on_error must be callable"):
        bus.subscribe("c", lambda m: None, on_error=5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="prefix must be a str"):
        PubSub(bus.r, prefix=None)  # type: ignore[arg-type]
