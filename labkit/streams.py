"""A durable work queue on a Redis Stream with a consumer group: at-least-once delivery.

    queue = StreamQueue(r, ns.key("{orders}"), "billing", max_deliveries=3)
    queue.setup()                                  # XGROUP CREATE ... MKSTREAM, idempotent
    queue.add({"order_id": "17", "amount": "9.99"})
    Worker(queue, "worker-1", handle_order).run()  # until stop()

What the pattern guarantees — **at-least-once**:

* An added message stays in the stream until trimmed. Once a consumer reads it, it sits in
  the group's pending entries list (PEL) with a delivery counter until it is acked.
* A worker acks a message only after its handler returned (with the batch's next
  *settle*, see below). If the worker dies first (crash, SIGKILL, lost network), the
  message stays pending and comes back: to the same consumer name when it restarts (``recover``), or to any live consumer
  once it has been idle for ``min_idle_ms`` (``claim_stale``, XAUTOCLAIM, Redis >= 6.2).
* A message whose handler keeps failing is not retried forever: once it has been delivered
  ``max_deliveries`` times it is moved, with its delivery count and last error, to the
  dead-letter stream ``<stream>:dead`` and acked in the main stream — atomically, in Lua.
  A message is never handed to a handler more than ``max_deliveries`` times.
* A pending entry whose stream entry is gone (trimmed by ``MAXLEN ~`` or deleted while it
  was pending) is acked and counted as ``trimmed`` (``WorkerStats.trimmed``) on every path
  — ``recover``, ``claim_stale``, ``dead_letter`` and a worker's batch — never handed to a
  handler and never turned into an empty dead letter: there is no payload left to keep.

What at-least-once means for you: **a handler may see the same message twice** (the worker
died after the handler's side effect but before the settle that acks it), so handlers must
be idempotent:
set a value rather than add to it, record the message id and skip ids already done, use
``SET NX`` or a unique constraint downstream.

What it does not guarantee:

* Exactly-once processing, or order across consumers (each consumer sees stream order, but
  a retried message comes back after newer ones).
* Survival of unread messages under ``maxlen``: approximate ``MAXLEN ~`` trimming removes the
  oldest entries whether or not they were consumed or acked. Size it well above the backlog.
* Durability across a server restart without persistence (AOF/RDB): that is server config.
* That a message is handled by one worker at a time. Idleness is the only sign that a
  worker is gone. A ``Worker`` keeps the batch it holds fresh: whenever ``min_idle_ms / 4``
  has passed since it read the batch or last settled it, it *settles* — acks the messages
  handled so far and resets the idle time of those still waiting, in one round trip — and
  it acks the rest at the end of the batch. So a message it holds is idle for at most
  ``min_idle_ms / 4`` plus **one handler run**, not ``count`` handler runs. The safe
  threshold: the slowest single handler run below ``3/4 * min_idle_ms``, with a margin
  (the default 30 s suits handlers up to ~20 s). When one handler runs longer, another
  worker's ``claim_stale`` takes the message it is still working on: it runs a second
  handler on it at the same time, or — when the message has already been delivered
  ``max_deliveries`` times — moves it to ``<stream>:dead`` (the first handler's ack then
  finds nothing pending: processed, yet dead-lettered). The rest of that batch goes to
  the claimer too; the first worker skips those messages (``WorkerStats.taken_over``)
  instead of running them a second time.

Keys (built only in ``stream_keys``): the stream ``stream`` and its dead-letter stream
``stream + ":dead"``. Both must share a cluster slot, so the stream name needs a hash tag:
a name that has one (``lab:04:{orders}``) is used as given; otherwise its last ``:``
segment is wrapped in one (``lab:04:orders`` -> ``lab:04:{orders}``), which is labkit's
prefix convention (``<prefix>{<tag>}:<part>``) with the name's head as the prefix.
``queue.stream`` and ``queue.dead`` hold the names in use.

Payloads: a flat mapping of ``str`` to ``str``/``int``/``float`` (at most ``MAX_FIELDS``
fields) is stored as stream fields (readable in ``redis-cli``); anything else
JSON-serialisable goes into one field, ``_json``. Field names starting with ``_`` are
reserved for labkit's bookkeeping. A ``nan`` or ``inf`` float is refused anywhere in a
payload, flat or JSON.

Limits, checked before any command: counts ``1 .. MAX_COUNT``; ``block_ms`` ``1 ..
checks.MAX_MS``; ``min_idle_ms`` ``0 .. checks.MAX_MS``; ``maxlen`` ``1 .. checks.MAX_INT``;
``max_deliveries`` ``1 .. checks.MAX_EXACT`` (compared in Lua, as a double).

Clients: ``StreamQueue`` and ``Worker`` work with a client that decodes responses or one
that does not (``decode_responses=False``): ids, field names and values, and consumer names
always come back as ``str`` (UTF-8).

Running workers as processes (a CLI, SIGTERM/SIGINT for a graceful stop, a handler that
records deliveries) is ``labkit.experiments.streams``.
"""

from __future__ import annotations

import json
import math
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

import redis

from labkit import checks, scripts
from labkit.client import Client, Clock
from labkit.errors import LabkitError

JSON_FIELD = "_json"
DEFAULT_MAX_DELIVERIES = 5
# Largest count per read, claim or batch: XAUTOCLAIM reserves 16 bytes per counted entry
# before it scans, and a Worker holds its batch in memory.
MAX_COUNT = 2**20
# A dead letter is one XADD of the entry's fields from Lua, whose unpack() holds ~8,000
# values: keep flat payloads well below that.
MAX_FIELDS = 1_000


class GroupNotFoundError(LabkitError, ValueError):
    """The consumer group (or the stream) does not exist: call ``setup()`` first."""


@dataclass(frozen=True)
class Message:
    """One delivered entry: its stream id, raw fields, and how many times it has been
    delivered so far (1 on first delivery)."""

    id: str
    fields: dict[str, str]
    deliveries: int = 1

    @property
    def data(self) -> Any:
        """The payload as added: the flat mapping (values as strings) or the JSON value."""
        if JSON_FIELD in self.fields:
            return json.loads(self.fields[JSON_FIELD])
        return dict(self.fields)


@dataclass(frozen=True)
class DeadLetter:
    """An entry of the dead-letter stream: the original id and fields, how many times it
    was delivered, the last error, and the consumer that moved it there."""

    id: str
    origin_id: str
    deliveries: int
    error: str
    consumer: str
    fields: dict[str, str]

    @property
    def data(self) -> Any:
        return Message(self.origin_id, self.fields).data


@dataclass(frozen=True)
class PendingSummary:
    """XPENDING summary: how many entries are delivered but not acked, and by whom."""

    count: int
    lowest: str | None
    highest: str | None
    consumers: dict[str, int]


@dataclass
class WorkerStats:
    """What one ``Worker.run`` did."""

    processed: int = 0  # handler returned (and the message was acked)
    failed: int = 0  # handler raised (message left pending, or dead-lettered)
    dead_lettered: int = 0
    recovered: int = 0  # own pending entries handed to the handler again at start
    claimed: int = 0  # other consumers' stale entries taken over with XAUTOCLAIM
    batches: int = 0
    trimmed: int = 0  # pending entries gone from the stream: acked, never handled
    taken_over: int = 0  # batch messages another consumer claimed before this one got to them

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class _Claimed(NamedTuple):
    messages: list[Message]
    dead_lettered: int
    trimmed: int
    next_start: str  # "" when there is nothing further


def _has_hash_tag(name: str) -> bool:
    start = name.find("{")
    return start >= 0 and name.find("}", start + 1) > start + 1


def stream_keys(stream: str) -> tuple[str, str]:
    """``(stream, dead_letter_stream)`` as stored, both in one cluster slot (module doc)."""
    checks.text("stream", stream)
    if not _has_hash_tag(stream):
        if "{" in stream:
            raise ValueError(
                f"stream {stream!r} has an empty or unclosed '{{': give it a hash tag like "
                "'lab:04:{orders}'"
            )
        head, sep, last = stream.rpartition(":")
        if not last:
            raise ValueError(f"stream must not end with ':', got {stream!r}")
        stream = f"{head}{sep}{{{last}}}"
    return stream, stream + ":dead"


def _count(arg: str, value: object) -> int:
    return checks.integer(arg, value, low=1, high=MAX_COUNT)


def _flat_value(value: object) -> bool:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return False
    return not (isinstance(value, float) and not math.isfinite(value))


def encode_payload(data: Any) -> dict[str, str | int | float]:
    """Stream fields for ``data`` (see the module doc); ValueError/TypeError on bad input."""
    checks.non_empty("data", data)
    if isinstance(data, Mapping) and all(
        isinstance(k, str) and _flat_value(v) for k, v in data.items()
    ):
        reserved = [k for k in data if k.startswith("_")]
        if reserved:
            raise ValueError(f"data field names starting with '_' are reserved, got {reserved}")
        if len(data) > MAX_FIELDS:
            raise ValueError(
                f"data must have at most {MAX_FIELDS} fields (nest it to store it as one JSON "
                f"field), got {len(data)}"
            )
        for key, value in data.items():
            if isinstance(value, int):
                try:
                    str(value)  # Python refuses ints of more than 4,300 digits as text
                except ValueError as exc:
                    raise ValueError(f"data field {key!r} cannot be stored: {exc}") from None
        return dict(data)
    # a flat mapping holding nan/inf lands here too, and is refused like a JSON one
    return {JSON_FIELD: checks.json_text("data", data)}


def _fields(flat: list[Any] | dict[Any, Any] | None) -> dict[str, str]:
    if flat is None:
        return {}
    pairs = flat.items() if isinstance(flat, dict) else zip(flat[::2], flat[1::2], strict=True)
    return {checks.as_text(k): checks.as_text(v) for k, v in pairs}


def _texts(items: Iterable[Any]) -> list[str]:
    return [checks.as_text(item) for item in items]


class StreamQueue:
    """A consumer group on one stream, with retries and dead-lettering (module doc).

    ``maxlen``: approximate cap on the stream length (``XADD MAXLEN ~``); ``None`` keeps
    everything. ``max_deliveries``: deliveries after which a failing message is
    dead-lettered.
    """

    # The scripts' text (labkit/lua/streams/*.lua), to print in a notebook.
    CLAIM_SCRIPT = scripts.load("streams/claim")
    DEAD_LETTER_SCRIPT = scripts.load("streams/dead_letter")
    SETTLE_SCRIPT = scripts.load("streams/settle")

    def __init__(
        self,
        r: Client,
        stream: str,
        group: str,
        maxlen: int | None = None,
        *,
        max_deliveries: int = DEFAULT_MAX_DELIVERIES,
    ) -> None:
        self.stream, self.dead = stream_keys(stream)
        self.group = checks.text("group", group)
        self.maxlen = None if maxlen is None else checks.integer("maxlen", maxlen, low=1)
        self.max_deliveries = checks.integer(
            "max_deliveries", max_deliveries, low=1, high=checks.MAX_EXACT
        )
        self.r = r
        self._claim_script = scripts.register(r, self.CLAIM_SCRIPT)
        self._dead_script = scripts.register(r, self.DEAD_LETTER_SCRIPT)
        self._settle_script = scripts.register(r, self.SETTLE_SCRIPT)

    # -- errors -----------------------------------------------------------------------------
    def _no_group(self, exc: redis.ResponseError) -> Exception:
        if "NOGROUP" in str(exc):
            return GroupNotFoundError(
                f"group {self.group!r} does not exist on stream {self.stream!r}: call setup() first"
            )
        return exc

    # -- producing --------------------------------------------------------------------------
    def setup(self, start: str = "0") -> bool:
        """Create the group (and the stream). True if created, False if it existed."""
        checks.text("start", start)
        try:
            self.r.xgroup_create(self.stream, self.group, id=start, mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" in str(exc):
                return False
            raise
        return True

    def register(self, consumer: str) -> bool:
        """Create ``consumer`` in the group now (XGROUP CREATECONSUMER, Redis >= 6.2) so it
        shows in XINFO CONSUMERS before it reads anything. True if it was new."""
        checks.text("consumer", consumer)
        try:
            return bool(self.r.xgroup_createconsumer(self.stream, self.group, consumer))
        except redis.ResponseError as exc:
            raise self._no_group(exc) from None

    def add(self, data: Any) -> str:
        """Append one message; return its stream id."""
        fields = encode_payload(data)
        return checks.as_text(self._xadd(self.r, fields))

    def add_many(self, items: Iterable[Any]) -> list[str]:
        """Append many messages in one round trip (a pipeline); return their ids."""
        encoded = [encode_payload(item) for item in items]
        if not encoded:
            return []
        pipe = self.r.pipeline(transaction=False)
        for fields in encoded:
            self._xadd(pipe, fields)
        return _texts(pipe.execute())

    def _xadd(self, client: Any, fields: dict[str, Any]) -> Any:
        if self.maxlen is None:
            return client.xadd(self.stream, fields)
        return client.xadd(self.stream, fields, maxlen=self.maxlen, approximate=True)

    def length(self) -> int:
        """Entries in the stream (XLEN): acked ones too, until trimmed or deleted."""
        return int(self.r.xlen(self.stream))

    # -- consuming --------------------------------------------------------------------------
    def consume(self, consumer: str, count: int = 10, block_ms: int | None = None) -> list[Message]:
        """New messages for ``consumer`` (XREADGROUP ``>``), at most ``count``.

        ``block_ms``: wait up to that many ms for one to arrive; ``None`` returns at once.
        (Redis' ``BLOCK 0`` — wait forever — is refused: a worker could never stop.)
        """
        checks.text("consumer", consumer)
        _count("count", count)
        if block_ms is not None:
            checks.integer("block_ms", block_ms, low=1, high=checks.MAX_MS)
        try:
            reply: Any = self.r.xreadgroup(
                self.group, consumer, {self.stream: ">"}, count=count, block=block_ms
            )
        except redis.ResponseError as exc:
            raise self._no_group(exc) from None
        if not reply:
            return []
        # RESP2: [[stream, entries]]; RESP3 (redis-py): {stream: [entries]}
        if isinstance(reply, dict):
            batches = [value[0] for value in reply.values() if value]
        else:
            batches = [item[1] for item in reply]
        return [
            Message(checks.as_text(mid), _fields(flds)) for batch in batches for mid, flds in batch
        ]

    def ack(self, *ids: str) -> int:
        """Acknowledge processed messages; return how many were pending."""
        if not ids:
            return 0
        for mid in ids:
            checks.text("ids", mid)
        return int(self.r.xack(self.stream, self.group, *ids))

    def pending(self) -> PendingSummary:
        """Delivered-but-unacked entries of the group, in total and per consumer."""
        try:
            raw = self.r.xpending(self.stream, self.group)
        except redis.ResponseError as exc:
            raise self._no_group(exc) from None
        consumers = {
            checks.as_text(c["name"]): int(c["pending"]) for c in raw.get("consumers") or []
        }
        lowest, highest = raw.get("min"), raw.get("max")
        return PendingSummary(
            int(raw["pending"]),
            None if lowest is None else checks.as_text(lowest),
            None if highest is None else checks.as_text(highest),
            consumers,
        )

    def _claim(self, consumer: str, mode: str, min_idle_ms: int, count: int, start: str) -> _Claimed:
        try:
            entries, dead, trimmed, next_start = self._claim_script(
                keys=[self.stream, self.dead],
                args=[self.group, consumer, mode, min_idle_ms, count, start, self.max_deliveries],
            )
        except redis.ResponseError as exc:
            raise self._no_group(exc) from None
        messages = [Message(checks.as_text(e[0]), _fields(e[1]), int(e[2])) for e in entries]
        return _Claimed(messages, int(dead), int(trimmed), checks.as_text(next_start))

    def recover(self, consumer: str, count: int = 100) -> list[Message]:
        """Re-deliver ``consumer``'s own pending messages (the oldest ``count``): what a
        restarted worker does first. Entries delivered ``max_deliveries`` times already are
        dead-lettered instead; entries trimmed from the stream meanwhile are acked."""
        checks.text("consumer", consumer)
        _count("count", count)
        return self._claim(consumer, "own", 0, count, "-").messages

    def claim_stale(self, consumer: str, min_idle_ms: int, count: int = 100) -> list[Message]:
        """Take over up to ``count`` messages any consumer has held unacked for at least
        ``min_idle_ms`` (XAUTOCLAIM), dead-lettering those delivered ``max_deliveries``
        times already; entries trimmed from the stream meanwhile are acked."""
        checks.text("consumer", consumer)
        checks.integer("min_idle_ms", min_idle_ms, low=0, high=checks.MAX_MS)
        _count("count", count)
        return self._claim(consumer, "stale", min_idle_ms, count, "0-0").messages

    def _dead_letter(self, message_id: str, consumer: str, error: str) -> str:
        """'dead', 'trimmed' (acked: the entry is gone) or 'not_owner' (dead_letter.lua)."""
        try:
            outcome = self._dead_script(
                keys=[self.stream, self.dead], args=[self.group, message_id, consumer, error]
            )
        except redis.ResponseError as exc:
            raise self._no_group(exc) from None
        return checks.as_text(outcome)

    def dead_letter(self, message_id: str, consumer: str, error: str) -> bool:
        """Move a message ``consumer`` holds to the dead-letter stream and ack it.

        False when the message is no longer pending for ``consumer`` (acked, or claimed by
        another consumer meanwhile), and when its entry was trimmed from the stream: then it
        is acked and nothing is moved (an empty dead letter would keep nothing).
        """
        checks.text("message_id", message_id)
        checks.text("consumer", consumer)
        if not isinstance(error, str):
            raise TypeError(f"error must be a str, not {type(error).__name__}")
        return self._dead_letter(message_id, consumer, error) == "dead"

    def _settle(
        self, consumer: str, done: list[str], waiting: list[str]
    ) -> tuple[set[str], int]:
        """Ack ``done`` and refresh ``waiting`` in one round trip (settle.lua): the waiting
        ids still held by ``consumer``, and how many were trimmed (acked)."""
        try:
            _, held, trimmed = self._settle_script(
                keys=[self.stream], args=[self.group, consumer, len(done), *done, *waiting]
            )
        except redis.ResponseError as exc:
            raise self._no_group(exc) from None
        return set(_texts(held)), len(trimmed)

    def dead_letters(self, count: int = 100) -> list[DeadLetter]:
        """The oldest ``count`` entries of the dead-letter stream."""
        _count("count", count)
        out = []
        entries: Any = self.r.xrange(self.dead, count=count)
        for mid, raw in entries:
            flds = _fields(raw)
            out.append(
                DeadLetter(
                    id=checks.as_text(mid),
                    origin_id=flds.pop("_origin_id"),
                    deliveries=int(flds.pop("_deliveries")),
                    error=flds.pop("_error"),
                    consumer=flds.pop("_consumer"),
                    fields=flds,
                )
            )
        return out

    def __repr__(self) -> str:
        return f"<StreamQueue {self.stream} group={self.group}>"


class Worker:
    """The consume loop: recover own pending, then read new, ack, retry, claim, stop.

    1. On start, register the consumer (visible in XINFO CONSUMERS from then on) and re-run
       its own pending entries (a previous run died holding them).
    2. Loop: every ``claim_every_s`` take over entries idle >= ``min_idle_ms`` from any
       consumer (dead ones, or failures waiting for a retry); read up to ``count`` new
       entries, blocking at most ``block_ms``; run ``handler`` on each.
    3. Settling (``settle.lua``, one round trip): after a handler, once ``min_idle_ms / 4``
       has passed since the batch was read or last settled, the worker acks the messages
       handled so far and resets the idle time of those still waiting, so none of them
       looks abandoned to another worker while this one works through the batch; a waiting
       message another consumer claimed meanwhile is skipped (``stats.taken_over``). The
       end of the batch acks the rest (one XACK). Fast handlers thus cost one ack round trip
       per batch; slow ones one per ``min_idle_ms / 4`` of work (``min_idle_ms=0``: one per
       message). A message is never idle for longer than ``min_idle_ms / 4`` plus one
       handler run while this worker holds it (module doc).
    4. A handler that raises leaves its message pending, so it is retried after
       ``min_idle_ms``; on its ``max_deliveries``-th failure it is dead-lettered.
    5. ``stop()`` finishes the current message, acks what was handled, and returns; unhandled entries of
       the batch stay pending. A process that wants SIGTERM/SIGINT to stop it gracefully
       wires them to ``stop()`` (``labkit.experiments.streams.stop_on_signals``).

    ``exit_when_idle``: return when no new message came and the group has nothing pending
    (experiments and tests use it to end when the work is done). ``clock`` is injectable.
    Limits: ``count`` ``1 .. MAX_COUNT``; ``block_ms`` ``1 .. checks.MAX_MS``;
    ``min_idle_ms`` ``0 .. checks.MAX_MS``; ``claim_every_s`` a finite number of seconds >= 0.
    """

    def __init__(
        self,
        queue: StreamQueue,
        consumer: str,
        handler: Callable[[Message], object],
        *,
        count: int = 10,
        block_ms: int = 100,
        min_idle_ms: int = 30_000,
        claim_every_s: float = 1.0,
        exit_when_idle: bool = False,
        clock: Clock = time.monotonic,
    ) -> None:
        if not isinstance(queue, StreamQueue):
            raise TypeError(f"queue must be a StreamQueue, not {type(queue).__name__}")
        if not callable(handler):
            raise TypeError(f"handler must be callable, not {type(handler).__name__}")
        if not callable(clock):
            raise TypeError(f"clock must be callable, not {type(clock).__name__}")
        self.queue = queue
        self.consumer = checks.text("consumer", consumer)
        self.handler = handler
        self.count = _count("count", count)
        self.block_ms = checks.integer("block_ms", block_ms, low=1, high=checks.MAX_MS)
        self.min_idle_ms = checks.integer("min_idle_ms", min_idle_ms, low=0, high=checks.MAX_MS)
        self.claim_every_s = checks.seconds("claim_every_s", claim_every_s, allow_zero=True)
        self.exit_when_idle = bool(exit_when_idle)
        self.clock = clock
        self.stats = WorkerStats()
        self._stop = threading.Event()

    def stop(self) -> None:
        """Ask the loop to finish the current message and return (safe from any thread or
        a signal handler)."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def _run_handler(self, message: Message) -> bool:
        """True when the handler succeeded; a failure on the last allowed delivery is
        dead-lettered here."""
        try:
            self.handler(message)
        except Exception as exc:
            self.stats.failed += 1
            if message.deliveries >= self.queue.max_deliveries:
                outcome = self.queue._dead_letter(
                    message.id, self.consumer, f"{type(exc).__name__}: {exc}"
                )
                self.stats.dead_lettered += outcome == "dead"
                self.stats.trimmed += outcome == "trimmed"
            return False
        self.stats.processed += 1
        return True

    def _handle(self, messages: list[Message]) -> None:
        if not messages:
            return
        self.stats.batches += 1
        # the batch was just delivered or claimed: its entries are idle for ~0 ms from here
        last_settle = self.clock()
        refresh_s = self.min_idle_ms / 4000
        waiting = list(messages)
        done: list[str] = []
        try:
            while waiting and not self._stop.is_set():
                message = waiting.pop(0)
                if self._run_handler(message):
                    done.append(message.id)
                now = self.clock()
                if waiting and now - last_settle >= refresh_s:
                    waiting = self._settle(done, waiting)
                    done, last_settle = [], now
        finally:
            if done:  # also when a handler raised BaseException: what was done is acked
                self.queue.ack(*done)

    def _settle(self, done: list[str], waiting: list[Message]) -> list[Message]:
        """Ack ``done``, refresh ``waiting``; return the waiting messages still ours."""
        held, trimmed = self.queue._settle(self.consumer, done, [m.id for m in waiting])
        self.stats.trimmed += trimmed
        self.stats.taken_over += len(waiting) - len(held) - trimmed
        return [m for m in waiting if m.id in held]

    def _take(self, claimed: _Claimed) -> list[Message]:
        self.stats.dead_lettered += claimed.dead_lettered
        self.stats.trimmed += claimed.trimmed
        return claimed.messages

    def _recover(self) -> None:
        start = "-"
        while not self._stop.is_set():
            claimed = self.queue._claim(self.consumer, "own", 0, self.count, start)
            messages = self._take(claimed)
            self.stats.recovered += len(messages)
            self._handle(messages)
            start = claimed.next_start
            if not start:
                return

    def _claim_stale(self) -> None:
        claimed = self.queue._claim(self.consumer, "stale", self.min_idle_ms, self.count, "0-0")
        messages = self._take(claimed)
        self.stats.claimed += len(messages)
        self._handle(messages)

    def run(self, *, install_signals: bool = False) -> WorkerStats:
        """Run until ``stop()`` or (``exit_when_idle``) no work left.

        ``install_signals`` is no longer used: signals belong to the process, which wires
        them to ``stop()`` (``labkit.experiments.streams.stop_on_signals``). ``True`` warns.
        """
        if install_signals:
            warnings.warn(
                "Worker.run(install_signals=True) no longer installs signal handlers: use "
                "labkit.experiments.streams.stop_on_signals(worker)",
                DeprecationWarning,
                stacklevel=2,
            )
        self.queue.register(self.consumer)
        self._recover()
        next_claim = self.clock()
        while not self._stop.is_set():
            if self.clock() >= next_claim:
                self._claim_stale()
                next_claim = self.clock() + self.claim_every_s
            messages = self.queue.consume(self.consumer, self.count, self.block_ms)
            self._handle(messages)
            if self.exit_when_idle and not messages and self.queue.pending().count == 0:
                break
        return self.stats
