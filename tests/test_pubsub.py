"""labkit.pubsub: JSON messages to live subscribers, background listeners that stop cleanly."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import redis
from helpers import bytes_client, wait_for
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis._parsers import _RESP2Parser

from labkit.keys import Namespace
from labkit.pubsub import HandlerError, Message, PubSub, SubscriberStuckError


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


@pytest.mark.parametrize("bad", [{1, 2}, object(), {"x": b"bytes"}])
def test_publish_rejects_non_serialisable_message(bus: PubSub, bad: object) -> None:
    with pytest.raises(TypeError, match="message is not JSON-serialisable"):
        bus.publish("c", bad)


def test_publish_rejects_bad_channel(bus: PubSub) -> None:
    with pytest.raises(ValueError, match="channel must be a non-empty string"):
        bus.publish("", {"x": 1})
    with pytest.raises(TypeError, match="channel must be str"):
        bus.publish(b"c", {"x": 1})  # type: ignore[arg-type]


def test_subscribe_rejects_bad_arguments(bus: PubSub) -> None:
    with pytest.raises(ValueError, match="channels must name at least one"):
        bus.subscribe([], lambda m: None)
    with pytest.raises(ValueError, match="patterns must be a non-empty string"):
        bus.psubscribe(["ok:*", ""], lambda m: None)
    with pytest.raises(TypeError, match="handler must be callable"):
        bus.subscribe("c", "not callable")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="on_error must be callable"):
        bus.subscribe("c", lambda m: None, on_error=5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="prefix must be a str"):
        PubSub(bus.r, prefix=None)  # type: ignore[arg-type]


# -- messages that are not UTF-8 (issue 13) ---------------------------------------------------


def test_a_message_that_is_not_utf8_is_reported_and_the_listener_keeps_listening(
    r: Any, bus: PubSub
) -> None:
    """On a decoding client redis-py fails while reading such a message (its payload, or
    the channel a pattern matched): the listener reports it and goes on."""
    raw = bytes_client(r)
    got: list[Message] = []
    try:
        with bus.psubscribe("c*", got.append) as sub:
            prefix = bus.prefix.encode()
            raw.publish(prefix + b"c1", b"\xff\xfe not utf-8")
            raw.publish(prefix + b"c\xff", b'"a channel name that is not utf-8"')
            assert wait_for(lambda: len(sub.errors) == 2)
            assert bus.publish("c2", {"ok": 1}) == 1
            assert wait_for(lambda: len(got) == 1)
            assert sub.running
    finally:
        raw.close()
    assert [(m.channel, m.data) for m in got] == [("c2", {"ok": 1})]
    assert all(isinstance(e.error, UnicodeDecodeError) for e in sub.errors)
    assert sub.errors[0].raw is not None and "\\xff" in sub.errors[0].raw
    assert sub.reconnects == 0  # hiredis read each reply whole: nothing to resynchronise


def test_a_message_that_is_not_utf8_does_not_wedge_the_pure_python_parser(
    single_client: Any,
) -> None:
    """redis-py's pure-Python parser stops part-way through a reply it cannot decode and
    would fail on the same bytes forever: the listener reconnects and re-subscribes."""
    kwargs = single_client.connection_pool.connection_kwargs
    slow = redis.Redis(
        host=kwargs["host"], port=kwargs["port"], decode_responses=True, protocol=2
    )
    slow.connection_pool.connection_kwargs["parser_class"] = _RESP2Parser
    raw = bytes_client(single_client)
    bus = PubSub(slow, prefix="test-pure-python-parser:")
    got: list[Message] = []
    try:
        with bus.subscribe("c", got.append) as sub:
            assert type(sub._pubsub.connection._parser) is _RESP2Parser
            raw.publish(b"test-pure-python-parser:c", b"\xff")
            assert wait_for(lambda: len(sub.errors) == 1 and sub.reconnects == 1)
            assert wait_for(lambda: bus.publish("c", 2) == 1)
            assert wait_for(lambda: len(got) == 1)
            assert sub.running
    finally:
        raw.close()
        slow.close()
    assert got[0].data == 2
    assert len(sub.errors) == 1 and isinstance(sub.errors[0].error, UnicodeDecodeError)


def test_a_client_that_does_not_decode_reports_text_that_is_not_utf8(r: Any, ns: Namespace) -> None:
    """Decoded strictly, not with replacement characters: '"\\xff"' is valid JSON once
    replaced, and used to reach the handler as '\\ufffd'."""
    raw = bytes_client(r)
    bus = PubSub(raw, prefix=ns.prefix)
    got: list[Message] = []
    try:
        with bus.subscribe("c", got.append) as sub:
            raw.publish(ns.prefix.encode() + b"c", b'"\xff"')
            assert bus.publish("c", "fine") == 1
            assert wait_for(lambda: len(got) == 1 and len(sub.errors) == 1)
    finally:
        raw.close()
    assert got[0].data == "fine"
    assert isinstance(sub.errors[0].error, UnicodeDecodeError)


# -- bad numbers, property-tested --------------------------------------------------------------

unstorable_numbers = st.one_of(
    st.sampled_from([float("nan"), float("inf"), float("-inf"), 10**5000, -(10**5000)]),
    st.integers(min_value=10**4300, max_value=10**4400),
)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(number=unstorable_numbers, shape=st.sampled_from(["bare", "list", "dict"]))
def test_numbers_json_cannot_hold_are_refused_before_publishing(
    bus: PubSub, number: Any, shape: str
) -> None:
    message = {"bare": number, "list": [1, number], "dict": {"n": number}}[shape]
    got: list[Message] = []
    with bus.subscribe("c", got.append):
        with pytest.raises(ValueError, match="message"):
            bus.publish("c", message)
        assert bus.publish("c", "sentinel") == 1
        assert wait_for(lambda: len(got) == 1)
    assert [m.data for m in got] == ["sentinel"]  # nothing else was published


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    timeout=st.one_of(
        st.floats(max_value=-1e-9),
        st.floats(min_value=3600.001),
        st.sampled_from([float("nan"), float("inf"), 2**63, 10**400, True, None, "1"]),
    )
)
def test_stop_refuses_a_bad_timeout_and_keeps_running(bus: PubSub, timeout: Any) -> None:
    sub = bus.subscribe("c", lambda m: None)
    try:
        with pytest.raises((TypeError, ValueError), match="timeout"):
            sub.stop(timeout)
        assert sub.running
    finally:
        sub.stop()
    assert not sub.running


def test_a_stuck_handler_is_a_labkit_error_and_a_runtime_error(bus: PubSub) -> None:
    release = threading.Event()
    sub = bus.subscribe("c", lambda m: release.wait(10))
    try:
        bus.publish("c", 1)
        with pytest.raises(SubscriberStuckError) as caught:
            sub.stop(timeout=0.2)
        assert isinstance(caught.value, RuntimeError)
    finally:
        release.set()
        sub.stop()
