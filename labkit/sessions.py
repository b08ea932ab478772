"""Server-side sessions in Redis: secure ids, per-field updates, idle and absolute timeouts.

``SessionStore(r)`` keeps each session in a Hash and each user's sessions in an index, so an
app can log a user out everywhere::

    store = SessionStore(r, idle_ttl=1800, absolute_ttl=8 * 3600, prefix="session:")
    sid = store.create_session("alice", theme="dark")      # the cookie value
    store.get_session(sid)                                  # Session(...) or None
    store.update_session(sid, cart=[3, 7])                  # HSET of that field only
    store.append_session(sid, "cart", 9)                    # append inside Redis
    sid = store.rotate_session(sid, role="admin")           # on login / privilege change
    store.destroy_user_sessions("alice")                    # log out everywhere

What it guarantees:

- **Unguessable ids.** 256 random bits from ``secrets`` per id (OWASP asks for >= 64, and
  recommends >= 128 for your own generator).
- **Unknown, expired, forged or malformed ids give None / False**, never ``KeyError``. An id
  is checked against a strict format before it reaches Redis, so it can never be a glob or
  a huge key.
- **No lost updates between fields.** ``update_session`` HSETs only the given fields, so two
  concurrent updates of different fields both survive (a JSON blob rewritten by
  read-modify-write loses one of them). Two requests that each read a field and write back
  a changed copy (``update_session(sid, cart=[*old, item])``) still lose one change: for a
  list, ``append_session`` appends inside the script, so concurrent appends all land.
- **Idle timeout** slides on every access (``get``, ``update``, ``refresh``, ``rotate``):
  the session stores its last-seen time, every call checks ``now - last_seen > idle_ttl``
  and then advances last-seen to now, and the key's TTL is reset to ``idle_ttl``. **Absolute
  timeout** holds regardless of activity: the session stores its created-at time, every
  call checks it, and the key's TTL is never set past ``created + absolute_ttl``.
  ``rotate_session`` keeps created-at: rotating cannot extend a session's life. Both
  timeouts are decided by the store's time (below); a session found over is deleted with
  its index entry, and every call then treats it as unknown.
- **Rotation kills the old id at once** (RENAME inside a script). **The user index stays
  consistent**: create, rotate and destroy change the session and the index in one script;
  entries of sessions that lapsed (TTL run out, or idle by the store's time) are dropped by
  ``list_user_sessions`` and ``destroy_user_sessions`` (so they never appear in a listing
  or count), and entries past their absolute deadline by every ``create_session``, so an
  index holds at most the sessions created within one ``absolute_ttl``. Whenever a
  session's TTL is set (create, access, rotate) the index's TTL is raised to at least as
  much, so the index never expires before one of its sessions, whatever the clock.
- **Every call is atomic and one round trip**: one Lua script (``labkit/lua/sessions/``,
  led by the shared ``clock`` and ``sessions`` preludes in ``labkit/lua/prelude/``; the
  class attributes ``CREATE``, ``GET``, ... hold the full text), registered once per
  client; the first call of a script on a server that has not cached it also loads it
  there. The
  one exception: a store's first ``set_expiring_fields`` (or ``supports_field_expiry``)
  call first sends a capability probe, ``COMMAND GETKEYS`` (see below); the answer is
  kept for the store's life, so later calls are one round trip again.
- **Bad input stops before the first command** (``labkit.checks``): a ``ValueError`` or
  ``TypeError`` names the argument and its range. Timeouts are whole milliseconds, rounded
  up, at most ``labkit.checks.MAX_MS`` (2**46 ms, about 2,230 years), so every deadline
  ``now + timeout`` stays exact in the scripts' doubles and fits PEXPIRE (an enormous
  ``idle_ttl`` used to leave a session Hash with no TTL at all, and an enormous
  ``absolute_ttl`` reported a negative lifetime). An injected clock must return seconds
  since the epoch (at most ``labkit.checks.MAX_EPOCH``), so a clock in ms or ns is refused.
- **Field expiry, where the server has it.** ``set_expiring_fields`` gives single fields a
  TTL of their own (HPEXPIRE: Redis 7.4+, Valkey 9+), e.g. a step-up-auth flag that must
  lapse after 5 minutes while the session lives on. ``supports_field_expiry()`` asks the
  server (COMMAND GETKEYS) instead of assuming; without it the method raises
  ``FieldExpiryUnsupportedError`` before sending anything.

What it does not do: sign or encrypt cookies (send the id over HTTPS, ``HttpOnly``,
``Secure``, ``SameSite``); detect a stolen id being replayed; survive a failover with async
replication without losing recent writes. Data values must be JSON-serialisable; each
field is stored as its own JSON text. Field names starting with ``_`` are reserved.

Keys (``P`` is ``prefix``, default ``"session:"``; like every labkit prefix it is the
literal start of each key and ends with ``:``)::

    P{b}:s:<token>    Hash  one session: user fields (JSON) + _uid, _created, _seen (ms)
    P{b}:u:<user_id>  ZSET  the user's session tokens, scored by absolute deadline (ms)

``b`` is the user's *bucket*: 3 hex digits of SHA-256(user_id), one of 4,096. A session id
is ``<b>.<token>``, so an id alone locates its Hash, and all of one user's keys share the
hash tag ``{b}``: every script touches a single slot and runs unchanged on a cluster. The
price: an id reveals its user's bucket (12 bits of a hash of the user id, shared with 1 in
4,096 users), not the user id. Scripts that walk the index build session key names from
``P{b}:s:``; they share KEYS[1]'s hash tag, so they stay in its slot. Key names are built
in one place, :class:`SessionKeys`.

Time comes from the server (``TIME`` inside each script) unless a ``clock`` is injected
(any zero-argument callable returning seconds, e.g. ``labkit.workloads.VirtualClock``).
The stored created-at and last-seen times come from that time, and the timeouts are checked
against it. Key TTLs run in real time whatever the clock: they collect garbage, so with a
clock slower than real time a session also ends when its key's TTL runs out in real time
(``idle_ttl`` after its last use, or sooner near its absolute deadline).
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import redis

from labkit import checks, scripts
from labkit.client import Client, Clock
from labkit.errors import LabkitError

__all__ = [
    "FieldExpiryUnsupportedError",
    "Session",
    "SessionKeys",
    "SessionStore",
]

TOKEN_BYTES = 32  # 256 bits from secrets.token_urlsafe
_TOKEN_CHARS = 43  # len(secrets.token_urlsafe(32))
BUCKET_HEX = 3  # 4,096 buckets
MAX_USER_ID = 256
DEFAULT_PREFIX = "session:"
_SID = re.compile(rf"([0-9a-f]{{{BUCKET_HEX}}})\.([A-Za-z0-9_-]{{{_TOKEN_CHARS}}})")
_UID = "_uid"
_CREATED = "_created"


class FieldExpiryUnsupportedError(LabkitError, RuntimeError):
    """The server has no hash-field expiry (HPEXPIRE needs Redis 7.4+ or Valkey 9+)."""


@dataclass(frozen=True)
class Session:
    """One session as ``get_session`` sees it."""

    sid: str
    user_id: str
    created_at: float  # seconds (server TIME, or the injected clock)
    idle_expires_in: float  # seconds until the session lapses if nobody touches it
    absolute_expires_in: float  # seconds until it ends whatever happens
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SessionKeys:
    """Every key name this module uses, built here and nowhere else."""

    prefix: str

    @staticmethod
    def bucket(user_id: str) -> str:
        return hashlib.sha256(user_id.encode()).hexdigest()[:BUCKET_HEX]

    def session_prefix(self, bucket: str) -> str:
        return f"{self.prefix}{{{bucket}}}:s:"

    def index_prefix(self, bucket: str) -> str:
        return f"{self.prefix}{{{bucket}}}:u:"

    def session(self, bucket: str, token: str) -> str:
        return self.session_prefix(bucket) + token

    def index(self, user_id: str) -> str:
        return self.index_prefix(self.bucket(user_id)) + user_id

    def session_key(self, sid: object) -> str | None:
        """The Hash holding session ``sid``, or None when ``sid`` is malformed."""
        parts = _parse_sid(sid)
        return self.session(*parts) if parts else None


def _parse_sid(sid: object) -> tuple[str, str] | None:
    if not isinstance(sid, str) or len(sid) != BUCKET_HEX + 1 + _TOKEN_CHARS:
        return None
    match = _SID.fullmatch(sid)
    return (match[1], match[2]) if match else None


def _encode_fields(fields: Mapping[str, Any]) -> list[str]:
    """``[name, json, name, json, ...]``; raises before anything reaches Redis."""
    flat: list[str] = []
    for name, value in fields.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"field names must be non-empty strings, got {name!r}")
        if name.startswith("_"):
            raise ValueError(f"field {name!r}: names starting with '_' are reserved")
        flat += [name, checks.json_text(f"field {name!r}", value)]
    return flat


class SessionStore:
    """Sessions in Redis Hashes with a per-user index; see the module docstring.

    ``r`` is a ``redis.Redis`` or ``redis.cluster.RedisCluster`` (either
    ``decode_responses``). ``idle_ttl`` and ``absolute_ttl`` are seconds (floats allowed:
    sub-second TTLs make demos fast); ``absolute_ttl`` must be >= ``idle_ttl``. ``prefix``
    starts every key and must not contain ``{`` or ``}`` (the store owns the hash tag).
    ``clock`` replaces the server's TIME with your own seconds, for tests and simulations.
    """

    # One script per operation, in labkit/lua/sessions/ (each file's header names its KEYS,
    # ARGV and reply), led by the clock and sessions preludes in labkit/lua/prelude/.
    CREATE: ClassVar[str] = scripts.load("sessions/create")
    GET: ClassVar[str] = scripts.load("sessions/get")
    UPDATE: ClassVar[str] = scripts.load("sessions/update")
    DESTROY: ClassVar[str] = scripts.load("sessions/destroy")
    ROTATE: ClassVar[str] = scripts.load("sessions/rotate")
    USER: ClassVar[str] = scripts.load("sessions/user")
    APPEND: ClassVar[str] = scripts.load("sessions/append")

    def __init__(
        self,
        r: Client,
        idle_ttl: float = 1800,
        absolute_ttl: float = 8 * 3600,
        prefix: str = DEFAULT_PREFIX,
        *,
        clock: Clock | None = None,
    ) -> None:
        self.idle_ms = checks.to_ms("idle_ttl", idle_ttl)
        self.absolute_ms = checks.to_ms("absolute_ttl", absolute_ttl)
        if self.absolute_ms < self.idle_ms:
            raise ValueError(
                f"absolute_ttl must be >= idle_ttl, got absolute_ttl={absolute_ttl} < "
                f"idle_ttl={idle_ttl}"
            )
        checks.prefix(prefix)
        if clock is not None and not callable(clock):
            raise TypeError(f"clock must be callable, not {type(clock).__name__}")
        self.r = r
        self.keys = SessionKeys(prefix)
        self._clock = clock
        self._field_expiry: bool | None = None
        self._create = scripts.register(r, self.CREATE)
        self._get = scripts.register(r, self.GET)
        self._update = scripts.register(r, self.UPDATE)
        self._destroy = scripts.register(r, self.DESTROY)
        self._rotate = scripts.register(r, self.ROTATE)
        self._user = scripts.register(r, self.USER)
        self._append = scripts.register(r, self.APPEND)

    # -- helpers -------------------------------------------------------------------------

    def _now(self) -> str:
        """ARGV[1]: '' (the server's TIME) or the injected clock's time in whole ms."""
        if self._clock is None:
            return ""
        return str(round(checks.epoch_seconds("clock()", self._clock()) * 1000))

    def _args(self, bucket: str, token: str) -> list[str | int]:
        return [self._now(), self.idle_ms, self.absolute_ms, self.keys.index_prefix(bucket), token]

    # -- the familiar vocabulary ---------------------------------------------------------

    def create_session(self, user_id: str | int, /, **data: Any) -> str:
        """Start a session for ``user_id`` holding ``data``; return its id (the cookie value)."""
        uid = checks.user_id("user_id", user_id, max_len=MAX_USER_ID)
        flat = _encode_fields(data)
        bucket = self.keys.bucket(uid)
        index = self.keys.index(uid)
        while True:  # a 256-bit collision will not happen, but never overwrite a session
            token = secrets.token_urlsafe(TOKEN_BYTES)
            args: list[str | int] = [self._now(), self.idle_ms, self.absolute_ms, token, uid, *flat]
            if self._create(keys=[self.keys.session(bucket, token), index], args=args):
                return f"{bucket}.{token}"

    def get_session(self, sid: object) -> Session | None:
        """The session, its idle TTL slid; None when ``sid`` is unknown, expired or malformed."""
        parts = _parse_sid(sid)
        if parts is None:
            return None
        reply = self._get(keys=[self.keys.session(*parts)], args=self._args(*parts))
        if not reply:
            return None
        ttl, left, flat = reply
        text = checks.as_text
        raw = {text(k): text(v) for k, v in zip(flat[::2], flat[1::2], strict=True)}
        data = {k: json.loads(v) for k, v in raw.items() if not k.startswith("_")}
        return Session(
            sid=str(sid),
            user_id=raw[_UID],
            created_at=int(raw[_CREATED]) / 1000,
            idle_expires_in=int(ttl) / 1000,
            absolute_expires_in=int(left) / 1000,
            data=data,
        )

    def update_session(self, sid: object, /, **fields: Any) -> bool:
        """HSET only ``fields`` and slide the idle TTL; False when the session is gone."""
        flat = _encode_fields(fields)
        parts = _parse_sid(sid)
        if parts is None:
            return False
        args = [*self._args(*parts), "", *flat]
        return bool(self._update(keys=[self.keys.session(*parts)], args=args))

    def append_session(self, sid: object, field: str, value: Any, /) -> bool:
        """Append ``value`` to the list in ``field`` and slide the idle TTL, in one script.

        Reading a list and writing back a longer copy is two round trips: two requests
        appending at once (a cart filled from two tabs) lose one item, even in a Hash. Here
        the append happens inside Redis, so concurrent appends all land. A missing field
        starts as ``[value]``. Returns False when the session is gone; raises TypeError when
        ``field`` holds something other than a list (the field is left as it was).
        """
        if not isinstance(field, str):
            raise TypeError(f"field must be a field name (str), not {type(field).__name__}")
        name, text = _encode_fields({field: value})
        parts = _parse_sid(sid)
        if parts is None:
            return False
        args = [*self._args(*parts), name, text]
        done = int(self._append(keys=[self.keys.session(*parts)], args=args))
        if done == -1:
            raise TypeError(f"field {field!r} does not hold a list: nothing was appended")
        return done == 1

    def refresh_session(self, sid: object) -> bool:
        """Slide the idle TTL (never past the absolute deadline); False when gone."""
        parts = _parse_sid(sid)
        if parts is None:
            return False
        args = [*self._args(*parts), ""]
        return bool(self._update(keys=[self.keys.session(*parts)], args=args))

    def destroy_session(self, sid: object) -> bool:
        """Delete the session and its index entry; False when there was none."""
        parts = _parse_sid(sid)
        if parts is None:
            return False
        return bool(self._destroy(keys=[self.keys.session(*parts)], args=self._args(*parts)))

    # -- what a secure store needs -------------------------------------------------------

    def rotate_session(self, sid: object, /, **fields: Any) -> str | None:
        """Move the session to a fresh id (the old one dies at once) and HSET ``fields``.

        Call it on login and on every privilege change (OWASP), passing the new privileges
        as ``fields`` so the switch is atomic. created-at is kept, so rotation never extends
        the absolute timeout. The session keeps its user: when login changes the user (an
        anonymous visitor signs in), create a session for the user and destroy the old one.
        Returns the new id, or None when ``sid`` is gone or malformed.
        """
        flat = _encode_fields(fields)
        parts = _parse_sid(sid)
        if parts is None:
            return None
        bucket, old = parts
        while True:
            new = secrets.token_urlsafe(TOKEN_BYTES)
            keys = [self.keys.session(bucket, old), self.keys.session(bucket, new)]
            done = int(self._rotate(keys=keys, args=[*self._args(bucket, old), new, *flat]))
            if done == 1:
                return f"{bucket}.{new}"
            if done == 0:
                return None

    def list_user_sessions(self, user_id: str | int) -> list[str]:
        """Ids of the user's live sessions, oldest first (dead index entries are pruned).

        Sessions created in the same millisecond come in no particular order.
        """
        uid = checks.user_id("user_id", user_id, max_len=MAX_USER_ID)
        bucket = self.keys.bucket(uid)
        args: list[str | int] = [self._now(), self.keys.session_prefix(bucket), "0", self.idle_ms]
        tokens = self._user(keys=[self.keys.index(uid)], args=args)
        return [f"{bucket}.{checks.as_text(t)}" for t in tokens]

    def destroy_user_sessions(self, user_id: str | int) -> int:
        """Log ``user_id`` out everywhere; return how many live sessions were destroyed."""
        uid = checks.user_id("user_id", user_id, max_len=MAX_USER_ID)
        bucket = self.keys.bucket(uid)
        args: list[str | int] = [self._now(), self.keys.session_prefix(bucket), "1", self.idle_ms]
        return int(self._user(keys=[self.keys.index(uid)], args=args))

    # -- hash-field expiry (Redis 7.4+, Valkey 9+) ---------------------------------------

    def supports_field_expiry(self) -> bool:
        """Whether the server knows HPEXPIRE (asked once per store with COMMAND GETKEYS)."""
        if self._field_expiry is None:
            try:
                self.r.command_getkeys("HPEXPIRE", "k", 1, "FIELDS", 1, "f")
                self._field_expiry = True
            except redis.exceptions.ResponseError as exc:  # "Invalid command specified"
                if "invalid command" not in str(exc).lower():
                    raise
                self._field_expiry = False
        return self._field_expiry

    def set_expiring_fields(self, sid: object, ttl: float, /, **fields: Any) -> bool:
        """HSET ``fields`` with a TTL of their own (seconds); the session's TTL slides as usual.

        A later plain ``update_session`` of such a field makes it permanent again (HSET
        clears a field's TTL). Raises ``FieldExpiryUnsupportedError`` on servers without
        hash-field expiry; returns False when the session is gone.
        """
        ttl_ms = checks.to_ms("ttl", ttl)
        if not fields:
            raise ValueError("fields must name at least one field to expire")
        flat = _encode_fields(fields)
        if not self.supports_field_expiry():
            raise FieldExpiryUnsupportedError(
                "this server has no hash-field expiry (HPEXPIRE needs Redis 7.4+ or Valkey 9+)"
            )
        parts = _parse_sid(sid)
        if parts is None:
            return False
        args = [*self._args(*parts), ttl_ms, *flat]
        return bool(self._update(keys=[self.keys.session(*parts)], args=args))

    def __repr__(self) -> str:
        return (
            f"SessionStore(idle_ttl={self.idle_ms / 1000}, absolute_ttl={self.absolute_ms / 1000}, "
            f"prefix={self.keys.prefix!r})"
        )
