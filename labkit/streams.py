"""A durable work queue on a Redis Stream with a consumer group: at-least-once delivery.

    queue = StreamQueue(r, ns.key("{orders}"), "billing", max_deliveries=3)
    queue.setup()                                  # XGROUP CREATE ... MKSTREAM, idempotent
    queue.add({"order_id": "17", "amount": "9.99"})
    Worker(queue, "worker-1", handle_order).run()  # until stop() or SIGTERM/SIGINT

What the pattern guarantees — **at-least-once**:

* An added message stays in the stream until trimmed. Once a consumer reads it, it sits in
  the group's pending entries list (PEL) with a delivery counter until it is acked.
* A worker acks only after its handler returned. If the worker dies first (crash, SIGKILL,
  lost network), the message stays pending and comes back: to the same consumer name when
  it restarts (``recover``), or to any live consumer once it has been idle for
  ``min_idle_ms`` (``claim_stale``, XAUTOCLAIM, Redis >= 6.2).
* A message whose handler keeps failing is not retried forever: once it has been delivered
  ``max_deliveries`` times it is moved, with its delivery count and last error, to the
  dead-letter stream ``<stream>:dead`` and acked in the main stream — atomically, in Lua.
  A message is never handed to a handler more than ``max_deliveries`` times.

What at-least-once means for you: **a handler may see the same message twice** (the worker
died after the handler's side effect but before the ack — the worker acks each batch after
handling it), so handlers must be idempotent: set a value rather than add to it, record the
message id and skip ids already done, use ``SET NX`` or a unique constraint downstream.

What it does not guarantee:

* Exactly-once processing, or order across consumers (each consumer sees stream order, but
  a retried message comes back after newer ones).
* Survival of unread messages under ``maxlen``: approximate ``MAXLEN ~`` trimming removes the
  oldest entries whether or not they were consumed or acked. Size it well above the backlog.
* Durability across a server restart without persistence (AOF/RDB): that is server config.
* That a message is handled by one worker at a time. Idleness is the only sign that a
  worker is gone, so set ``min_idle_ms`` well above the slowest handler's run time. When a
  handler runs longer than ``min_idle_ms``, another worker's ``claim_stale`` takes the
  message it is still working on: it runs a second handler on it at the same time, or —
  when the message has already been delivered ``max_deliveries`` times — moves it to
  ``<stream>:dead``. In that second case, when the first handler then succeeds, its ack
  finds nothing pending: the message was processed, yet it sits in the dead-letter stream.

Keys (built only in ``stream_keys``): the stream ``stream`` and its dead-letter stream
``stream + ":dead"``. Both must share a cluster slot, so the stream name needs a hash tag:
a name that has one (``lab:04:{orders}``) is used as given; otherwise its last ``:``
segment is wrapped in one (``lab:04:orders`` -> ``lab:04:{orders}``). ``queue.stream`` and
``queue.dead`` hold the names in use.

Payloads: a flat mapping of ``str`` to ``str``/``int``/``float`` is stored as stream fields
(readable in ``redis-cli``); anything else JSON-serialisable goes into one field, ``_json``.
Field names starting with ``_`` are reserved for labkit's bookkeeping. A ``nan`` or
``inf`` float is refused anywhere in a payload (``TypeError``), flat or JSON.

Clients: ``StreamQueue`` and ``Worker`` work with a client that decodes responses or one
that does not (``decode_responses=False``): ids, field names and values, and consumer names
always come back as ``str`` (UTF-8).
"""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import redis

from labkit.keys import as_text

JSON_FIELD = "_json"
DEFAULT_MAX_DELIVERIES = 5

# Moves one pending entry to the dead-letter stream and acks it. Shared by both scripts.
# In the caller's scope: stream, dead, group; arguments: id, consumer, deliveries, error.
_MOVE_TO_DEAD = """
local function move_to_dead(id, owner, deliveries, err)
  local entry = redis.call('XRANGE', stream, id, id)
  local fields = {}
  if #entry > 0 then fields = entry[1][2] end
  redis.call('XADD', dead, '*', '_origin_id', id, '_deliveries', deliveries,
             '_error', err, '_consumer', owner, unpack(fields))
  redis.call('XACK', stream, group, id)
end
"""


class GroupNotFoundError(ValueError):
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

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def _has_hash_tag(name: str) -> bool:
    start = name.find("{")
    return start >= 0 and name.find("}", start + 1) > start + 1


def stream_keys(stream: str) -> tuple[str, str]:
    """``(stream, dead_letter_stream)`` as stored, both in one cluster slot (module doc)."""
    if not isinstance(stream, str):
        raise TypeError(f"stream must be a str, got {type(stream).__name__}")
    if not stream:
        raise ValueError("stream must be a non-empty string")
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


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def _check_duration(name: str, value: Any) -> float:
    """A finite, non-negative duration (seconds or ms): ``nan`` and ``inf`` are refused."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be >= 0 and finite, got {value!r}")
    return float(value)


def _check_name(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__}")
    if not value:
        raise ValueError(f"{name} must be a non-empty string")
    return value


def encode_payload(data: Any) -> dict[str, str | int | float]:
    """Stream fields for ``data`` (see the module doc); ValueError/TypeError on bad input."""
    if data is None or (isinstance(data, str | bytes | list | tuple | Mapping) and not data):
        raise ValueError(f"data must not be empty, got {data!r}")
    if isinstance(data, Mapping) and all(
        isinstance(k, str)
        and isinstance(v, str | int | float)
        and not isinstance(v, bool)
        and not (isinstance(v, float) and not math.isfinite(v))
        for k, v in data.items()
    ):
        reserved = [k for k in data if k.startswith("_")]
        if reserved:
            raise ValueError(f"data field names starting with '_' are reserved, got {reserved}")
        return dict(data)
    # a flat mapping holding nan/inf lands here too, and is refused like a JSON one
    try:
        return {JSON_FIELD: json.dumps(data, separators=(",", ":"), allow_nan=False)}
    except (TypeError, ValueError) as exc:
        raise TypeError(f"data must be a flat mapping or JSON-serialisable: {exc}") from None


def _fields(flat: list[Any] | dict[Any, Any] | None) -> dict[str, str]:
    if flat is None:
        return {}
    pairs = flat.items() if isinstance(flat, dict) else zip(flat[::2], flat[1::2], strict=True)
    return {as_text(k): as_text(v) for k, v in pairs}


class StreamQueue:
    """A consumer group on one stream, with retries and dead-lettering (module doc).

    ``maxlen``: approximate cap on the stream length (``XADD MAXLEN ~``); ``None`` keeps
    everything. ``max_deliveries``: deliveries after which a failing message is
    dead-lettered.
    """

    # Claim pending entries for one consumer; dead-letter those delivered too often.
    # KEYS[1] stream, KEYS[2] dead-letter stream (same hash tag)
    # ARGV[1] group, ARGV[2] consumer,
    # ARGV[3] mode: "own" (this consumer's pending entries, oldest first) or "stale" (any
    #         consumer's entries idle >= ARGV[4] ms, via XAUTOCLAIM ... JUSTID),
    # ARGV[4] min idle ms, ARGV[5] count,
    # ARGV[6] start: "own" an XPENDING lower bound ("-" or "(id"); "stale" an XAUTOCLAIM cursor,
    # ARGV[7] max deliveries.
    # Returns {entries, dead_lettered, gone, next_start}; entries = {{id, fields, deliveries}}.
    # An entry already delivered ARGV[7] times is moved to KEYS[2] instead of being claimed;
    # an entry trimmed from the stream while pending is acked and counted in "gone".
    CLAIM_SCRIPT = (
        "local stream, dead, group = KEYS[1], KEYS[2], ARGV[1]\n"
        + _MOVE_TO_DEAD
        + """
local consumer, mode = ARGV[2], ARGV[3]
local min_idle, count, start = ARGV[4], tonumber(ARGV[5]), ARGV[6]
local max_deliveries = tonumber(ARGV[7])
local ids, next_start = {}, ''
if mode == 'stale' then
  local res = redis.call('XAUTOCLAIM', stream, group, consumer, min_idle, start,
                         'COUNT', count, 'JUSTID')
  next_start = res[1]
  ids = res[2]
else
  local rows = redis.call('XPENDING', stream, group, start, '+', count, consumer)
  for i, row in ipairs(rows) do ids[i] = row[1] end
  if #ids > 0 then next_start = '(' .. ids[#ids] end
end
local out, dead_lettered, gone = {}, 0, 0
for _, id in ipairs(ids) do
  local row = redis.call('XPENDING', stream, group, id, id, 1)[1]
  if row then
    local n = tonumber(row[4])
    if n >= max_deliveries then
      move_to_dead(id, row[2], n, 'not acked after ' .. n .. ' deliveries')
      dead_lettered = dead_lettered + 1
    else
      local claimed = redis.call('XCLAIM', stream, group, consumer, 0, id)
      if claimed[1] then
        out[#out + 1] = {claimed[1][1], claimed[1][2], n + 1}
      else
        redis.call('XACK', stream, group, id)
        gone = gone + 1
      end
    end
  end
end
return {out, dead_lettered, gone, next_start}
"""
    )

    # Dead-letter one entry whose handler failed, if the consumer still owns it.
    # KEYS[1] stream, KEYS[2] dead-letter stream (same hash tag)
    # ARGV[1] group, ARGV[2] entry id, ARGV[3] consumer, ARGV[4] error text
    # Returns 1 when moved, 0 when the entry is no longer pending for ARGV[3].
    DEAD_LETTER_SCRIPT = (
        "local stream, dead, group = KEYS[1], KEYS[2], ARGV[1]\n"
        + _MOVE_TO_DEAD
        + """
local row = redis.call('XPENDING', stream, group, ARGV[2], ARGV[2], 1)[1]
if not row or row[2] ~= ARGV[3] then return 0 end
move_to_dead(ARGV[2], ARGV[3], tonumber(row[4]), ARGV[4])
return 1
"""
    )

    def __init__(
        self,
        r: Any,
        stream: str,
        group: str,
        maxlen: int | None = None,
        *,
        max_deliveries: int = DEFAULT_MAX_DELIVERIES,
    ) -> None:
        self.stream, self.dead = stream_keys(stream)
        self.group = _check_name("group", group)
        self.maxlen = None if maxlen is None else _check_int("maxlen", maxlen, 1)
        self.max_deliveries = _check_int("max_deliveries", max_deliveries, 1)
        self.r = r
        self._claim_script = r.register_script(self.CLAIM_SCRIPT)
        self._dead_script = r.register_script(self.DEAD_LETTER_SCRIPT)

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
        _check_name("consumer", consumer)
        try:
            return bool(self.r.xgroup_createconsumer(self.stream, self.group, consumer))
        except redis.ResponseError as exc:
            raise self._no_group(exc) from None

    def add(self, data: Any) -> str:
        """Append one message; return its stream id."""
        fields = encode_payload(data)
        return as_text(self._xadd(self.r, fields))

    def add_many(self, items: Iterable[Any]) -> list[str]:
        """Append many messages in one round trip (a pipeline); return their ids."""
        encoded = [encode_payload(item) for item in items]
        if not encoded:
            return []
        pipe = self.r.pipeline(transaction=False)
        for fields in encoded:
            self._xadd(pipe, fields)
        return [as_text(i) for i in pipe.execute()]

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
        _check_name("consumer", consumer)
        _check_int("count", count, 1)
        if block_ms is not None:
            _check_int("block_ms", block_ms, 1)
        try:
            reply = self.r.xreadgroup(
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
        return [Message(as_text(mid), _fields(flds)) for batch in batches for mid, flds in batch]

    def ack(self, *ids: str) -> int:
        """Acknowledge processed messages; return how many were pending."""
        if not ids:
            return 0
        for mid in ids:
            _check_name("ids", mid)
        return int(self.r.xack(self.stream, self.group, *ids))

    def pending(self) -> PendingSummary:
        """Delivered-but-unacked entries of the group, in total and per consumer."""
        try:
            raw = self.r.xpending(self.stream, self.group)
        except redis.ResponseError as exc:
            raise self._no_group(exc) from None
        consumers = {as_text(c["name"]): int(c["pending"]) for c in raw.get("consumers") or []}
        lowest, highest = raw.get("min"), raw.get("max")
        return PendingSummary(
            int(raw["pending"]),
            None if lowest is None else as_text(lowest),
            None if highest is None else as_text(highest),
            consumers,
        )

    def _claim(
        self, consumer: str, mode: str, min_idle_ms: int, count: int, start: str
    ) -> tuple[list[Message], int, int, str]:
        try:
            entries, dead, gone, next_start = self._claim_script(
                keys=[self.stream, self.dead],
                args=[self.group, consumer, mode, min_idle_ms, count, start, self.max_deliveries],
            )
        except redis.ResponseError as exc:
            raise self._no_group(exc) from None
        messages = [Message(as_text(e[0]), _fields(e[1]), int(e[2])) for e in entries]
        return messages, int(dead), int(gone), as_text(next_start)

    def recover(self, consumer: str, count: int = 100) -> list[Message]:
        """Re-deliver ``consumer``'s own pending messages (the oldest ``count``): what a
        restarted worker does first. Entries delivered ``max_deliveries`` times already are
        dead-lettered instead."""
        _check_name("consumer", consumer)
        _check_int("count", count, 1)
        return self._claim(consumer, "own", 0, count, "-")[0]

    def claim_stale(self, consumer: str, min_idle_ms: int, count: int = 100) -> list[Message]:
        """Take over up to ``count`` messages any consumer has held unacked for at least
        ``min_idle_ms`` (XAUTOCLAIM), dead-lettering those delivered ``max_deliveries``
        times already."""
        _check_name("consumer", consumer)
        _check_int("min_idle_ms", min_idle_ms, 0)
        _check_int("count", count, 1)
        return self._claim(consumer, "stale", min_idle_ms, count, "0-0")[0]

    def dead_letter(self, message_id: str, consumer: str, error: str) -> bool:
        """Move a message ``consumer`` holds to the dead-letter stream and ack it.

        False when the message is no longer pending for ``consumer`` (acked, or claimed by
        another consumer meanwhile).
        """
        _check_name("message_id", message_id)
        _check_name("consumer", consumer)
        if not isinstance(error, str):
            raise TypeError(f"error must be a str, got {type(error).__name__}")
        try:
            moved = self._dead_script(
                keys=[self.stream, self.dead], args=[self.group, message_id, consumer, error]
            )
        except redis.ResponseError as exc:
            raise self._no_group(exc) from None
        return bool(moved)

    def dead_letters(self, count: int = 100) -> list[DeadLetter]:
        """The oldest ``count`` entries of the dead-letter stream."""
        _check_int("count", count, 1)
        out = []
        for mid, raw in self.r.xrange(self.dead, count=count):
            flds = _fields(raw)
            out.append(
                DeadLetter(
                    id=as_text(mid),
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
       its own pending entries (a previous run died holding
       them).
    2. Loop: every ``claim_every_s`` take over entries idle >= ``min_idle_ms`` from any
       consumer (dead ones, or failures waiting for a retry); read up to ``count`` new
       entries, blocking at most ``block_ms``; run ``handler`` on each; ack the successes
       of the batch in one XACK.
    3. A handler that raises leaves its message pending, so it is retried after
       ``min_idle_ms``; on its ``max_deliveries``-th failure it is dead-lettered.
    4. ``stop()`` (or SIGTERM/SIGINT when ``run`` is on the main thread) finishes the
       current message, acks, and returns; unhandled entries of the batch stay pending.

    ``exit_when_idle``: return when no new message came and the group has nothing pending
    (experiments and tests use it to end when the work is done). ``clock`` is injectable.
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
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not isinstance(queue, StreamQueue):
            raise TypeError(f"queue must be a StreamQueue, got {type(queue).__name__}")
        if not callable(handler):
            raise TypeError(f"handler must be callable, got {type(handler).__name__}")
        self.queue = queue
        self.consumer = _check_name("consumer", consumer)
        self.handler = handler
        self.count = _check_int("count", count, 1)
        self.block_ms = _check_int("block_ms", block_ms, 1)
        self.min_idle_ms = _check_int("min_idle_ms", min_idle_ms, 0)
        self.claim_every_s = _check_duration("claim_every_s", claim_every_s)
        self.exit_when_idle = exit_when_idle
        self.clock = clock
        self.stats = WorkerStats()
        self._stop = threading.Event()

    def stop(self) -> None:
        """Ask the loop to finish the current message and return."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def _handle(self, messages: list[Message]) -> None:
        if not messages:
            return
        self.stats.batches += 1
        done: list[str] = []
        try:
            for message in messages:
                if self._stop.is_set():
                    break
                try:
                    self.handler(message)
                except Exception as exc:
                    self.stats.failed += 1
                    if message.deliveries >= self.queue.max_deliveries and self.queue.dead_letter(
                        message.id, self.consumer, f"{type(exc).__name__}: {exc}"
                    ):
                        self.stats.dead_lettered += 1
                else:
                    done.append(message.id)
                    self.stats.processed += 1
        finally:
            self.queue.ack(*done)

    def _recover(self) -> None:
        start = "-"
        while not self._stop.is_set():
            messages, dead, _, start = self.queue._claim(self.consumer, "own", 0, self.count, start)
            self.stats.dead_lettered += dead
            self.stats.recovered += len(messages)
            self._handle(messages)
            if not start:
                return

    def _claim_stale(self) -> None:
        messages, dead, _, _ = self.queue._claim(
            self.consumer, "stale", self.min_idle_ms, self.count, "0-0"
        )
        self.stats.dead_lettered += dead
        self.stats.claimed += len(messages)
        self._handle(messages)

    def run(self, *, install_signals: bool = True) -> WorkerStats:
        """Run until ``stop()``, a signal, or (``exit_when_idle``) no work left."""
        previous: dict[int, Any] = {}
        if install_signals and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                previous[sig] = signal.signal(sig, lambda *_: self._stop.set())
        try:
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
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return self.stats


# -- worker processes -----------------------------------------------------------------------


def recording_handler(
    r: Any, seen_key: str, *, fail_field: str | None = None, work_ms: float = 0.0
) -> Callable[[Message], None]:
    """A handler for experiments and tests: counts every delivery of a message id in the
    hash ``seen_key`` (HINCRBY, one round trip), spends ``work_ms`` "working", then raises
    ``ValueError`` if the payload has a truthy ``fail_field`` (a poison message).

    Idempotent in effect: the set of ids in the hash is the same however often a message
    is delivered; the counts show how often that was."""
    _check_name("seen_key", seen_key)
    _check_duration("work_ms", work_ms)

    def handle(message: Message) -> None:
        r.hincrby(seen_key, message.id, 1)
        if work_ms:
            time.sleep(work_ms / 1000)
        if fail_field is not None:
            data = message.data
            if isinstance(data, Mapping) and data.get(fail_field) not in (None, "", "0", 0):
                raise ValueError(f"poison message {message.id}")

    return handle


def run_worker(
    url: str,
    stream: str,
    group: str,
    consumer: str,
    handler_factory: Callable[..., Callable[[Message], object]],
    handler_kwargs: Mapping[str, Any] | None = None,
    queue_kwargs: Mapping[str, Any] | None = None,
    worker_kwargs: Mapping[str, Any] | None = None,
) -> dict[str, int]:
    """Entry point for a worker *process* (multiprocessing ``spawn``/``forkserver``): connect
    to ``url``, build the handler with ``handler_factory(r, **handler_kwargs)`` (a
    module-level function, so it pickles), run a ``Worker`` until it stops, close the
    connection, return its stats."""
    r = redis.Redis.from_url(url, decode_responses=True)
    try:
        queue = StreamQueue(r, stream, group, **dict(queue_kwargs or {}))
        handler = handler_factory(r, **dict(handler_kwargs or {}))
        worker = Worker(queue, consumer, handler, **dict(worker_kwargs or {}))
        return worker.run().as_dict()
    finally:
        r.close()


def start_worker_process(
    url: str,
    queue: StreamQueue,
    consumer: str,
    seen_key: str,
    *,
    fail_field: str | None = None,
    work_ms: float = 0.0,
    count: int = 10,
    block_ms: int = 100,
    min_idle_ms: int = 30_000,
    claim_every_s: float = 1.0,
    exit_when_idle: bool = False,
) -> subprocess.Popen[str]:
    """Start a child process running a ``Worker`` with ``recording_handler`` on ``queue``;
    its stats are printed as JSON on stdout when it stops (SIGTERM/SIGINT or
    ``exit_when_idle``). The caller owns the process: wait for it, or kill it.

    The child runs this file as a script (``python -P .../streams.py``, the CLI in
    ``main``): it imports only redis-py, not the rest of labkit (pandas), so it starts in a
    fraction of the time ``python -m labkit.streams`` takes."""
    _check_name("url", url)
    # refuse bad settings here, not in a child process that would die on them
    _check_duration("work_ms", work_ms)
    _check_duration("claim_every_s", claim_every_s)
    _check_int("count", count, 1)
    _check_int("block_ms", block_ms, 1)
    _check_int("min_idle_ms", min_idle_ms, 0)
    args = [
        sys.executable, "-P", str(Path(__file__).resolve()), url, queue.stream, queue.group,
        _check_name("consumer", consumer), _check_name("seen_key", seen_key),
        "--work-ms", str(work_ms), "--max-deliveries", str(queue.max_deliveries),
        "--count", str(count), "--block-ms", str(block_ms),
        "--min-idle-ms", str(min_idle_ms), "--claim-every-s", str(claim_every_s),
    ]  # fmt: skip
    if fail_field is not None:
        args += ["--fail-field", fail_field]
    if exit_when_idle:
        args.append("--exit-when-idle")
    return subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True)


def main(argv: list[str] | None = None) -> int:
    """``python -m labkit.streams URL STREAM GROUP CONSUMER SEEN_KEY [options]`` (or
    ``python -P labkit/streams.py ...``): one worker process running ``recording_handler``;
    prints its stats as JSON when it stops."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m labkit.streams", description=main.__doc__)
    for name in ("url", "stream", "group", "consumer", "seen_key"):
        parser.add_argument(name)
    parser.add_argument("--fail-field", default=None)
    parser.add_argument("--work-ms", type=float, default=0.0)
    parser.add_argument("--max-deliveries", type=int, default=DEFAULT_MAX_DELIVERIES)
    parser.add_argument("--count", type=int, default=10)
    parser.add_argument("--block-ms", type=int, default=100)
    parser.add_argument("--min-idle-ms", type=int, default=30_000)
    parser.add_argument("--claim-every-s", type=float, default=1.0)
    parser.add_argument("--exit-when-idle", action="store_true")
    args = parser.parse_args(argv)
    stats = run_worker(
        args.url,
        args.stream,
        args.group,
        args.consumer,
        recording_handler,
        handler_kwargs={
            "seen_key": args.seen_key,
            "fail_field": args.fail_field,
            "work_ms": args.work_ms,
        },
        queue_kwargs={"max_deliveries": args.max_deliveries},
        worker_kwargs={
            "count": args.count,
            "block_ms": args.block_ms,
            "min_idle_ms": args.min_idle_ms,
            "claim_every_s": args.claim_every_s,
            "exit_when_idle": args.exit_when_idle,
        },
    )
    print(json.dumps(stats), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
