"""A lease lock on a single Redis node, with fencing tokens and selectable waiting.

    lock = Lock(r, "invoice-42", ttl=5.0, prefix=ns.prefix)
    with lock as token:            # raises LockNotAcquired instead of running unlocked
        storage.write(data, token) # the storage rejects tokens older than one it has seen

Keys (built only by ``lock_keys``), all in one hash slot so every script also runs on a
cluster: ``<prefix>{<name>}`` holds the owner's random token with a PX expiry;
``<prefix>{<name>}:fence`` is the fencing counter; ``<prefix>{<name>}:wake`` is the wake-up
list that ``notify`` waiters block on and ``:waiting`` counts them.

What it guarantees, on one Redis node that does not lose writes:

- At most one owner token is stored at a time: acquire is ``SET NX PX`` in a script.
- Every grant returns a **fencing token** from ``INCR`` in the same script, so grants are
  numbered 1, 2, 3, ... in grant order, and a storage that refuses a token lower than the
  highest it has seen (``FencedStore``) refuses the writes of a holder whose lease ran out.
- ``release`` and ``extend`` act only if this instance still owns the lock (compare-and-delete
  and compare-and-pexpire in Lua); they return False, never touch another holder's lease.
- ``notify`` waiting loses no wake-up and lets no one barge in: a waiter registers
  (``:waiting``) in the same script as its failed attempt; a release that finds registered
  waiters does not free the lock but **hands it over** in the same script: a fresh owner
  token and fencing token, pushed as one element onto the wake-up list, which the
  longest-blocked waiter pops (BLPOP serves in arrival order) and owns at once, with no
  second round trip. A grant pushed while its waiter is between attempts waits in the list
  (and a registered waiter's next attempt takes it); it expires with its lease.
  Every wait is bounded: a waiter blocks at most ``max_block`` seconds and never past the
  holder's remaining lease, so a crashed holder costs one lease, no more.

What it does not guarantee:

- Mutual exclusion in time. A lease is a promise about Redis, not about your process: a
  holder paused (GC, SIGSTOP, swapping) past its TTL still believes it holds the lock while
  the next holder runs. Only fencing at the storage makes that harmless (Kleppmann, "How to
  do distributed locking", 2016).
- Survival of failover: with asynchronous replication a promoted replica may not have the
  lock key (Redis docs, "Distributed Locks with Redis"); the fencing counter must not be
  evicted either (do not use an ``allkeys-*`` eviction policy on the lock's server).
- Reentrancy or strict FIFO: a ``Lock`` instance holds at most one grant; ``notify`` hands
  over in the order waiters blocked, but a caller arriving while the lock happens to be
  free (after an expiry) takes it at once. A waiter that crashes while registered leaves the
  count high until it expires (2 x ``max_block`` + 1 s): a release in that time hands the
  lock to nobody; the next ``notify`` waiter picks that grant up from the list, but
  ``spin``/``backoff`` callers see the lock taken until its lease runs out.
  A handed-over lease is the releaser's ``ttl``, counted from the release.

One ``Lock`` instance per holder (thread or process); instances may share a client.
The second half of the module holds the experiment helpers notebook 06 runs: the contention
sweep (threads or processes) and the pause-past-the-lease round with and without fencing.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import random
import secrets
import signal
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import redis
import redis.lock

from labkit.keys import as_text

STRATEGIES = ("spin", "backoff", "notify")
Clock = Callable[[], float]


class LockError(Exception):
    """Base class of the errors this module raises about lock state."""


class LockNotAcquired(LockError, TimeoutError):
    """``with lock:`` could not get the lock within its timeout; the body did not run."""


class LockLost(LockError):
    """The lease ran out while the ``with`` body ran: another holder may have run too."""


@dataclass(frozen=True)
class LockKeys:
    lock: str  # the owner token, with the lease as its PX expiry
    fence: str  # the fencing counter (INCR per grant); never expires
    wake: str  # the wake-up list notify waiters BLPOP on; at most one element, expires
    waiting: str  # how many notify waiters are registered; expires


def lock_keys(prefix: str, name: str) -> LockKeys:
    """The keys of lock ``name``, all sharing the hash tag ``{name}``."""
    if not isinstance(prefix, str):
        raise TypeError(f"prefix must be a str, not {type(prefix).__name__}")
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, not {type(name).__name__}")
    if not name:
        raise ValueError("name must be a non-empty string")
    for arg, value in (("name", name), ("prefix", prefix)):
        if "{" in value or "}" in value:
            raise ValueError(
                f"{arg} must not contain '{{' or '}}' (the lock adds its own hash tag), got {value!r}"
            )
    base = f"{prefix}{{{name}}}"
    return LockKeys(
        lock=base,
        fence=f"{base}:fence",
        wake=f"{base}:wake",
        waiting=f"{base}:waiting",
    )


def _seconds(arg: str, value: Any, *, allow_zero: bool = False) -> float:
    """Validate a duration argument before anything reaches Redis."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{arg} must be a number of seconds, not {type(value).__name__}")
    if math.isnan(value) or math.isinf(value):
        raise ValueError(f"{arg} must be finite, got {value}")
    if value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{arg} must be {'>= 0' if allow_zero else '> 0'}, got {value}")
    return float(value)


def _ms(seconds: float) -> int:
    """Seconds to whole milliseconds for PX/PEXPIRE, at least 1 (0 would be an error)."""
    return max(1, round(seconds * 1000))


class Lock:
    """A named lease lock; ``acquire`` returns a fencing token.

    ``ttl`` is the lease in seconds (fractions work: PX in ms). ``strategy`` is how a blocked
    ``acquire`` waits between attempts:

    - ``"spin"``: sleep ``spin_interval`` (0.1 s, as redis-py's ``Lock`` and the classic
      examples) and retry;
    - ``"backoff"``: sleep a uniform random time in ``[0, min(backoff_cap, backoff_base *
      2**attempt)]`` (exponential backoff with full jitter);
    - ``"notify"``: register as a waiter and block on the wake-up list (BLPOP), for at most
      ``max_block`` seconds and never past the holder's remaining lease; a release hands the
      lock over through that list, else retry.

    ``timeout`` is the default wait of ``with lock:`` (None waits as long as it takes).
    ``clock``/``sleep`` are injectable for deadline arithmetic; BLPOP itself waits on the
    server's clock. ``rng`` seeds the backoff jitter.
    """

    # KEYS[1] lock key, KEYS[2] fencing counter, KEYS[3] waiter count, KEYS[4] wake-up list
    # ARGV[1] owner token (random), ARGV[2] lease in ms,
    # ARGV[3] '1' if the caller registered as a waiter before (unregister it now, and take a
    #         grant a release left for it in the wake-up list),
    # ARGV[4] '1' to register the caller as a waiter if it is not granted,
    # ARGV[5] lifetime of the waiter count in ms
    # returns {1, fencing token, owner token} when granted, {0, holder's remaining lease in
    # ms, ''} when not
    ACQUIRE = """
    if ARGV[3] == '1' then
      if redis.call('decr', KEYS[3]) <= 0 then
        redis.call('del', KEYS[3])
      end
      local grant = redis.call('lindex', KEYS[4], 0)
      if grant then
        local sep = string.find(grant, ':', 1, true)
        local owner = string.sub(grant, 1, sep - 1)
        if redis.call('get', KEYS[1]) == owner then
          redis.call('lpop', KEYS[4])
          return {1, tonumber(string.sub(grant, sep + 1)), owner}
        end
      end
    end
    if redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
      return {1, redis.call('incr', KEYS[2]), ARGV[1]}
    end
    if ARGV[4] == '1' then
      redis.call('incr', KEYS[3])
      redis.call('pexpire', KEYS[3], ARGV[5])
    end
    return {0, redis.call('pttl', KEYS[1]), ''}
    """

    # KEYS[1] lock key, KEYS[2] wake-up list, KEYS[3] waiter count, KEYS[4] fencing counter
    # ARGV[1] owner token, ARGV[2] '1' to unregister the caller (it got the lock from the
    # wake-up list while registered; done even if its lease ran out), ARGV[3] the next owner's token (random),
    # ARGV[4] lease in ms for the next owner
    # returns 1 when we owned the lock and released it, else 0. With waiters registered the
    # lock is not freed but handed over: owned by ARGV[3], with a new fencing token, and the
    # grant "<token>:<fence>" is the only element of the wake-up list; both expire together.
    RELEASE = """
    if ARGV[2] == '1' and redis.call('decr', KEYS[3]) <= 0 then
      redis.call('del', KEYS[3])
    end
    if redis.call('get', KEYS[1]) ~= ARGV[1] then
      return 0
    end
    if tonumber(redis.call('get', KEYS[3]) or '0') > 0 then
      redis.call('set', KEYS[1], ARGV[3], 'PX', ARGV[4])
      local fence = redis.call('incr', KEYS[4])
      redis.call('del', KEYS[2])
      redis.call('rpush', KEYS[2], ARGV[3] .. ':' .. fence)
      redis.call('pexpire', KEYS[2], ARGV[4])
      return 1
    end
    redis.call('del', KEYS[1])
    return 1
    """

    # KEYS[1] lock key
    # ARGV[1] owner token, ARGV[2] new lease in milliseconds (replaces the remaining one)
    # returns 1 when we still owned the lock and its lease was replaced, else 0
    EXTEND = """
    if redis.call('get', KEYS[1]) == ARGV[1] then
      return redis.call('pexpire', KEYS[1], ARGV[2])
    end
    return 0
    """

    def __init__(
        self,
        r: Any,
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
        self.ttl = _seconds("ttl", ttl)
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
        self.strategy = strategy
        self.timeout = None if timeout is None else _seconds("timeout", timeout, allow_zero=True)
        self.spin_interval = _seconds("spin_interval", spin_interval)
        self.backoff_base = _seconds("backoff_base", backoff_base)
        self.backoff_cap = _seconds("backoff_cap", backoff_cap)
        self.max_block = _seconds("max_block", max_block)
        self._clock = clock
        self._sleep = sleep
        self._rng = rng if rng is not None else random.Random()
        self._r = r
        self._acquire = r.register_script(self.ACQUIRE)
        self._release = r.register_script(self.RELEASE)
        self._extend = r.register_script(self.EXTEND)
        self._token: str | None = None
        self._unregister_on_release = False
        self.fencing_token: int | None = None

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> int | None:
        """Take the lock; return its fencing token, or None if not acquired in time.

        ``blocking=False`` tries once. ``timeout`` (seconds) bounds a blocking wait; None
        waits until granted (each single wait inside is still bounded, see the class doc).
        """
        if not isinstance(blocking, bool):
            raise TypeError(f"blocking must be a bool, not {type(blocking).__name__}")
        if timeout is not None:
            timeout = _seconds("timeout", timeout, allow_zero=True)
            if not blocking:
                raise ValueError("timeout must be None when blocking=False")
        if self._token is not None:
            raise LockError(
                f"this Lock instance already holds a grant of {self.name!r}; release() it "
                "first (locks are not reentrant; use one instance per holder)"
            )
        token = secrets.token_hex(20)
        ttl_ms = _ms(self.ttl)
        deadline = None if timeout is None else self._clock() + timeout
        keys = [self.keys.lock, self.keys.fence, self.keys.waiting, self.keys.wake]
        waiting_ms = _ms(2 * self.max_block + 1.0)
        attempt, registered = 0, False
        while True:
            remaining = None if deadline is None else deadline - self._clock()
            # A notify waiter registers in the same script as the attempt that failed, so a
            # release that runs before it reaches BLPOP already hands the lock over to it; its
            # next attempt unregisters it. The last attempt before a deadline does not register.
            will_wait = (
                blocking and self.strategy == "notify" and (remaining is None or remaining > 0)
            )
            flags = ["1" if registered else "0", "1" if will_wait else "0"]
            granted, value, owner = self._acquire(
                keys=keys, args=[token, ttl_ms, *flags, waiting_ms]
            )
            if int(granted) == 1:
                return self._granted(as_text(owner), int(value), unregister=False)
            registered = will_wait
            if not blocking or (remaining is not None and remaining <= 0):
                return None
            grant = self._wait(attempt, remaining, int(value) / 1000)
            if grant is not None:  # handed over by a release: ours, no further round trip
                owner, _, fence = grant.rpartition(":")
                return self._granted(owner, int(fence), unregister=True)
            attempt += 1

    def _granted(self, owner: str, fence: int, *, unregister: bool) -> int:
        self._token, self.fencing_token = owner, fence
        self._unregister_on_release = unregister
        return fence

    def _wait(self, attempt: int, remaining: float | None, holder_lease: float) -> str | None:
        """Wait once between two attempts, never past ``remaining``; return a handed-over
        grant ``"<owner token>:<fence>"`` if a ``notify`` wait received one."""
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
            popped = self._r.blpop(
                [self.keys.wake], timeout=math.ceil(max(block, 0.001) * 1000) / 1000
            )
            if popped:
                return as_text(popped[1])
        return None

    def release(self) -> bool:
        """Release if we still own the lock; True if we did, False if the lease had run out.

        With ``notify`` waiters registered the lock goes straight to the longest-blocked one.
        """
        token, self._token = self._token, None
        if token is None:
            return False
        keys = [self.keys.lock, self.keys.wake, self.keys.waiting, self.keys.fence]
        unregister = "1" if self._unregister_on_release else "0"
        self._unregister_on_release = False
        args = [token, unregister, secrets.token_hex(20), _ms(self.ttl)]
        return bool(self._release(keys=keys, args=args))

    def extend(self, ttl: float | None = None) -> bool:
        """Replace the remaining lease with ``ttl`` (default: the lock's ttl) if we still own it.

        False after the lease ran out, even if nobody took the lock since: a lost lease is
        re-taken with ``acquire`` and a new fencing token, never silently revived.
        """
        ttl = self.ttl if ttl is None else _seconds("ttl", ttl)
        if self._token is None:
            return False
        return bool(self._extend(keys=[self.keys.lock], args=[self._token, _ms(ttl)]))

    def locked(self) -> bool:
        """True when anyone holds the lock right now."""
        return bool(self._r.exists(self.keys.lock))

    def owned(self) -> bool:
        """True when this instance holds the lock right now."""
        if self._token is None:
            return False
        value = self._r.get(self.keys.lock)
        return value is not None and as_text(value) == self._token

    def __enter__(self) -> int:
        token = self.acquire(blocking=True, timeout=self.timeout)
        if token is None:
            raise LockNotAcquired(f"lock {self.name!r} not acquired within {self.timeout} s")
        return token

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> None:
        released = self.release()
        if not released and exc_type is None:
            raise LockLost(f"the lease of lock {self.name!r} ran out before the with block ended")

    def __repr__(self) -> str:
        return f"<Lock {self.keys.lock!r} ttl={self.ttl} strategy={self.strategy}>"


def server_compare_and_delete(r: Any) -> str | None:
    """The server's native compare-and-delete command, detected with COMMAND INFO.

    ``"DELEX"`` (Redis 8.4+: ``DELEX key IFEQ value``), ``"DELIFEQ"`` (Valkey 9+:
    ``DELIFEQ key value``) or None when the server has neither (then Lua it is).
    """
    # A cluster client cannot route a keyless command by itself: ask one node.
    route = {"target_nodes": r.get_default_node()} if hasattr(r, "get_default_node") else {}
    delifeq, delex = r.execute_command("COMMAND INFO", "DELIFEQ", "DELEX", **route)
    if delex:
        return "DELEX"
    if delifeq:
        return "DELIFEQ"
    return None


def delete_if_equal(r: Any, command: str, key: str, value: str) -> bool:
    """Delete ``key`` only if it holds ``value``, with the native ``command`` (no Lua)."""
    if command == "DELEX":
        return bool(r.execute_command("DELEX", key, "IFEQ", value))
    if command == "DELIFEQ":
        return bool(r.execute_command("DELIFEQ", key, value))
    raise ValueError(f"command must be 'DELEX' or 'DELIFEQ', got {command!r}")


class FencedStore:
    """A record (a Redis hash) that is written only with a fencing token.

    With ``fenced=True`` a write whose token is lower than the highest token already
    written is rejected, as Kleppmann's storage rejects token 33 after 34 wrote. With
    ``fenced=False`` every write lands: the storage of the classic lock examples.
    """

    # KEYS[1] the record (hash with fields value, fence)
    # ARGV[1] value, ARGV[2] fencing token, ARGV[3] "1" to check the token, "0" to not
    # returns 1 when the write landed, 0 when a higher token had already written
    WRITE = """
    local last = tonumber(redis.call('hget', KEYS[1], 'fence') or '0')
    if ARGV[3] == '1' and tonumber(ARGV[2]) < last then
      return 0
    end
    redis.call('hset', KEYS[1], 'value', ARGV[1], 'fence', ARGV[2])
    return 1
    """

    def __init__(self, r: Any, key: str, *, fenced: bool = True) -> None:
        if not isinstance(key, str) or not key:
            raise ValueError(f"key must be a non-empty string, got {key!r}")
        self.key = key
        self.fenced = bool(fenced)
        self._r = r
        self._write = r.register_script(self.WRITE)

    def write(self, value: str, token: int) -> bool:
        """Write ``value`` under fencing ``token``; False when the storage rejected it."""
        if isinstance(token, bool) or not isinstance(token, int):
            raise TypeError(f"token must be an int, not {type(token).__name__}")
        return bool(self._write(keys=[self.key], args=[value, token, "1" if self.fenced else "0"]))

    def read(self) -> tuple[str | None, int]:
        """(value, fencing token of the write that holds it); (None, 0) when never written."""
        value, fence = self._r.hmget(self.key, ["value", "fence"])
        return value, int(fence or 0)


# --------------------------------------------------------------------------------------
# Experiment helpers for notebook 06 (contention and pauses). Not part of the pattern.
# --------------------------------------------------------------------------------------

VARIANTS = (*STRATEGIES, "redis-py")


@dataclass
class ContentionResult:
    """One contention run: ``workers`` holders competing for one lock for ``duration`` s.

    ``waits[i]`` are worker i's completed waits (seconds from calling acquire to the grant);
    ``censored`` are waits still unfinished when the window closed (lower bounds, included
    in the percentiles so a starved waiter cannot hide).
    """

    variant: str
    workers: int
    mode: str
    duration: float
    waits: list[list[float]]
    censored: list[float] = field(default_factory=list)

    @property
    def sections(self) -> int:
        return sum(len(w) for w in self.waits)

    @property
    def throughput(self) -> float:
        """Critical sections completed per second."""
        return self.sections / self.duration

    def all_waits(self) -> np.ndarray:
        return np.array([x for w in self.waits for x in w] + list(self.censored), dtype=float)

    @property
    def jain(self) -> float:
        """Jain's fairness index over sections per worker: 1 = equal shares, 1/n = one hog."""
        x = np.array([len(w) for w in self.waits], dtype=float)
        return float(x.sum() ** 2 / (len(x) * (x**2).sum())) if x.sum() else 0.0

    def row(self) -> dict[str, Any]:
        waits = self.all_waits() * 1000
        return {
            "variant": self.variant,
            "mode": self.mode,
            "workers": self.workers,
            "sections": self.sections,
            "throughput_per_s": self.throughput,
            "p50_wait_ms": float(np.percentile(waits, 50)) if waits.size else 0.0,
            "p99_wait_ms": float(np.percentile(waits, 99)) if waits.size else 0.0,
            "max_wait_ms": float(waits.max()) if waits.size else 0.0,
            "jain": self.jain,
        }


def contend(
    r: Any,
    name: str,
    variant: str,
    *,
    prefix: str,
    start_at: float,
    stop_at: float,
    hold: float,
    think: float,
    ttl: float = 2.0,
) -> tuple[list[float], list[float]]:
    """One worker's loop: acquire, hold ``hold`` s, release, work ``think`` s outside, repeat.

    Runs from wall-clock ``start_at`` to ``stop_at`` (``time.time()``, shared by processes).
    Returns (completed waits, censored waits) in seconds.
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
    if variant == "redis-py":
        peer = redis.lock.Lock(r, lock_keys(prefix, name).lock, timeout=ttl, sleep=0.1)

        def take(wait: float) -> bool:
            return bool(peer.acquire(blocking_timeout=wait))

        give: Callable[[], object] = peer.release
    else:
        lock = Lock(r, name, ttl=ttl, strategy=variant, prefix=prefix)

        def take(wait: float) -> bool:
            return lock.acquire(timeout=wait) is not None

        give = lock.release
    waits: list[float] = []
    censored: list[float] = []
    time.sleep(max(0.0, start_at - time.time()))
    while time.time() < stop_at:
        t0 = time.perf_counter()
        got = take(max(0.0, stop_at - time.time()))
        waited = time.perf_counter() - t0
        if not got:
            censored.append(waited)
            break
        waits.append(waited)
        time.sleep(hold)
        give()
        time.sleep(think)
    return waits, censored


ServerSpec = tuple[str, int, bool]  # host, port, cluster?: enough for a process to connect


def server_spec(r: Any) -> ServerSpec:
    """How another process reaches the server (or cluster) behind ``r``."""
    from labkit.server import address

    host, port = address(r)
    return host, port, hasattr(r, "get_default_node")


def open_client(spec: ServerSpec) -> Any:
    """A new client (``decode_responses=True``) from a ``server_spec``, in any process."""
    host, port, cluster = spec
    if cluster:
        from redis.cluster import RedisCluster

        return RedisCluster(host=host, port=port, decode_responses=True)
    return redis.Redis(host=host, port=port, decode_responses=True)


def _contend_in_process(
    spec: ServerSpec, kwargs: dict[str, Any]
) -> tuple[list[float], list[float]]:
    client = open_client(spec)
    try:
        return contend(client, **kwargs)
    finally:
        client.close()


def mp_context() -> Any:
    """forkserver where the platform has it (fast, no inherited threads), else spawn."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    # The fork server imports this module (redis, numpy, ...) once; each worker forks from it.
    ctx.set_forkserver_preload(["labkit.locks"])
    return ctx


def contention_sweep(
    r: Any,
    variants: tuple[str, ...],
    workers: tuple[int, ...],
    *,
    prefix: str,
    mode: str = "threads",
    duration: float | Mapping[int, float] = 0.5,
    hold: float = 0.002,
    think: float = 0.002,
    start_delay: float = 0.1,
) -> Iterator[ContentionResult]:
    """Run every (variant, N) for ``duration`` seconds each; yield one result per run.

    ``duration`` may map a worker count to its own window (``{16: 0.5}``), so that the runs
    whose waits are longest get a window long enough to show their tail.

    ``mode="processes"`` runs each worker in its own process (a pool of ``max(workers)``
    processes, started once, given the server's host and port); ``"threads"`` shares ``r``.
    """
    if mode not in ("threads", "processes"):
        raise ValueError(f"mode must be 'threads' or 'processes', got {mode!r}")
    for v in variants:
        if v not in VARIANTS:
            raise ValueError(f"variants must be among {', '.join(VARIANTS)}, got {v!r}")
    if not workers or min(workers) < 1:
        raise ValueError(f"workers must be counts >= 1, got {workers!r}")
    windows = {
        n: _seconds("duration", duration[n] if isinstance(duration, Mapping) else duration)
        for n in workers
    }
    spec = server_spec(r)
    size = max(workers)
    pool: Any = (
        ProcessPoolExecutor(size, mp_context=mp_context())
        if mode == "processes"
        else ThreadPoolExecutor(size)
    )
    with pool:
        if mode == "processes":  # start every process before the first timed run
            list(pool.map(time.sleep, [0.05] * size))
        for run, (variant, n) in enumerate((v, n) for v in variants for n in workers):
            start_at = time.time() + start_delay
            kwargs = {
                "name": f"contention-{run}-{variant}-{n}",
                "variant": variant,
                "prefix": prefix,
                "start_at": start_at,
                "stop_at": start_at + windows[n],
                "hold": hold,
                "think": think,
            }
            if mode == "processes":
                futures = [pool.submit(_contend_in_process, spec, kwargs) for _ in range(n)]
            else:
                futures = [pool.submit(contend, r, **kwargs) for _ in range(n)]
            outcomes = [f.result() for f in futures]
            yield ContentionResult(
                variant=variant,
                workers=n,
                mode=mode,
                duration=windows[n],
                waits=[w for w, _ in outcomes],
                censored=[c for _, cs in outcomes for c in cs],
            )


def _paused_writer(
    spec: ServerSpec,
    name: str,
    prefix: str,
    ttl: float,
    store_key: str,
    fenced: bool,
    conn: Any,
) -> None:
    """Child process: per request, acquire, report the token, wait for "go", then write."""
    client = open_client(spec)
    lock = Lock(client, name, ttl=ttl, strategy="notify", prefix=prefix)
    store = FencedStore(client, store_key, fenced=fenced)
    while conn.recv() == "round":
        token = lock.acquire(timeout=5.0)
        conn.send(token)
        conn.recv()  # "go": arrives while we are stopped, read once we are continued
        landed = store.write("from the paused holder", token) if token is not None else False
        conn.send((landed, lock.release()))
    client.close()


@dataclass(frozen=True)
class PauseRound:
    paused_token: int  # the fencing token of the holder that was paused
    second_token: int | None  # the token the second worker got while it was paused
    double_grant: bool  # the second worker was granted while the first still believed it held
    stale_write_landed: bool  # the paused holder's write reached the storage afterwards
    paused_release_ok: bool  # the paused holder could still release (False: lease lost)


def pause_rounds(
    r: Any,
    *,
    prefix: str,
    rounds: int,
    fenced: bool,
    ttl: float = 0.05,
    pause: float = 0.12,
) -> list[PauseRound]:
    """A holder (another process) is SIGSTOPped between its grant and its write, for at
    least ``pause`` > ``ttl`` seconds and until this process has acquired, written and
    released; then the holder is continued and writes with its old token. Returns one
    ``PauseRound`` per round.
    """
    if not hasattr(signal, "SIGSTOP"):
        raise RuntimeError("pause_rounds needs SIGSTOP/SIGCONT (Linux or macOS)")
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    if _seconds("pause", pause) <= _seconds("ttl", ttl):
        raise ValueError(
            f"pause must be longer than ttl to lose the lease, got pause={pause}, ttl={ttl}"
        )
    spec = server_spec(r)
    name = f"paused-{'fenced' if fenced else 'unfenced'}-{secrets.token_hex(4)}"
    store_key = f"{prefix}store:{name}"
    ctx = mp_context()
    parent, child = ctx.Pipe()
    proc = ctx.Process(
        target=_paused_writer,
        args=(spec, name, prefix, ttl, store_key, fenced, child),
        daemon=True,
    )
    proc.start()
    lock = Lock(r, name, ttl=ttl, strategy="notify", prefix=prefix)
    store = FencedStore(r, store_key, fenced=fenced)
    results: list[PauseRound] = []
    try:
        for _ in range(rounds):
            parent.send("round")
            paused_token = parent.recv()
            os.kill(proc.pid, signal.SIGSTOP)  # type: ignore[arg-type]
            parent.send("go")
            stopped_at = time.monotonic()
            # The paused holder has not released: any grant now is a second, concurrent one.
            second = lock.acquire(timeout=pause + 5.0)  # the holder stays stopped meanwhile
            if second is not None:
                store.write("from the second holder", second)
                lock.release()
            time.sleep(max(0.0, stopped_at + pause - time.monotonic()))
            os.kill(proc.pid, signal.SIGCONT)  # type: ignore[arg-type]
            landed, released = parent.recv()
            results.append(PauseRound(paused_token, second, second is not None, landed, released))
    finally:
        os.kill(proc.pid, signal.SIGCONT)  # type: ignore[arg-type]
        parent.send("stop")
        proc.join(5)
        if proc.is_alive():
            proc.kill()
    return results
