"""Pub/Sub notifications: JSON messages to whoever is listening right now.

    bus = PubSub(r, prefix=ns.key("bus") + ":")
    with bus.psubscribe("notifications:*", handler) as sub:
        bus.publish("notifications:alice", {"text": "hi"})   # -> receivers reached

What the pattern guarantees:

* **At-most-once, to live subscribers only.** ``PUBLISH`` hands a message to the
  subscribers connected at that instant and forgets it. ``publish`` returns how many
  received it; 0 means nobody did, and nobody ever will.
* A subscription's handler runs on one background thread, in publish order per channel.
  A handler that raises is *reported* (kept in ``Subscription.errors``, passed to
  ``on_error``, logged) and the listener goes on with the next message. So is a message
  that is not JSON, and one that is not UTF-8 (published by a non-labkit client): it is
  never handed to the handler, and the listener keeps listening. On a decoding client
  (``decode_responses=True``) redis-py fails on such a message while reading it; with the
  hiredis parser the reply is consumed whole, with redis-py's pure-Python parser it is
  not, so there the listener drops the connection and re-subscribes (counted in
  ``reconnects``), losing what is published meanwhile.
* ``Subscription.stop()`` unsubscribes, joins the thread and closes the connection: nothing
  is left running.

What it does not guarantee:

* Delivery across a disconnect. redis-py reconnects and re-subscribes by itself
  (``Subscription.disconnects`` and ``reconnects`` record it), but whatever was published in between is gone.
* Delivery to a slow subscriber. The server buffers outgoing messages per client and
  disconnects a subscriber whose buffer passes ``client-output-buffer-limit pubsub``
  (default ``32mb 8mb 60``); its queued messages are dropped.
* Persistence or replay. For at-least-once delivery use ``labkit.streams``.

On a cluster, a message published on any node reaches subscribers on every node, but
PUBLISH returns only the count of the node that took it; ``PubSub`` therefore sends its
publishes and subscriptions through the cluster's default node, so the count is exact.

Channel names: every channel and pattern is ``prefix + name`` (built in ``_channel`` and
``_pattern``, the prefix glob-escaped in patterns), so a notebook can keep its traffic under
its namespace; ``Message.channel`` is the name without the prefix. A name given twice is
subscribed once (``Subscription.names`` lists each once, in first-seen order). The prefix
follows labkit's convention (it ends with ``:``, e.g. ``ns.prefix_for("bus")``, and has no
``{``/``}``); its default is ``""`` because pub/sub writes no keys and a bus without a
prefix must talk to publishers and subscribers that are not labkit.

Errors: ``SubscribeTimeoutError`` (the server did not confirm a subscription in time) and
``SubscriberStuckError`` (``stop()`` could not join a handler); both derive from
``LabkitError`` and from the stdlib class raised before (``TimeoutError``,
``RuntimeError``).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import redis

from labkit import checks
from labkit.client import Client, is_cluster
from labkit.errors import LabkitError
from labkit.keys import escape_glob

_log = logging.getLogger(__name__)

_POLL_S = 0.05  # how often the listener looks at its stop flag while idle
_SUBSCRIBE_TIMEOUT_S = 5.0
_MAX_STOP_TIMEOUT_S = 3600.0


class SubscribeTimeoutError(LabkitError, TimeoutError):
    """The server did not confirm a subscription in time."""


class SubscriberStuckError(LabkitError, RuntimeError):
    """``Subscription.stop()`` could not join the listener thread: a handler is stuck."""


@dataclass(frozen=True)
class Message:
    """One received message: its channel and the pattern that matched it (``None`` for a
    plain ``subscribe``), both without the bus prefix, and the decoded JSON data."""

    channel: str
    data: Any
    pattern: str | None = None


@dataclass(frozen=True)
class HandlerError:
    """A failure the listener reported instead of dying: the raw message and the error."""

    channel: str
    raw: str | None
    error: BaseException


Handler = Callable[[Message], object]
ErrorHandler = Callable[[HandlerError], object]


def _shown(value: Any) -> str:
    """A reply as text for a report: bytes that are not UTF-8 are shown escaped."""
    return value.decode("utf-8", "backslashreplace") if isinstance(value, bytes) else str(value)


def _payload(message: Any) -> str:
    """JSON text of ``message``; ValueError/TypeError naming the argument otherwise."""
    return checks.json_text("message", checks.non_empty("message", message))


def _names(names: str | Iterable[str], what: str) -> list[str]:
    """The names, checked, each once in first-seen order (redis-py subscribes to a repeated
    name once, and the server confirms only what was sent)."""
    if isinstance(names, bytes):
        raise TypeError(f"{what} must be str, not bytes")
    items = [names] if isinstance(names, str) else list(names)
    if not items:
        raise ValueError(f"{what} must name at least one channel")
    for name in items:
        checks.text(what, name)
    return list(dict.fromkeys(items))


class PubSub:
    """Publish JSON messages and run background subscribers on the client ``r``.

    ``prefix`` is prepended to every channel and pattern (escaped for patterns), so two
    notebooks on one server never hear each other.
    """

    def __init__(self, r: Client, *, prefix: str = "") -> None:
        self.prefix = checks.prefix(prefix)
        self.r = r
        # PUBLISH counts only the receivers connected to the node that took it, so on a
        # cluster publishes and subscriptions all go through one node: the default one.
        self.node: Any = r.get_default_node() if is_cluster(r) else None

    def _new_pubsub(self) -> Any:
        if self.node is not None:
            return self.r.pubsub(node=self.node)
        return self.r.pubsub()

    def _channel(self, name: str) -> str:
        return self.prefix + name

    def _pattern(self, pattern: str) -> str:
        return escape_glob(self.prefix) + pattern

    def publish(self, channel: str, message: Any) -> int:
        """Send ``message`` (JSON-serialisable) on ``channel``; return how many subscribers
        received it. 0 means the message is gone."""
        _names(channel, "channel")
        payload = _payload(message)
        if self.node is not None:
            return int(
                self.r.execute_command(
                    "PUBLISH", self._channel(channel), payload, target_nodes=self.node
                )
            )
        return int(self.r.publish(self._channel(channel), payload))

    def subscribe(
        self,
        channels: str | Iterable[str],
        handler: Handler,
        *,
        on_error: ErrorHandler | None = None,
    ) -> Subscription:
        """Call ``handler(Message)`` for every message on ``channels`` (exact names)."""
        names = [self._channel(c) for c in _names(channels, "channels")]
        return Subscription(self, "subscribe", names, handler, on_error)

    def psubscribe(
        self,
        patterns: str | Iterable[str],
        handler: Handler,
        *,
        on_error: ErrorHandler | None = None,
    ) -> Subscription:
        """Call ``handler(Message)`` for every message on channels matching the glob
        ``patterns`` (``*``, ``?``, ``[...]``)."""
        names = [self._pattern(p) for p in _names(patterns, "patterns")]
        return Subscription(self, "psubscribe", names, handler, on_error)


class Subscription:
    """A running subscriber: one connection, one thread. Stop it with ``stop()`` (or use
    it as a context manager).

    Attributes a notebook reads: ``received`` (messages handed to the handler), ``errors``
    (``HandlerError`` list), ``reconnects`` and ``reconnected_at`` (how often, and when by
    ``time.monotonic()``, the connection was re-established and the subscriptions
    replayed), ``disconnects`` (when a connection error got past redis-py's own retries).
    """

    def __init__(
        self,
        bus: PubSub,
        kind: str,
        names: list[str],
        handler: Handler,
        on_error: ErrorHandler | None,
    ) -> None:
        if not callable(handler):
            raise TypeError(f"handler must be callable, got {type(handler).__name__}")
        if on_error is not None and not callable(on_error):
            raise TypeError(f"on_error must be callable, got {type(on_error).__name__}")
        self._bus = bus
        self._handler = handler
        self._on_error = on_error
        self.names = tuple(names)
        self.received = 0
        self.reconnects = 0
        self.reconnected_at: list[float] = []
        self.disconnects: list[float] = []
        self.errors: list[HandlerError] = []
        self._stop = threading.Event()
        self._early: list[dict[str, Any]] = []
        self._pubsub = bus._new_pubsub()
        self._connection: Any = None  # where _on_connect is registered, until stop()
        try:
            getattr(self._pubsub, kind)(*names)
            self._await_confirmations(kind, len(names))
            connection = getattr(self._pubsub, "connection", None)
            if connection is not None:
                connection.register_connect_callback(self._on_connect)
                self._connection = connection
        except BaseException:
            self._pubsub.close()
            raise
        self._thread = threading.Thread(
            target=self._run, name=f"labkit-pubsub-{names[0]}", daemon=True
        )
        self._thread.start()

    def _await_confirmations(self, kind: str, expected: int) -> None:
        """Block until the server confirmed every subscription, so a publish right after
        ``subscribe()`` returns is heard."""
        deadline = time.monotonic() + _SUBSCRIBE_TIMEOUT_S
        confirmed = 0
        while confirmed < expected:
            left = deadline - time.monotonic()
            if left <= 0:
                raise SubscribeTimeoutError(
                    f"the server did not confirm {kind} within {_SUBSCRIBE_TIMEOUT_S} s"
                )
            msg = self._pubsub.get_message(timeout=min(left, 0.5))
            if msg is None:
                continue
            if msg["type"] == kind:
                confirmed += 1
            elif msg["type"] in ("message", "pmessage"):
                self._early.append(msg)

    def _on_connect(self, connection: Any) -> None:
        self.reconnects += 1
        self.reconnected_at.append(time.monotonic())

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        for msg in self._early:
            self._dispatch(msg)
        self._early.clear()
        while not self._stop.is_set():
            try:
                msg = self._pubsub.get_message(ignore_subscribe_messages=True, timeout=_POLL_S)
            except UnicodeDecodeError as exc:
                # A decoding client read a channel name or payload that is not UTF-8: report
                # it like a bad payload and keep listening (_resync says why it may reconnect)
                self._report(HandlerError("", _shown(exc.object), exc))
                self._resync()
                continue
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                # The server closed the connection (CLIENT KILL, output buffer limit,
                # restart) and redis-py's retries did not hide it: note when, then let the
                # next read reconnect and re-subscribe. What was sent in between is lost.
                self.disconnects.append(time.monotonic())
                _log.warning("subscriber on %s disconnected: %s", ", ".join(self.names), exc)
                self._stop.wait(_POLL_S)
                continue
            if msg is not None:
                self._dispatch(msg)

    def _resync(self) -> None:
        """After a reply failed to decode: hiredis had consumed it whole, but redis-py's
        pure-Python parsers stop part-way and would fail on the same bytes forever, so with
        them the connection is dropped; the next read reconnects and re-subscribes."""
        connection = getattr(self._pubsub, "connection", None)
        parser = getattr(connection, "_parser", None)
        if connection is not None and "hiredis" not in type(parser).__name__.lower():
            connection.disconnect()

    def _dispatch(self, msg: dict[str, Any]) -> None:
        if msg.get("type") not in ("message", "pmessage"):
            return
        channel, raw = _shown(msg["channel"]), _shown(msg["data"])
        prefix = self._bus.prefix
        escaped = escape_glob(prefix)
        try:
            # a client that does not decode hands over bytes: decode strictly, so text that
            # is not UTF-8 is reported rather than handed on with replacement characters
            channel = checks.as_text(msg["channel"])
            raw = checks.as_text(msg["data"])
            pattern = None if msg.get("pattern") is None else checks.as_text(msg["pattern"])
            if pattern is not None and pattern.startswith(escaped):
                pattern = pattern[len(escaped) :]
            message = Message(
                channel=channel[len(prefix) :] if channel.startswith(prefix) else channel,
                data=json.loads(raw),
                pattern=pattern,
            )
            self.received += 1
            self._handler(message)
        except Exception as exc:
            self._report(HandlerError(channel, raw, exc))

    def _report(self, failure: HandlerError) -> None:
        self.errors.append(failure)
        if self._on_error is not None:
            try:
                self._on_error(failure)
                return
            except Exception:
                _log.exception("on_error itself raised")
        _log.error(
            "subscriber on %s: %r (message %r)",
            failure.channel or ", ".join(self.names),
            failure.error,
            failure.raw,
        )

    def stop(self, timeout: float = 5.0) -> None:
        """Stop listening: join the thread, then close the subscription's connection. Idempotent.

        No ``UNSUBSCRIBE`` is sent: closing the socket ends the subscriptions, once the server
        reads the close. The closed connection goes back to the client's pool; this subscription's connect callback
        is removed from it first, so ``reconnects`` stops counting when another client of
        the pool reconnects it."""
        self._stop.set()
        checks.number("timeout", timeout, low=0, high=_MAX_STOP_TIMEOUT_S)
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise SubscriberStuckError(
                    f"the subscriber thread did not stop within {timeout} s (a handler is stuck)"
                )
        if self._connection is not None:
            self._connection.deregister_connect_callback(self._on_connect)
            self._connection = None
        self._pubsub.close()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<Subscription {', '.join(self.names)} {state} received={self.received}>"
