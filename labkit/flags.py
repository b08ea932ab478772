"""Feature flags: a kill switch, a percentage rollout and per-user overrides, one round trip.

Each flag is one hash; ``is_enabled`` reads the three fields it needs with a single HMGET
(one command, one round trip, atomic) and decides on the client::

    <prefix>{flags}:flag:<flag>  HASH  enabled -> "1" | "0"   the master switch (kill switch)
                                       rollout -> "0".."100"  percent of users enabled (0.01 steps)
                                       u:<user_id> -> "1" | "0"  a per-user override
    <prefix>{flags}:names        SET   names of every flag (for ``list_flags``)

The decision, in order:

1. No such flag, or ``enabled`` is "0" (``disable``): off for everyone. ``disable`` is a kill
   switch: it beats overrides and the rollout, and keeps both, so ``enable`` turns the flag
   back on exactly as it was (a flag at 5% comes back at 5%, not at 100%).
2. A per-user override (``enable_for_user`` / ``disable_for_user``) decides for that user.
3. Otherwise the user is on when their *bucket* is below the rollout: ``bucket(flag, user)``
   is the first 8 bytes of SHA-256 of ``"<flag>\\x00<user_id>"`` modulo 10,000, computed on the
   client with ``hashlib`` (not Python's ``hash()``, which is salted per process), so a user
   lands in the same bucket in every process, on every machine, forever. A rollout of p% turns
   on buckets ``0 .. 100*p - 1``, so raising p only ever adds users: nobody flips off as a
   rollout grows. Different flags hash differently, so the same 1% are not always the guinea
   pigs. Resolution: 0.01 percentage points; the comparison is against the whole number
   ``round(100*p)``, so 0.07% is exactly 7 buckets, and ``set_rollout`` refuses a finer
   percent (0.075) rather than silently rounding it.
4. With no ``user_id`` (an anonymous check) a flag is on only when fully rolled out (100%).

The writes: ``set_rollout(flag, p)`` switches the flag on at p% (``set_rollout(flag, 100)`` is
how to go to everyone); ``disable`` is the kill switch; ``enable`` switches the flag back on
without touching its rollout or overrides, and only a flag with no rollout yet (new, or only
ever disabled) starts at 100%. ``enable_for_user`` on a new flag starts it at 0%.

Replies are decoded here, so the class works whether the client was created with
``decode_responses=True`` or ``False`` (comparing a ``bytes`` reply to ``"1"`` is never true).

Every flag key and the registry share the hash tag ``{flags}``: writes update a flag and the
registry in one MULTI/EXEC, which works on a cluster, at the price of keeping all flags in one
slot (one shard). Flags are few and small; an application that checks them very often should
also cache them in process. ``prefix`` is the literal start of every key and ends with ``:``
(default ``"feature:"``); in a notebook, ``ns.prefix_for("feature")``.

Bad input (an empty or padded flag name, one holding a NUL, a blank user id, an int user id
beyond 64 bits, a percent that is not a finite number in ``[0, 100]`` in 0.01 steps, a
``bool``) raises TypeError/ValueError naming the argument before anything is sent.

What it does not do: targeting rules beyond user ids (country, plan...), flag variants
other than on/off, or an audit log of changes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Any

from redis.typing import EncodableT, FieldT

from labkit import checks
from labkit.checks import as_text
from labkit.client import Client

BUCKETS = 10_000  # rollout resolution: 0.01 percentage points
_USER_FIELD = "u:"


def _decoded(reply: Sequence[Any]) -> list[str | None]:
    """An HMGET reply as text, missing fields as None, whether or not the client decodes."""
    return [None if value is None else as_text(value) for value in reply]


def _flag(flag: object) -> str:
    """A flag name: non-empty text without surrounding spaces (they would hide in a UI)."""
    name = checks.text("flag", flag)
    if name != name.strip():
        raise ValueError(f"flag must be a name without surrounding spaces, got {name!r}")
    if "\x00" in name:
        # bucket() hashes "<flag>\x00<user>": a NUL in the name would let two (flag, user)
        # pairs hash the same text, which the separator exists to rule out
        raise ValueError(f"flag must not contain a NUL character (\\x00), got {name!r}")
    return name


def _percent(percent: object) -> int:
    """A percent as a whole number of buckets (hundredths of a percent), 0 .. BUCKETS."""
    value = checks.number("percent", percent, low=0, high=100)
    hundredths = value * (BUCKETS // 100)
    buckets = round(hundredths)
    if abs(hundredths - buckets) > 1e-6:  # float noise (0.1 + 0.2) is fine, 0.075 is not
        raise ValueError(
            f"percent must be a multiple of 0.01 (the rollout resolution), got {percent!r}"
        )
    return buckets


def _threshold(rollout: str | None) -> int:
    """The stored rollout as a whole number of buckets: users below it are on."""
    return round(float(rollout) * (BUCKETS // 100)) if rollout is not None else 0


def bucket(flag: str, user_id: str | int) -> int:
    """The user's stable bucket for ``flag``, in ``0 .. BUCKETS - 1`` (same in every process)."""
    name, user = _flag(flag), checks.user_id("user_id", user_id)
    text = f"{name}\x00{user}".encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "big") % BUCKETS


def _decide(
    enabled: str | None, rollout: str | None, override: str | None, slot: int | None
) -> bool:
    """The decision from the flag's fields (already decoded) and the user's bucket."""
    if enabled != "1":
        return False
    if override is not None:
        return override == "1"
    threshold = _threshold(rollout)
    if slot is None:
        return threshold >= BUCKETS
    return slot < threshold


class FeatureFlags:
    """Flags in Redis: ``FeatureFlags(r).is_enabled("new-checkout", user_id=42)``."""

    def __init__(self, r: Client, prefix: str = "feature:") -> None:
        self.r = r
        self.prefix = checks.prefix(prefix)

    # -- keys ------------------------------------------------------------------------------

    def _key(self, flag: str | None = None) -> str:
        """The one place key names are built: the registry, or one flag's hash."""
        part = "names" if flag is None else f"flag:{flag}"
        return f"{self.prefix}{{flags}}:{part}"

    def _write(
        self,
        flag: str,
        mapping: dict[FieldT, EncodableT],
        *,
        create_only: dict[str, str] | None = None,
    ) -> None:
        """Set fields of a flag and register it, atomically (MULTI/EXEC on one slot)."""
        key = self._key(flag)
        pipe = self.r.pipeline(transaction=True)
        for field, value in (create_only or {}).items():
            pipe.hsetnx(key, field, value)
        pipe.hset(key, mapping=mapping)
        pipe.sadd(self._key(), flag)
        pipe.execute()

    # -- writes ----------------------------------------------------------------------------

    def enable(self, flag: str) -> None:
        """Switch the flag on, keeping its rollout and overrides (undoes ``disable``).

        A flag that has no rollout yet (new, or only ever disabled) starts at 100%. To take
        a partly rolled out flag to everyone, use ``set_rollout(flag, 100)``.
        """
        self._write(_flag(flag), {"enabled": "1"}, create_only={"rollout": "100"})

    def disable(self, flag: str) -> None:
        """Off for everyone, overrides included (kill switch). Rollout and overrides are kept."""
        self._write(_flag(flag), {"enabled": "0"})

    def set_rollout(self, flag: str, percent: float) -> None:
        """Switch the flag on for ``percent`` % of users (stable buckets).

        ``0 <= percent <= 100`` in steps of 0.01 (a finer percent raises ValueError).
        """
        buckets = _percent(percent)
        self._write(_flag(flag), {"enabled": "1", "rollout": repr(buckets / 100)})

    def enable_for_user(self, flag: str, user_id: str | int) -> None:
        """Force the flag on for one user (a new flag starts switched on at 0% rollout)."""
        self._override(flag, user_id, "1")

    def disable_for_user(self, flag: str, user_id: str | int) -> None:
        """Force the flag off for one user, whatever the rollout."""
        self._override(flag, user_id, "0")

    def clear_user(self, flag: str, user_id: str | int) -> bool:
        """Drop a user's override (the rollout decides again); True if there was one."""
        key = self._key(_flag(flag))
        return bool(self.r.hdel(key, _USER_FIELD + checks.user_id("user_id", user_id)))

    def _override(self, flag: str, user_id: str | int, value: str) -> None:
        name, user = _flag(flag), checks.user_id("user_id", user_id)
        self._write(name, {_USER_FIELD + user: value}, create_only={"enabled": "1", "rollout": "0"})

    def delete(self, flag: str) -> bool:
        """Remove a flag entirely (it then reads as off); True if it existed."""
        name = _flag(flag)
        pipe = self.r.pipeline(transaction=True)
        pipe.delete(self._key(name))
        pipe.srem(self._key(), name)
        return bool(pipe.execute()[0])

    # -- reads -----------------------------------------------------------------------------

    def is_enabled(self, flag: str, user_id: str | int | None = None) -> bool:
        """Is ``flag`` on for ``user_id`` (or for an anonymous caller)? One HMGET."""
        name = _flag(flag)
        if user_id is None:
            enabled, rollout = _decoded(self.r.hmget(self._key(name), ["enabled", "rollout"]))
            return _decide(enabled, rollout, None, None)
        user = checks.user_id("user_id", user_id)
        enabled, rollout, override = _decoded(
            self.r.hmget(self._key(name), ["enabled", "rollout", _USER_FIELD + user])
        )
        return _decide(enabled, rollout, override, bucket(name, user))

    def is_enabled_many(self, flag: str, user_ids: Iterable[str | int]) -> list[bool]:
        """``is_enabled`` for many users with one HMGET (one round trip), same decision."""
        name = _flag(flag)
        users = [checks.user_id("user_id", u) for u in user_ids]
        fields = ["enabled", "rollout", *(_USER_FIELD + u for u in users)]
        enabled, rollout, *overrides = _decoded(self.r.hmget(self._key(name), fields))
        return [
            _decide(enabled, rollout, override, bucket(name, user))
            for user, override in zip(users, overrides, strict=True)
        ]

    def get(self, flag: str) -> dict[str, Any] | None:
        """The flag's state: ``enabled``, ``rollout`` and ``overrides`` {user: bool}; None if absent.

        ``rollout`` is 0.0 for a flag that has none yet (only ever disabled).
        """
        raw = self.r.hgetall(self._key(_flag(flag)))
        if not raw:
            return None
        fields = {as_text(k): as_text(v) for k, v in raw.items()}
        return {
            "enabled": fields.get("enabled") == "1",
            "rollout": float(fields.get("rollout") or 0),
            "overrides": {
                k[len(_USER_FIELD) :]: v == "1"
                for k, v in fields.items()
                if k.startswith(_USER_FIELD)
            },
        }

    def list_flags(self) -> list[str]:
        """Every flag's name, sorted."""
        return sorted(as_text(name) for name in self.r.smembers(self._key()))
