"""A lease lock on a single Redis node, with fencing tokens and selectable waiting.

    lock = Lock(r, "invoice-42", ttl=5.0, prefix=ns.prefix_for("lock"))
    with lock as token:            # raises LockNotAcquired instead of running unlocked
        storage.write(data, token) # the storage rejects tokens older than one it has seen

Keys (built only by ``lock_keys``), all with the hash tag ``{<name>}`` so every script also
runs on a cluster: ``<prefix>{<name>}`` holds the owner's random token with a PX expiry;
``:fence`` is the fencing counter; ``:waiting`` is the queue of ``notify`` waiters (a sorted
set, in order of arrival) and ``:waiters`` each one's registration deadline and lease (a
hash); ``:wake:<owner token>`` is one waiter's own wake-up list. The scripts are in
``labkit/lua/locks/`` (``Lock.ACQUIRE``, ``Lock.RELEASE``, ... hold their text).

What it guarantees, on one Redis node that does not lose writes:

- At most one owner token is stored at a time: acquire is ``SET NX PX`` in a script.
- Every grant returns a **fencing token** from ``INCR`` in the same script, so grants are
  numbered 1, 2, 3, ... in grant order, and a storage that refuses a token lower than the
  highest it has seen, or equal to it from another owner (``FencedStore``), refuses the
  writes of a holder whose lease ran out.
- ``release`` and ``extend`` act only if this instance still owns the lock (compare-and-delete
  and compare-and-pexpire in Lua); they return False, never touch another holder's lease.
- ``notify`` waiting is first come, first served, loses no wake-up and lets no one barge in:
  a waiter registers (its owner token, its lease, its own deadline) in the same script as its
  failed attempt, and keeps its place in the queue across attempts. A release that finds a
  live registration does not free the lock but **hands it over** in the same script: the lock
  becomes the first waiter's, under the waiter's own token and **the waiter's own lease**,
  with the next fencing token pushed onto that waiter's wake-up list, which it is blocked on
  (BLPOP) or takes on its next attempt: no second round trip. A waiter leaves the queue when
  it is granted, gives up (its last attempt) or is interrupted (any exception, including
  ``KeyboardInterrupt``, inside ``acquire`` releases a grant it may have been handed and
  deletes its registration before the exception propagates).
- Every wait is bounded: a waiter blocks at most ``max_block`` seconds and never past the
  holder's remaining lease, so a crashed holder costs one lease, no more. A registration
  lives until its own block ends plus ``REGISTRATION_GRACE`` (1 s, for the next attempt);
  a release skips registrations past their deadline.

What it does not guarantee:

- Mutual exclusion in time. A lease is a promise about Redis, not about your process: a
  holder paused (GC, SIGSTOP, swapping) past its TTL still believes it holds the lock while
  the next holder runs. Only fencing at the storage makes that harmless (Kleppmann, "How to
  do distributed locking", 2016).
- Survival of failover or restart: with asynchronous replication a promoted replica may not
  have the lock key nor the last ``INCR`` of the fencing counter (Redis docs, "Distributed
  Locks with Redis"), and a server without persistence restarts it from 1. Fencing needs a
  counter that never goes back: AOF with ``appendfsync always``, ``WAIT``/``WAITAOF``
  after the grant, or a sequence kept by the storage itself. The counter must not be
  evicted either (do not use an ``allkeys-*`` eviction policy on the lock's server).
- Reentrancy, or FIFO across a lapse: a ``Lock`` instance holds at most one grant; a caller
  arriving while the lock happens to be free (its lease ran out) takes it at once.
- Hand-over to a waiter that died without unwinding (SIGKILL, power loss, a dropped network)
  within its registration's lifetime: the release hands the lock to it, and nobody holds the
  lock for that waiter's lease.
- A clean-up after an interrupt needs one more round trip; if the server is unreachable
  then, the registration stays until its deadline (the case above).

Costs and changes (issue 19): still one round trip per attempt and per release, and a
hand-over costs the waiter none; an interrupted ``acquire`` costs one more (its clean-up).
A handed-over lease is now the waiter's own ``ttl`` (it used to be the releaser's), and
the waiting queue is first-registered, first-served (it used to be BLPOP arrival order on a
shared list). The release script walks past expired registrations, each removed once.

One ``Lock`` instance per holder (thread or process); instances may share a client.
The experiments notebook 06 runs (contention sweeps, pauses past the lease) are in
``labkit.experiments.locks``.
"""

from __future__ import annotations

import contextlib
import math
import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from labkit import checks, scripts
from labkit.client import Client, Clock, is_cluster
from labkit.errors import LabkitError

STRATEGIES = ("spin", "backoff", "notify")
# How long a notify registration outlives the block its waiter announced: time for the
# waiter's BLPOP reply and its next attempt to arrive (a round trip, a scheduler hiccup).
REGISTRATION_GRACE = 1.0
_GRACE_MS = round(REGISTRATION_GRACE * 1000)
# time.sleep takes at most ~2**63 ns (~292 years); a sleep in ms stays well below that.
_MAX_SLEEP_MS = 2**42


class LockError(LabkitError):
    """Base class of the errors this module raises about lock state."""


class LockNotAcquired(LockError, TimeoutError):
    """``with lock:`` could not get the lock within its timeout; the body did not run."""


class LockLost(LockError):
    """The lease ran out while the ``with`` body ran: another holder may have run too."""


@dataclass(frozen=True)
class LockKeys:
    lock: str  # the owner token, with the lease as its PX expiry
    fence: str  # the fencing counter (INCR per grant); never expires
    waiting: str  # notify waiters in arrival order (ZSET owner token -> µs); expires
    waiters: str  # each waiter's "<deadline ms> <lease ms>" (HASH); expires with :waiting
    wake: str  # start of each waiter's own wake-up list, ``<wake>:<owner token>``

    def wake_list(self, owner: str) -> str:
        """The wake-up list of the waiter whose owner token is ``owner``."""
        return f"{self.wake}:{owner}"


def lock_keys(prefix: str, name: str) -> LockKeys:
    """The keys of lock ``name``, all sharing the hash tag ``{name}``."""
    base = f"{checks.prefix(prefix)}{{{checks.tag_safe('name', name)}}}"
    return LockKeys(
        lock=base,
        fence=f"{base}:fence",
        waiting=f"{base}:waiting",
        waiters=f"{base}:waiters",
        wake=f"{base}:wake",
    )


class Lock:
    """A named lease lock; ``acquire`` returns a fencing token.

    ``ttl`` is the lease in seconds (fractions work: PX in ms, rounded up). ``strategy`` is
    how a blocked ``acquire`` waits between attempts:

    - ``"spin"``: sleep ``spin_interval`` (0.1 s, as redis-py's ``Lock`` and the classic
      examples) and retry;
    - ``"backoff"``: sleep a uniform random time in ``[0, min(backoff_cap, backoff_base *
      2**attempt)]`` (exponential backoff with full jitter);
    - ``"notify"``: register as a waiter and block on its own wake-up list (BLPOP), for at
      most ``max_block`` seconds and never past the holder's remaining lease; a release hands
      the lock over through that list, with this instance's ``ttl`` as the lease, else retry.
      On a client with a ``socket_timeout``, ``max_block`` is lowered to 0.8 of it (a block
      longer than the client waits for a reply would end in ``TimeoutError``).

    ``timeout`` is the default wait of ``with lock:`` (None waits as long as it takes).
    ``clock``/``sleep`` are injectable for deadline arithmetic; BLPOP itself waits on the
    server's clock. ``rng`` seeds the backoff jitter. Every argument is checked here, before
    any command is sent.
    """

    ACQUIRE = scripts.load("locks/acquire")
    RELEASE = scripts.load("locks/release")
    EXTEND = scripts.load("locks/extend")

    def __init__(
        self,
        r: Client,
        name: str,
        ttl: float = 10.0,
        strategy: str = "notify",
        *,
        timeout: float | None = None,
        prefix: str = "lock:",
        spin_interval: float = 0.1,
        backoff_base: float = 0.002,
        backoff_cap: float = 0.1,
        max_block: float = 1.0,
        clock: Clock = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.keys = lock_keys(prefix, name)
        self.name = name
        self._ttl_ms = checks.to_ms("ttl", ttl)
        self.ttl = float(ttl)
        self.strategy = checks.choice("strategy", strategy, STRATEGIES)
        self.timeout = (
            None if timeout is None else checks.seconds("timeout", timeout, allow_zero=True)
        )
        self.spin_interval = checks.seconds("spin_interval", spin_interval, cap_ms=_MAX_SLEEP_MS)
        self.backoff_base = checks.seconds("backoff_base", backoff_base, cap_ms=_MAX_SLEEP_MS)
        self.backoff_cap = checks.seconds("backoff_cap", backoff_cap, cap_ms=_MAX_SLEEP_MS)
        self.max_block = checks.seconds("max_block", max_block)
        # redis-py waits at most socket_timeout for any reply, BLPOP's too: a longer block
        # would raise TimeoutError in the middle of a wait, so one block stays below it.
        read_timeout = socket_timeout(r)
        if read_timeout is not None:
            self.max_block = min(self.max_block, 0.8 * read_timeout)
        self._max_block_ms = checks.to_ms("max_block", self.max_block)
        for arg, value in (("clock", clock), ("sleep", sleep)):
            if not callable(value):
                raise TypeError(f"{arg} must be callable, not {type(value).__name__}")
        if rng is not None and not isinstance(rng, random.Random):
            raise TypeError(f"rng must be a random.Random or None, not {type(rng).__name__}")
        self._clock = clock
        self._sleep = sleep
        self._rng = rng if rng is not None else random.Random()
        self._r = r
        self._acquire = scripts.register(r, self.ACQUIRE)
        self._release = scripts.register(r, self.RELEASE)
        self._extend = scripts.register(r, self.EXTEND)
        self._token: str | None = None
        self.fencing_token: int | None = None

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> int | None:
        """Take the lock; return its fencing token, or None if not acquired in time.

        ``blocking=False`` tries once. ``timeout`` (seconds) bounds a blocking wait; None
        waits until granted (each single wait inside is still bounded, see the class doc).
        An exception inside (``KeyboardInterrupt`` too) costs one more round trip on the way
        out: it withdraws this caller's registration and releases a grant it was handed.
        """
        if not isinstance(blocking, bool):
            raise TypeError(f"blocking must be a bool, not {type(blocking).__name__}")
        if timeout is not None:
            timeout = checks.seconds("timeout", timeout, allow_zero=True)
            if not blocking:
                raise ValueError("timeout must be None when blocking=False")
        if self._token is not None:
            raise LockError(
                f"this Lock instance already holds a grant of {self.name!r}; release() it "
                "first (locks are not reentrant; use one instance per holder)"
            )
        # The owner token is also this caller's waiter id: a release hands the lock over by
        # storing it, so a grant whose reply is lost (an interrupt) can still be released.
        token = secrets.token_hex(20)
        keys = self._keys_for(token)
        deadline = None if timeout is None else self._clock() + timeout
        notify = blocking and self.strategy == "notify"
        attempt = 0
        try:
            while True:
                remaining = None if deadline is None else deadline - self._clock()
                # A notify waiter registers in the same script as the attempt that failed, so
                # a release that runs before it reaches BLPOP already hands the lock to it.
                # The last attempt before a deadline withdraws the registration instead.
                block_ms = 0
                if notify and (remaining is None or remaining > 0):
                    block_ms = self._max_block_ms
                    if remaining is not None:
                        block_ms = min(block_ms, math.ceil(remaining * 1000))
                granted, value = self._acquire(
                    keys=keys, args=[token, self._ttl_ms, block_ms, _GRACE_MS]
                )
                if int(granted) == 1:
                    return self._granted(token, int(value))
                if not blocking or (remaining is not None and remaining <= 0):
                    return None
                fence = self._wait(attempt, remaining, int(value) / 1000, keys[4])
                if fence is not None:  # handed over by a release: ours, no further round trip
                    return self._granted(token, fence)
                attempt += 1
        except BaseException:
            # Interrupted (Ctrl-C in a notebook, a signal, a lost connection): leave no
            # registration a release would hand the lock to, nor a grant nobody uses.
            if self._token == token:
                self._token, self.fencing_token = None, None
            # The original exception matters more than a failed clean-up.
            with contextlib.suppress(Exception):
                self._release(keys=keys, args=[token, self.keys.wake])
            raise

    def _keys_for(self, token: str) -> list[str]:
        k = self.keys
        return [k.lock, k.fence, k.waiting, k.waiters, k.wake_list(token)]

    def _granted(self, owner: str, fence: int) -> int:
        self._token, self.fencing_token = owner, fence
        return fence

    def _wait(
        self, attempt: int, remaining: float | None, holder_lease: float, wake: str
    ) -> int | None:
        """Wait once between two attempts, never past ``remaining``; return the fencing
        token of a grant handed over to this waiter while a ``notify`` wait blocked."""
        limit = math.inf if remaining is None else remaining
        if self.strategy == "spin":
            self._sleep(min(self.spin_interval, limit))
        elif self.strategy == "backoff":
            ceiling = min(self.backoff_cap, self.backoff_base * 2 ** min(attempt, 30))
            self._sleep(min(self._rng.uniform(0, ceiling), limit))
        else:
            # PTTL is -1 for a key without expiry (not ours), -2 when it just went away.
            lease = holder_lease if holder_lease >= 0 else self.max_block
            block = min(self.max_block, lease, limit)
            # BLPOP's timeout 0 means "forever": round up to whole ms, at least 1 ms.
            popped = self._r.blpop([wake], timeout=math.ceil(max(block, 0.001) * 1000) / 1000)
            if popped:
                return int(popped[1])
        return None

    def release(self) -> bool:
        """Release if we still own the lock; True if we did, False if the lease had run out.

        With ``notify`` waiters registered the lock goes straight to the one that registered
        first (and is still live), with that waiter's own lease.
        """
        token, self._token = self._token, None
        if token is None:
            return False
        return bool(self._release(keys=self._keys_for(token), args=[token, self.keys.wake]))

    def extend(self, ttl: float | None = None) -> bool:
        """Replace the remaining lease with ``ttl`` (default: the lock's ttl) if we still own it.

        False after the lease ran out, even if nobody took the lock since: a lost lease is
        re-taken with ``acquire`` and a new fencing token, never silently revived.
        """
        ttl_ms = self._ttl_ms if ttl is None else checks.to_ms("ttl", ttl)
        if self._token is None:
            return False
        return bool(self._extend(keys=[self.keys.lock], args=[self._token, ttl_ms]))

    @property
    def owner(self) -> str | None:
        """This holder's owner token while it holds a grant (None otherwise): the name to
        give ``FencedStore.write(..., owner=lock.owner)``."""
        return self._token

    def locked(self) -> bool:
        """True when anyone holds the lock right now."""
        return bool(self._r.exists(self.keys.lock))

    def owned(self) -> bool:
        """True when this instance holds the lock right now."""
        if self._token is None:
            return False
        value = self._r.get(self.keys.lock)
        return value is not None and checks.as_text(value) == self._token

    def __enter__(self) -> int:
        token = self.acquire(blocking=True, timeout=self.timeout)
        if token is None:
            raise LockNotAcquired(f"lock {self.name!r} not acquired within {self.timeout} s")
        return token

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> None:
        released = self.release()
        if not released and exc_type is None:
            raise LockLost(f"the lease of lock {self.name!r} ran out before the with block ended")

    def __repr__(self) -> str:
        return f"<Lock {self.keys.lock!r} ttl={self.ttl} strategy={self.strategy}>"


COMPARE_AND_DELETE = scripts.load("common/compare_and_delete")


def socket_timeout(r: Client) -> float | None:
    """The client's read timeout in seconds (None: it waits for a reply as long as it takes)."""
    pool = getattr(r, "connection_pool", None) or getattr(r, "nodes_manager", None)
    timeout = (getattr(pool, "connection_kwargs", None) or {}).get("socket_timeout")
    return None if timeout is None else float(timeout)


def server_compare_and_delete(r: Client) -> str | None:
    """The server's native compare-and-delete command, detected with COMMAND INFO.

    ``"DELEX"`` (Redis 8.4+: ``DELEX key IFEQ value``), ``"DELIFEQ"`` (Valkey 9+:
    ``DELIFEQ key value``) or None when the server has neither (then Lua it is).
    """
    # A cluster client cannot route a keyless command by itself: ask one node.
    route = {"target_nodes": r.get_default_node()} if is_cluster(r) else {}
    delifeq, delex = r.execute_command("COMMAND INFO", "DELIFEQ", "DELEX", **route)
    if delex:
        return "DELEX"
    if delifeq:
        return "DELIFEQ"
    return None


def delete_if_equal(r: Client, command: str | None, key: str, value: str) -> bool:
    """Delete ``key`` only if it holds ``value``: with the native ``command`` (no Lua) or,
    with ``command=None``, the ``COMPARE_AND_DELETE`` script."""
    checks.text("key", key)
    if not isinstance(value, str):
        raise TypeError(f"value must be a str, not {type(value).__name__}")
    if command is None:
        return bool(scripts.register(r, COMPARE_AND_DELETE)(keys=[key], args=[value]))
    if command == "DELEX":
        return bool(r.execute_command("DELEX", key, "IFEQ", value))
    if command == "DELIFEQ":
        return bool(r.execute_command("DELIFEQ", key, value))
    raise ValueError(f"command must be 'DELEX', 'DELIFEQ' or None, got {command!r}")


class FencedStore:
    """A record (a Redis hash) that is written only with a fencing token.

    One rule, with ``fenced=True``: a write lands iff its token is **higher** than the
    highest token already written, or **equal** to it and from the **same named owner**
    (the holder writing again under its grant); a record never written accepts any token.
    In SQL: ``UPDATE t SET value = :v, fence = :token, owner = :owner WHERE fence < :token
    OR (fence = :token AND owner = :owner)``. So token 33 is rejected after 34 wrote
    (Kleppmann's example), and so is a second holder with the *same* token, which is what a
    fencing counter that went back (a failover, a restart without persistence) hands out:
    only the first writer of that number goes on. A write that names no ``owner`` cannot
    be the same owner, so without owners the rule is the strict ``fence < :token``.

    What it cannot do: tell which of two equal-token holders is the rightful one, or
    accept the rightful holder whose token is *lower* because the counter went back.
    Fencing needs a counter that never goes back (see ``Lock``).

    With ``fenced=False`` every write lands: the storage of the classic lock examples.
    Tokens are integers in ``[0, 2**53]`` (the script compares them as doubles); an owner
    is a non-empty str (``Lock.owner`` gives the holder's own).
    """

    WRITE = scripts.load("locks/fenced_write")

    def __init__(self, r: Client, key: str, *, fenced: bool = True) -> None:
        self.key = checks.text("key", key)
        self.fenced = bool(fenced)
        self._r = r
        self._write = scripts.register(r, self.WRITE)

    def write(self, value: str, token: int, owner: str | None = None) -> bool:
        """Write ``value`` under fencing ``token`` as ``owner``; False when refused."""
        if not isinstance(value, str):
            raise TypeError(f"value must be a str, not {type(value).__name__}")
        token = checks.integer("token", token, low=0, high=checks.MAX_EXACT)
        name = "" if owner is None else checks.text("owner", owner)
        return bool(
            self._write(keys=[self.key], args=[value, token, "1" if self.fenced else "0", name])
        )

    def read(self) -> tuple[str | None, int]:
        """(value, fencing token of the write that holds it); (None, 0) when never written."""
        value, fence = self._r.hmget(self.key, ["value", "fence"])
        return (None if value is None else checks.as_text(value)), int(fence or 0)
