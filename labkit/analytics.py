"""Event analytics: per-day event counters, unique users three ways, and a raw event stream.

``Analytics(r, prefix=...)`` records each event with ``track_event(event, user_id, ts)`` in
one MULTI/EXEC transaction (one round trip) that touches only the keys of the event's day:

- ``<prefix>{YYYY-MM-DD}:events``   HASH  event name -> count (HINCRBY)
- ``<prefix>{YYYY-MM-DD}:users:set`` SET  user ids seen that day (exact)
- ``<prefix>{YYYY-MM-DD}:users:hll`` HyperLogLog of the user ids (<= 12 KiB, ~0.81% error)
- ``<prefix>{YYYY-MM-DD}:users:bitmap`` STRING, bit ``user_id`` set (dense integer ids only)
- ``<prefix>{YYYY-MM-DD}:stream``   STREAM of raw events, trimmed with approximate MAXLEN
- ``<prefix>{YYYY-MM-DD}:scratch:<uuid>`` and ``<prefix>{rollup:<uuid>}:...``: scratch keys
  that live only inside one transaction (bulk bitmap loads, multi-day unions)

The day is the UTC calendar day of the event's own timestamp (epoch seconds or an aware
datetime), never the local clock of the machine that records it. The day in braces is a
cluster hash tag: all keys of one day live in one slot, so the transaction is legal on a
cluster, and different days spread over the cluster. ``Analytics.key(date, kind)`` names them.

Guarantees:
- An event is counted in full or not at all: counters, unique-user structures and the
  stream entry are written in one transaction.
- ``unique_users(date, method="set")`` and ``method="bitmap"`` are exact;
  ``method="hll"`` is an estimate with a standard error of 0.81% (Redis docs) in at most
  12 KiB of registers whatever the number of users.
- ``active_users(end_date, days)`` (DAU/WAU/MAU) counts each user once across the days:
  PFCOUNT of several HLLs, BITOP OR of bitmaps, SUNIONSTORE of sets.

What it does not guarantee:
- ``track_events`` (bulk) is atomic per day-batch, not for the whole call.
- The stream keeps roughly the last ``stream_maxlen`` events per day (MAXLEN ~), not all.
- Deduplication: the same event recorded twice is counted twice.
- Spreading one day: on a cluster all of a day's writes go to the one shard that owns that
  day's slot (the price of a single-slot transaction); split the day into buckets
  (``{2026-11-29:3}``) if one node cannot absorb a day's traffic.
- The bitmap backend needs integer user ids in ``0 .. 2**32 - 1`` and costs one bit per
  possible id up to the largest one seen, so it pays off only when ids are dense.

Bad input never leaves a partial count: a transaction (MULTI/EXEC) does not roll back when
one of its commands fails, so everything that reaches Redis is checked before the first
command, with a TypeError/ValueError naming the argument and the accepted range. That
covers the constructor's ``stream_maxlen`` (``1 .. 2**63 - 1``, XADD's MAXLEN) and
``retention`` (``1 .. 2**46 / 1000`` seconds, so an EXPIRE deadline still fits), which are
used inside every write; timestamps (``0 .. 2**34`` epoch seconds, so ``time.time_ns()`` or
a value in ms is caught); user ids (ints in ``0 .. 2**63 - 1``, or ``2**32 - 1`` with the
bitmap); metadata values (str, 64-bit int, finite float); and every count.

``prefix`` is the literal start of every key and ends with ``:`` (default ``"analytics:"``);
in a notebook, ``ns.prefix_for("analytics")``.
"""

from __future__ import annotations

import numbers
import re
import time
import uuid
from bisect import bisect_left
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from labkit import checks
from labkit.checks import as_text
from labkit.client import Client, Clock, is_cluster

METHODS = ("set", "hll", "bitmap")
MAX_BITMAP_USER_ID = 2**32 - 1  # a Redis string holds at most 512 MB = 2**32 bits
MAX_RETENTION = checks.MAX_MS // 1000  # seconds: EXPIRE's deadline in ms must still fit
_EPOCH_DAY = date(1970, 1, 1)  # no event is recorded before it (timestamps are >= 0)
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# Bulk bitmap loading: ids are grouped in windows of this many bits (1 MiB of bitmap); a
# window with at least one id per _DENSE_BITS bits is sent as bytes and OR-ed in with BITOP
# (a SETBIT costs the client microseconds per id, a byte of bitmap costs nanoseconds), a
# sparser one as one SETBIT per id. Batches of up to _FEW_IDS ids always use SETBIT.
_WINDOW_BITS = 2**23
_DENSE_BITS = 4096
_FEW_IDS = 64

MetadataValue = str | int | float


def parse_date(value: str | date) -> str:
    """``"YYYY-MM-DD"`` for a date string or a ``datetime.date``; ValueError otherwise."""
    if isinstance(value, datetime):
        raise TypeError("date must be a 'YYYY-MM-DD' string or a datetime.date, not a datetime")
    if isinstance(value, date):
        return value.isoformat()
    if not isinstance(value, str):
        raise TypeError(f"date must be a 'YYYY-MM-DD' string, not {type(value).__name__}")
    if not _DATE.fullmatch(value):
        raise ValueError(f"date must be in the form 'YYYY-MM-DD', got {value!r}")
    try:
        datetime.strptime(value, "%Y-%m-%d")
    except ValueError:
        raise ValueError(f"date must be a real calendar day 'YYYY-MM-DD', got {value!r}") from None
    return value


def utc_day(ts: float | datetime) -> str:
    """The UTC calendar day ``"YYYY-MM-DD"`` of epoch seconds or an aware datetime."""
    return datetime.fromtimestamp(_epoch("ts", ts), tz=UTC).date().isoformat()


def _epoch(arg: str, ts: object) -> float:
    """Epoch seconds in ``[0, 2**34]`` from a number or an aware datetime."""
    if isinstance(ts, datetime):
        if ts.tzinfo is None or ts.utcoffset() is None:
            raise ValueError(
                f"{arg} must be timezone-aware (the day is computed in UTC), got naive {ts!r}"
            )
        ts = ts.timestamp()
    return checks.epoch_seconds(arg, ts)


class Analytics:
    """Per-day event analytics under ``prefix`` (see the module docstring for the keys).

    ``methods`` names the unique-user backends to maintain, from ``"set"``, ``"hll"`` and
    ``"bitmap"``; the first is the one ``get_daily_stats`` reports. ``"bitmap"`` requires
    integer user ids. ``stream_maxlen`` caps each day's raw stream (approximately);
    ``retention`` (seconds), when given, re-arms an expiry on every key of a day that a
    write touches (``track_event``, ``track_events``, ``add_users``), in the same
    transaction. ``clock`` gives epoch seconds for events recorded without ``ts``.
    """

    def __init__(
        self,
        r: Client,
        prefix: str = "analytics:",
        *,
        methods: Sequence[str] = ("set", "hll"),
        stream_maxlen: int = 10_000,
        retention: int | None = None,
        clock: Clock = time.time,
    ) -> None:
        self.prefix = checks.prefix(prefix)
        if isinstance(methods, str) or not isinstance(methods, Iterable):
            raise TypeError(f"methods must be a sequence of method names, not {methods!r}")
        methods = tuple(checks.choice("methods", method, METHODS) for method in methods)
        if not methods:
            raise ValueError("methods must name at least one of 'set', 'hll', 'bitmap'")
        if len(set(methods)) != len(methods):
            raise ValueError(f"methods must not repeat, got {methods!r}")
        # Both are used inside every write transaction: checked here, once, so that no
        # write can fail half-way on them (MULTI/EXEC would keep the commands before).
        self.stream_maxlen = checks.integer("stream_maxlen", stream_maxlen, low=1)
        self.retention = (
            None
            if retention is None
            else checks.integer("retention", retention, low=1, high=MAX_RETENTION)
        )
        if not callable(clock):
            raise TypeError("clock must be a callable returning epoch seconds")
        self.r = r
        self.methods: tuple[str, ...] = methods
        self.clock = clock
        self._max_user_id = MAX_BITMAP_USER_ID if "bitmap" in methods else checks.MAX_INT

    # -- keys ------------------------------------------------------------------------------

    def _key(self, day: str, kind: str) -> str:
        """The one place keys are built: ``<prefix>{day}:<kind>``."""
        return f"{self.prefix}{{{day}}}:{kind}"

    def key(self, date: str | date, kind: str) -> str:
        """Name of a day's key; ``kind`` is events, stream, or a method (set/hll/bitmap)."""
        day = parse_date(date)
        if kind in METHODS:
            return self._key(day, f"users:{kind}")
        if kind in ("events", "stream"):
            return self._key(day, kind)
        raise ValueError(f"kind must be 'events', 'stream' or one of {METHODS}, got {kind!r}")

    # -- validation ------------------------------------------------------------------------

    def _check_method(self, method: str | None) -> str:
        if method is None:
            return self.methods[0]
        checks.choice("method", method, METHODS)
        if method not in self.methods:
            raise ValueError(
                f"method {method!r} is not maintained by this Analytics "
                f"(methods={self.methods}); construct it with methods including {method!r}"
            )
        return method

    def _check_user(self, arg: str, user_id: object) -> str | int:
        if isinstance(user_id, str):
            if "bitmap" in self.methods:
                raise TypeError(
                    f"{arg} must be an int when the 'bitmap' method is on, got {user_id!r}"
                )
            return checks.user_id(arg, user_id)
        if isinstance(user_id, bool) or not isinstance(user_id, numbers.Integral):
            raise TypeError(f"{arg} must be a str or an int, not {type(user_id).__name__}")
        return checks.integer(arg, user_id, low=0, high=self._max_user_id)

    def _check_users(self, user_ids: Iterable[str | int]) -> list[str | int]:
        """Every id checked; a large batch of in-range ints (the bulk case) in one pass."""
        if isinstance(user_ids, (str, bytes)):
            raise TypeError("user_ids must be an iterable of user ids, not a single str")
        # An array (numpy or alike) converts itself to Python ints at C speed: duck typing
        # keeps numpy out of this module while a million ids still take milliseconds.
        tolist = getattr(user_ids, "tolist", None)
        ids: list[Any] = list(tolist() if callable(tolist) else user_ids)
        fast = ids and all(type(uid) is int for uid in ids)
        if fast and min(ids) >= 0 and max(ids) <= self._max_user_id:
            return ids
        return [self._check_user(f"user_ids[{i}]", uid) for i, uid in enumerate(ids)]

    @staticmethod
    def _check_metadata(arg: str, metadata: Mapping[Any, object]) -> dict[str, MetadataValue]:
        clean: dict[str, MetadataValue] = {}
        for name, value in metadata.items():
            checks.text(f"{arg} name", name)
            if name in ("event", "user_id", "ts"):
                raise ValueError(f"{arg} name {name!r} is reserved")
            what = f"{arg} {name!r}"
            if isinstance(value, str):
                clean[name] = value
            elif isinstance(value, float):
                clean[name] = checks.number(what, value)
            elif isinstance(value, int) and not isinstance(value, bool):
                clean[name] = checks.integer(what, value, low=-checks.MAX_INT - 1)
            else:
                raise TypeError(f"{what} must be a str, int or float, not {type(value).__name__}")
        return clean

    # -- writing ---------------------------------------------------------------------------

    def track_event(
        self,
        event: str,
        user_id: str | int,
        ts: float | datetime | None = None,
        **metadata: MetadataValue,
    ) -> str:
        """Record one event in one transaction; return the UTC day it was counted on.

        ``ts`` is epoch seconds or an aware datetime (default: ``clock()``); ``metadata``
        (str, int or finite float values) is stored with the raw event in the day's stream.
        """
        event = checks.text("event", event)
        uid = self._check_user("user_id", user_id)
        epoch = _epoch("clock()", self.clock()) if ts is None else _epoch("ts", ts)
        fields = self._check_metadata("metadata", metadata)
        day = utc_day(epoch)
        pipe = self.r.pipeline(transaction=True)
        self._queue_day(pipe, day, Counter({event: 1}), [uid], [(event, uid, epoch, fields)])
        pipe.execute()
        return day

    def track_events(
        self, events: Iterable[Mapping[str, Any]], *, batch: int = 5_000
    ) -> dict[str, int]:
        """Record many events: each row a mapping with ``event``, ``user_id``, ``ts`` and
        any other fields as metadata. Returns events recorded per UTC day.

        Rows are grouped by day; each group of up to ``batch`` rows of one day is one
        transaction (one round trip), so every event is counted in full or not at all, but
        the call as a whole is not atomic. Every row is validated before anything is sent.
        """
        checks.integer("batch", batch, low=1)
        by_day: dict[str, list[tuple[str, str | int, float, dict[str, MetadataValue]]]] = (
            defaultdict(list)
        )
        for i, row in enumerate(events):
            if not isinstance(row, Mapping):
                raise TypeError(f"events[{i}] must be a mapping, not {type(row).__name__}")
            missing = [name for name in ("event", "user_id") if name not in row]
            if missing:
                raise ValueError(f"events[{i}] lacks {', '.join(missing)}")
            rest = {k: v for k, v in row.items() if k not in ("event", "user_id", "ts")}
            event = checks.text(f"events[{i}]['event']", row["event"])
            uid = self._check_user(f"events[{i}]['user_id']", row["user_id"])
            ts = row.get("ts")
            epoch = (
                _epoch("clock()", self.clock()) if ts is None else _epoch(f"events[{i}]['ts']", ts)
            )
            fields = self._check_metadata(f"events[{i}] field", rest)
            by_day[utc_day(epoch)].append((event, uid, epoch, fields))
        recorded: dict[str, int] = {}
        for day in sorted(by_day):
            rows = by_day[day]
            for start in range(0, len(rows), batch):
                chunk = rows[start : start + batch]
                pipe = self.r.pipeline(transaction=True)
                counts = Counter(event for event, _, _, _ in chunk)
                users = list(dict.fromkeys(uid for _, uid, _, _ in chunk))
                self._queue_day(pipe, day, counts, users, chunk)
                pipe.execute()
            recorded[day] = len(rows)
        return recorded

    def _queue_day(
        self,
        pipe: Any,
        day: str,
        counts: Mapping[str, int],
        users: Sequence[str | int],
        raw: Sequence[tuple[str, str | int, float, Mapping[str, MetadataValue]]],
    ) -> None:
        """Queue one day's writes on ``pipe``: counters, unique users, stream entries."""
        events_key = self._key(day, "events")
        for event, n in counts.items():
            pipe.hincrby(events_key, event, n)
        touched = [events_key]
        touched += self._queue_users(pipe, day, users)
        stream_key = self._key(day, "stream")
        for event, uid, epoch, fields in raw:
            entry: dict[str, MetadataValue] = {
                "event": event,
                "user_id": uid,
                "ts": repr(epoch),
                **fields,
            }
            pipe.xadd(stream_key, entry, maxlen=self.stream_maxlen, approximate=True)
        touched.append(stream_key)
        self._queue_expire(pipe, touched)

    def _queue_expire(self, pipe: Any, keys: Sequence[str]) -> None:
        """With ``retention``, queue an EXPIRE (re-)arming it on every key written."""
        if self.retention is not None:
            for key in keys:
                pipe.expire(key, self.retention)

    def _queue_users(self, pipe: Any, day: str, users: Sequence[str | int]) -> list[str]:
        touched = []
        if "set" in self.methods:
            key = self._key(day, "users:set")
            pipe.sadd(key, *users)
            touched.append(key)
        if "hll" in self.methods:
            key = self._key(day, "users:hll")
            pipe.pfadd(key, *users)
            touched.append(key)
        if "bitmap" in self.methods:
            key = self._key(day, "users:bitmap")
            if len(users) <= _FEW_IDS:  # one event, or a small batch: plain SETBITs
                for uid in users:
                    pipe.setbit(key, int(uid), 1)
            else:
                self._queue_bits(pipe, day, key, [int(uid) for uid in users])
            touched.append(key)
        return touched

    def _queue_bits(self, pipe: Any, day: str, key: str, ids: Sequence[int]) -> None:
        """Set bit ``id`` of ``key`` for every id: SETBIT when sparse, bytes + BITOP OR when
        dense (a dense window costs one command instead of one per id)."""
        unique = sorted(set(ids))
        scratch = self._key(day, "scratch:" + uuid.uuid4().hex)
        start = 0
        while start < len(unique):
            window_end = (unique[start] // _WINDOW_BITS + 1) * _WINDOW_BITS
            stop = bisect_left(unique, window_end, start)
            in_window, start = unique[start:stop], stop
            lo_byte, hi_byte = in_window[0] // 8, in_window[-1] // 8
            if len(in_window) * _DENSE_BITS < (hi_byte - lo_byte + 1) * 8:
                for uid in in_window:
                    pipe.setbit(key, uid, 1)
                continue
            bits = bytearray(hi_byte - lo_byte + 1)
            base = lo_byte * 8
            for uid in in_window:
                offset = uid - base
                bits[offset >> 3] |= 0x80 >> (offset & 7)  # bit 0 is the MSB, as in Redis
            pipe.setrange(scratch, lo_byte, bytes(bits))
            pipe.execute_command("BITOP", "OR", key, key, scratch)
            pipe.delete(scratch)

    def add_users(
        self,
        date: str | date,
        user_ids: Iterable[str | int],
        *,
        batch: int = 10_000,
    ) -> int:
        """Bulk-record users as active on ``date`` in every maintained backend (no events).

        For backfills and experiments: ``batch`` ids per transaction (PFADD and SADD take
        many members per call; dense bitmap ids go as bytes). ``user_ids`` is any iterable
        of ids, or an integer array (anything with ``tolist()``, such as a numpy array).
        Every id is checked before the first transaction. With ``retention``, each
        transaction also re-arms the expiry of the keys it wrote. Returns how many ids were
        sent.
        """
        day = parse_date(date)
        checks.integer("batch", batch, low=1)
        ids = self._check_users(user_ids)
        if not ids:
            return 0
        for start in range(0, len(ids), batch):
            pipe = self.r.pipeline(transaction=True)
            self._queue_expire(pipe, self._queue_users(pipe, day, ids[start : start + batch]))
            pipe.execute()
        return len(ids)

    # -- reading ---------------------------------------------------------------------------

    def _queue_count(self, pipe: Any, day: str, method: str) -> None:
        key = self._key(day, f"users:{method}")
        if method == "set":
            pipe.scard(key)
        elif method == "hll":
            pipe.execute_command("PFCOUNT", key)
        else:
            pipe.bitcount(key)

    def get_daily_stats(self, date: str | date) -> dict[str, Any]:
        """``{"total_events", "unique_users", "events": {name: count}}`` for a UTC day, ints.

        Unique users come from the first of ``methods``. One round trip.
        """
        day = parse_date(date)
        pipe = self.r.pipeline(transaction=True)
        pipe.hgetall(self._key(day, "events"))
        self._queue_count(pipe, day, self.methods[0])
        raw, unique = pipe.execute()
        events = {as_text(name): int(n) for name, n in raw.items()}
        return {
            "total_events": sum(events.values()),
            "unique_users": int(unique),
            "events": dict(sorted(events.items())),
        }

    def unique_users(self, date: str | date, method: str | None = None) -> int:
        """Distinct users active on a UTC day: SCARD (set), PFCOUNT (hll), BITCOUNT (bitmap)."""
        day = parse_date(date)
        method = self._check_method(method)
        pipe = self.r.pipeline(transaction=False)
        self._queue_count(pipe, day, method)
        return int(pipe.execute()[0])

    def memory_usage(self, date: str | date, method: str | None = None) -> int:
        """Bytes the day's unique-user structure takes (``MEMORY USAGE key SAMPLES 0``,
        exact even for a big set); 0 when the day has no such key."""
        day = parse_date(date)
        method = self._check_method(method)
        used = self.r.memory_usage(self._key(day, f"users:{method}"), samples=0)
        return int(used or 0)

    def active_users(self, end_date: str | date, days: int = 1, method: str | None = None) -> int:
        """Distinct users active in the ``days`` UTC days ending ``end_date`` (inclusive).

        ``days=1`` is DAU, 7 WAU, 30 MAU. hll: PFCOUNT of the day keys (a merge in the
        server, nothing written); bitmap: BITOP OR into a scratch key, BITCOUNT, DEL;
        set: SUNIONSTORE into a scratch key, DEL. On a cluster client the day keys live
        in different slots, so they are first copied (DUMP/RESTORE) under one hash tag.
        No event is recorded before 1970-01-01 (timestamps are epoch seconds >= 0), so a
        window reaching back before it is refused: ValueError naming ``days`` (or
        ``end_date``, when that day is itself before 1970).
        """
        end = parse_date(end_date)
        checks.integer("days", days, low=1, high=366)
        method = self._check_method(method)
        last = date.fromisoformat(end)
        if last < _EPOCH_DAY:
            raise ValueError(
                f"end_date must be 1970-01-01 or later (no event is recorded before the "
                f"epoch), got {end!r}"
            )
        if last - timedelta(days=days - 1) < _EPOCH_DAY:
            most = (last - _EPOCH_DAY).days + 1
            raise ValueError(
                f"days must be between 1 and {most} for end_date={end!r}: {days} days reach "
                "back before 1970-01-01, where no event is recorded"
            )
        day_list = [(last - timedelta(days=i)).isoformat() for i in range(days)]
        keys = [self._key(day, f"users:{method}") for day in day_list]
        if days == 1:
            return self.unique_users(end, method)
        tag = f"rollup:{uuid.uuid4().hex}"
        if not is_cluster(self.r):
            pipe = self.r.pipeline(transaction=True)
            index = self._queue_union(pipe, keys, tag, method, cleanup=[])
            return int(pipe.execute()[index])
        # Cluster: the days live in different slots. Copy them under one hash tag first.
        pipe = self.r.pipeline(transaction=False)
        for key in keys:
            pipe.dump(key)
        payloads = [p for p in pipe.execute() if p is not None]
        if not payloads:
            return 0
        copies = [self._key(tag, f"copy:{i}") for i in range(len(payloads))]
        pipe = self.r.pipeline(transaction=True)
        for copy, payload in zip(copies, payloads, strict=True):
            pipe.restore(copy, 60_000, payload)  # a TTL, in case we die before the DEL
        index = len(copies) + self._queue_union(pipe, copies, tag, method, cleanup=copies)
        return int(pipe.execute()[index])

    def _queue_union(
        self, pipe: Any, keys: list[str], tag: str, method: str, cleanup: list[str]
    ) -> int:
        """Queue a count of the union of ``keys`` (and the deletion of the scratch key and
        ``cleanup``); return the index of the count among the queued replies."""
        scratch = self._key(tag, "union")
        if method == "hll":
            pipe.execute_command("PFCOUNT", *keys)
            index = 0
        elif method == "set":
            pipe.execute_command("SUNIONSTORE", scratch, *keys)
            index = 0
        else:
            pipe.execute_command("BITOP", "OR", scratch, *keys)
            pipe.bitcount(scratch)
            index = 1
        pipe.execute_command("DEL", scratch, *cleanup)
        return index

    def events(self, date: str | date, count: int = 100) -> list[dict[str, str]]:
        """The last ``count`` raw events of a UTC day, newest first, from the day's stream."""
        day = parse_date(date)
        checks.integer("count", count, low=1)
        entries: Any = self.r.xrevrange(self._key(day, "stream"), count=count)
        return [{as_text(k): as_text(v) for k, v in fields.items()} for _, fields in entries]
