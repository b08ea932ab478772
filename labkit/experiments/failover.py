"""Failover on a local Redis Cluster: kill a primary, let its replica take over, count the
acknowledged writes (and lock grants) that did not survive. Experiment helpers for notebook 10.

    with LocalCluster(masters=3, replicas=1, node_timeout_ms=500) as cluster:
        in_step = writes_across_failover(cluster, 0, "lab:10:w0:", waits=(0, 1))
        lagging = writes_across_failover(cluster, 1, "lab:10:w1:", waits=(0, 1), lag_s=0.3)
        lagging.writer(0).lost, lagging.writer(1).lost      # plain SET vs SET + WAIT 1
        replicated, lost = locks_across_failover(cluster, 2, "lab:10:locks:")
    with LocalCluster(masters=3, node_timeout_ms=500) as cluster:
        minority_primary_writes(cluster, 0, "lab:10:cut:").accepting_s

``writes_across_failover``: writer threads send ``SET`` (one of them followed by ``WAIT
numreplicas timeout`` on the same connection) to the primary that owns their keys' slot and
record every attempt. The primary is killed with SIGKILL while they run; the cluster marks it
failed after ``node_timeout_ms``, its replica wins the election and serves the slots; the
writers follow it. Afterwards every acknowledged key is read back from the new primary.

- ``lost``: writes the client was told succeeded (``OK``, and with WAIT also ``WAIT``
  reporting that many replicas) that are absent after the failover. Replication is
  asynchronous, so a plain ``OK`` write can be lost when the primary dies before its replica
  applied it; a write ``WAIT`` confirmed on the only replica had reached that replica, so it
  survives that replica's promotion.
- ``unconfirmed``: writes that got ``OK`` but whose ``WAIT`` timed out with fewer replicas;
  they are not counted as acknowledged (a client using ``WAIT`` must treat them as "maybe").
- Lag on demand (``lag_s``): with the replica on the same machine, replication lag is
  microseconds and both writers usually lose 0. ``CLIENT PAUSE WRITE`` sent to the replica
  holds its link to the primary: the primary's stream is still received (the replica's read
  offset keeps up) but not applied, and the replica acknowledges only what it applied, so
  ``WAIT`` answers 0; when the primary dies, the replica drops the unapplied stream.
  Checked on Redis 7.0 and on Valkey 9.1 (``tests/test_failover.py`` asserts it on whichever
  server runs the tests). It is a stand-in for a slow network, not a network fault.

``locks_across_failover``: a ``labkit.locks.Lock`` grant that reached the replica and one
that did not (the replica held back the same way), through a failover; see its docstring.

``minority_primary_writes``: a primary cut off from the other primaries (frozen with SIGSTOP)
keeps acknowledging writes until ``cluster-node-timeout`` has passed without an answer from a
majority; then it refuses them (``CLUSTERDOWN``).

What it does not promise: ``WAIT`` does not make Redis strongly consistent (Redis docs,
``WAIT``: a replica that did not receive a write can still be promoted, e.g. with several
replicas, and a restart without persistence loses everything). Killing and freezing touch
only processes this process started (``LocalCluster``), nothing else.

Keys: writes go to ``<prefix><n>-{<tag>}:<i>``, ``tag`` chosen so the slot belongs to the
victim primary; locks use ``labkit.locks`` keys under ``prefix`` and fenced records under
``<prefix>{<store tag>}:<lock name>`` on another primary.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import signal
import threading
import time
from dataclasses import dataclass
from typing import Any

import pandas as pd
import redis
from redis.cluster import RedisCluster

from labkit import checks
from labkit.locks import FencedStore, Lock
from labkit.server import LocalCluster, RedisServer

_RETRY_SLEEP = 0.01


@dataclass
class WriterOutcome:
    """What one writer of a ``writes_across_failover`` run was told, and what survived."""

    wait_replicas: int  # 0: plain SET; n: SET then WAIT n on the same connection
    acknowledged: int  # writes the client was told succeeded
    survived: int  # of those, present after the failover
    unconfirmed: int  # OK but WAIT reported fewer replicas: not counted as acknowledged
    failed_attempts: int  # writes that raised (node dead, cluster down): never acknowledged

    @property
    def name(self) -> str:
        return f"SET + WAIT {self.wait_replicas}" if self.wait_replicas else "plain SET"

    @property
    def lost(self) -> int:
        return self.acknowledged - self.survived


@dataclass
class FailoverRun:
    """The outcome of one ``writes_across_failover`` run: one or more writers, one failover.

    Times are seconds relative to the SIGKILL of the primary (negative: before it).
    ``events`` has one row per write attempt: ``t``, ``writer`` (its name) and ``outcome``,
    one of ``"acknowledged"`` (and still there), ``"lost"`` (acknowledged, then gone),
    ``"unconfirmed"`` (WAIT timed out) and ``"failed"`` (the command raised).
    """

    lagged: bool  # the replica was paused before the kill
    writers: list[WriterOutcome]
    failover_s: float  # from the SIGKILL to the replica reporting role:master
    paused_at: float | None  # when the replica stopped applying the stream (lagged runs)
    replica_behind_bytes: int  # primary's offset minus the replica's applied offset at the kill
    events: pd.DataFrame

    def writer(self, wait_replicas: int) -> WriterOutcome:
        """The outcome of the writer that sent ``WAIT wait_replicas`` (0: plain SET)."""
        for outcome in self.writers:
            if outcome.wait_replicas == wait_replicas:
                return outcome
        raise KeyError(f"no writer with wait_replicas={wait_replicas} in this run")

    def rows(self) -> list[dict[str, Any]]:
        """One table row per writer."""
        return [
            {
                "replica": "lagging (paused)" if self.lagged else "in step",
                "writer": w.name,
                "acknowledged": w.acknowledged,
                "survived": w.survived,
                "lost": w.lost,
                "unconfirmed (WAIT timed out)": w.unconfirmed,
                "failed attempts": w.failed_attempts,
                "replica behind at the kill (bytes)": self.replica_behind_bytes,
                "failover (s)": round(self.failover_s, 2),
            }
            for w in self.writers
        ]


def role(node: RedisServer) -> str:
    """``"master"`` or ``"slave"`` (INFO replication), or ``"down"`` for a stopped node."""
    if not node.running:
        return "down"
    return str(node.client().info("replication")["role"])


def replica_of(cluster: LocalCluster, primary: RedisServer) -> RedisServer | None:
    """The running replica that replicates ``primary``, or None."""
    for node in cluster.nodes:
        if node is primary or not node.running:
            continue
        info = node.client().info("replication")
        if info["role"] == "slave" and int(info["master_port"]) == primary.port:
            return node
    return None


def _primary_with_replica(cluster: LocalCluster, index: object) -> tuple[RedisServer, RedisServer]:
    """``cluster.primaries[index]`` and its replica; ValueError if it is down or has none."""
    index = checks.integer("index", index, low=0, high=cluster.masters - 1)
    primary = cluster.primaries[index]
    if role(primary) != "master":
        raise ValueError(f"index {index}: that node is {role(primary)}, not a running primary")
    replica = replica_of(cluster, primary)
    if replica is None:
        raise ValueError(f"index {index}: primary {primary.port} has no replica to promote")
    return primary, replica


def kill_primary(cluster: LocalCluster, index: int) -> tuple[RedisServer, RedisServer]:
    """SIGKILL ``cluster.primaries[index]``; return ``(killed, replica that will take over)``.

    Refuses (``ValueError``) a primary that is already down, is no longer a primary, or has
    no replica to promote, before killing anything.
    """
    primary, replica = _primary_with_replica(cluster, index)
    primary.stop()  # Popen.kill(): SIGKILL, no chance to flush anything
    return primary, replica


def wait_for_promotion(replica: RedisServer, timeout: float = 20.0) -> float:
    """Block until ``replica`` reports ``role:master``; return the seconds waited."""
    start = time.monotonic()
    while role(replica) != "master":
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"replica {replica.port} was not promoted within {timeout} s")
        time.sleep(0.02)
    return time.monotonic() - start


def tag_on_node(rc: RedisCluster, node: RedisServer, stem: str = "t", limit: int = 100_000) -> str:
    """A hash tag ``<stem>-<i>`` whose slot is served by ``node`` (a cluster client's view)."""
    for i in range(limit):
        tag = f"{stem}-{i}"
        if int(rc.get_node_from_key(tag).port) == node.port:
            return tag
    raise ValueError(f"no tag {stem}-0..{limit - 1} lands on node {node.port}")


def wait_writable(rc: RedisCluster, key: str, timeout: float = 20.0) -> float:
    """Retry ``SET key`` through the cluster client until it succeeds; return seconds waited.

    On failure the client's slot map is refreshed, so it finds a promoted replica.
    """
    start = time.monotonic()
    while True:
        try:
            rc.set(key, "probe")
            rc.delete(key)
            return time.monotonic() - start
        except (redis.exceptions.RedisError, OSError):
            if time.monotonic() - start > timeout:
                raise
            _refresh(rc)


def _refresh(rc: RedisCluster) -> None:
    time.sleep(_RETRY_SLEEP)
    # every startup node may be briefly unreachable; the next attempt retries
    with contextlib.suppress(redis.exceptions.RedisError, OSError):
        rc.nodes_manager.initialize()


class _Writer(threading.Thread):
    """SET (+ WAIT on the same connection) in a loop, recording every attempt."""

    def __init__(self, rc: RedisCluster, key_prefix: str, wait_replicas: int, wait_timeout_ms: int):
        super().__init__(name="labkit-failover-writer", daemon=True)
        self.rc, self.key_prefix = rc, key_prefix
        self.wait_replicas, self.wait_timeout_ms = wait_replicas, wait_timeout_ms
        self.acked: list[str] = []
        # (monotonic time of the reply, key, "acknowledged" | "unconfirmed" | "failed")
        self.attempts: list[tuple[float, str, str]] = []
        self.unconfirmed = self.failed = self.replies = 0
        self.stop_event = threading.Event()

    def run(self) -> None:
        n = 0
        while not self.stop_event.is_set():
            key = f"{self.key_prefix}{n}"
            n += 1  # a failed attempt never reuses its key: "maybe written" stays apart
            try:
                node = self.rc.get_node_from_key(key)
                pipe = node.redis_connection.pipeline(transaction=False)
                pipe.set(key, n)
                if self.wait_replicas:
                    pipe.wait(self.wait_replicas, self.wait_timeout_ms)
                replies = pipe.execute()
            except (redis.exceptions.RedisError, OSError):
                self.failed += 1
                self.attempts.append((time.monotonic(), key, "failed"))
                _refresh(self.rc)
                continue
            self.replies += 1
            if self.wait_replicas and int(replies[1]) < self.wait_replicas:
                self.unconfirmed += 1
                self.attempts.append((time.monotonic(), key, "unconfirmed"))
            else:
                self.acked.append(key)
                self.attempts.append((time.monotonic(), key, "acknowledged"))


def _offsets(primary: RedisServer, replica: RedisServer) -> int:
    """Bytes of replication stream the primary has that the replica has not applied."""
    primary_offset = int(primary.client().info("replication")["master_repl_offset"])
    applied = int(replica.client().info("replication").get("slave_repl_offset", 0))
    return max(primary_offset - applied, 0)


def writes_across_failover(
    cluster: LocalCluster,
    index: int,
    prefix: str,
    *,
    waits: tuple[int, ...] = (0,),
    wait_timeout_ms: int = 20,
    lag_s: float = 0.0,
    writes_before_kill: int = 200,
    writes_after_promotion: int = 20,
    timeout: float = 20.0,
) -> FailoverRun:
    """Kill primary ``index`` while writers run; count acknowledged writes that are gone.

    One writer per entry of ``waits`` runs at the same time, each on its own keys
    ``<prefix><n>-{<tag>}:<i>`` in a slot of the victim primary: ``0`` sends plain ``SET``;
    ``k`` sends ``SET`` then ``WAIT k wait_timeout_ms`` and counts the write as acknowledged
    only when WAIT reports ``k`` replicas. Once every writer has ``writes_before_kill``
    acknowledged writes:

    - with ``lag_s > 0`` the replica is paused with ``CLIENT PAUSE WRITE``: it still receives
      the replication stream but stops applying it (and stops acknowledging offsets, so WAIT
      times out). The writers go on for ``lag_s`` seconds (and until the first writer has at
      least one more reply), then the primary is killed; once the replica has seen the link
      drop (``master_link_status:down``) it is unpaused and discards what it did not apply.
    - with ``lag_s == 0`` the primary is killed at once, the replica in step.

    The replica is promoted once the other primaries agree the victim is down; the writers
    follow the new slot map and stop after ``writes_after_promotion`` more replies each. The
    promoted replica has no replica of its own, so WAIT writes after it count as unconfirmed.
    """
    if not isinstance(waits, tuple) or not waits:
        raise ValueError(f"waits must be a non-empty tuple of replica counts, got {waits!r}")
    waits = tuple(checks.integer("waits", w, low=0, high=100) for w in waits)
    wait_timeout_ms = checks.integer("wait_timeout_ms", wait_timeout_ms, low=0, high=60_000)
    lag_s = checks.number("lag_s", lag_s, low=0, high=60)
    writes_before_kill = checks.integer("writes_before_kill", writes_before_kill, low=1)
    writes_after_promotion = checks.integer("writes_after_promotion", writes_after_promotion, low=0)
    checks.prefix(prefix)
    victim, replica = _primary_with_replica(cluster, index)
    clients = [cluster.client() for _ in waits]
    writers = [
        _Writer(rc, f"{prefix}{n}-{{{tag_on_node(rc, victim, stem=f'w{n}')}}}:", w, wait_timeout_ms)
        for n, (rc, w) in enumerate(zip(clients, waits, strict=True))
    ]
    replica_client = replica.client()
    paused_at: float | None = None
    try:
        for writer in writers:
            writer.start()
        try:
            _wait_for(
                lambda: all(len(w.acked) >= writes_before_kill for w in writers), timeout, "writes"
            )
            if lag_s:
                replica_client.execute_command("CLIENT", "PAUSE", int(timeout * 1000), "WRITE")
                paused_at = pause_start = time.monotonic()
                replies = writers[0].replies
                _wait_for(
                    lambda: time.monotonic() - pause_start >= lag_s
                    and writers[0].replies > replies,
                    timeout,
                    "writes while the replica lags",
                )
            behind = _offsets(victim, replica)
            kill_primary(cluster, index)
            killed_at = time.monotonic()
            if lag_s:
                # Once the replica saw the link drop it has discarded the unapplied stream.
                _wait_for(
                    lambda: replica_client.info("replication").get("master_link_status") == "down",
                    timeout,
                    "the replica to notice its primary is gone",
                )
                replica_client.execute_command("CLIENT", "UNPAUSE")
            wait_for_promotion(replica, timeout)
            failover_s = time.monotonic() - killed_at
            # Count replies, not acknowledgements: after the failover every WAIT times out.
            targets = [w.replies + writes_after_promotion for w in writers]
            _wait_for(
                lambda: all(w.replies >= t for w, t in zip(writers, targets, strict=True)),
                timeout,
                "replies after promotion",
            )
        finally:
            for writer in writers:
                writer.stop_event.set()
            for writer in writers:
                writer.join()
            if lag_s:
                with contextlib.suppress(redis.exceptions.RedisError, OSError):
                    replica_client.execute_command("CLIENT", "UNPAUSE")
        outcomes, events = [], []
        for writer, rc in zip(writers, clients, strict=True):
            present = _present(rc, writer.acked)
            outcomes.append(
                WriterOutcome(
                    wait_replicas=writer.wait_replicas,
                    acknowledged=len(writer.acked),
                    survived=len(present),
                    unconfirmed=writer.unconfirmed,
                    failed_attempts=writer.failed,
                )
            )
            name = outcomes[-1].name
            for at, key, outcome in writer.attempts:
                if outcome == "acknowledged" and key not in present:
                    outcome = "lost"
                events.append({"t": at - killed_at, "writer": name, "outcome": outcome})
        return FailoverRun(
            lagged=bool(lag_s),
            writers=outcomes,
            failover_s=failover_s,
            paused_at=None if paused_at is None else paused_at - killed_at,
            replica_behind_bytes=behind,
            events=pd.DataFrame(events, columns=["t", "writer", "outcome"]),
        )
    finally:
        replica_client.close()
        for rc in clients:
            rc.close()


def _wait_for(ready: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no progress: waited {timeout} s for {what}")
        time.sleep(0.005)


def _present(rc: RedisCluster, keys: list[str], chunk: int = 500) -> set[str]:
    """Which of ``keys`` (all in one slot) exist, one pipelined EXISTS per key."""
    present: set[str] = set()
    for i in range(0, len(keys), chunk):
        part = keys[i : i + chunk]
        node = rc.get_node_from_key(part[0])
        pipe = node.redis_connection.pipeline(transaction=False)
        for key in part:
            pipe.exists(key)
        present.update(k for k, found in zip(part, pipe.execute(), strict=True) if found)
    return present


@dataclass
class LockRound:
    """One lock through a failover: holder A on the old primary, holder B on the new one."""

    case: str
    a_token: int
    a_wait_replicas: int  # what WAIT 1 answered right after A's grant
    b_token: int
    b_granted_during_a_lease: bool  # two holders at once
    b_write_accepted: bool  # B's write, after A's first one, landed in the fenced store
    stale_write_accepted: bool  # A's write, sent after B's, landed in the fenced store
    store_holds: str  # the value the fenced record holds at the end ("A", "B", "A (stale)")

    @property
    def fenced_off(self) -> bool:
        """Fencing did its job: B's write landed and A's later one was refused."""
        return self.b_write_accepted and not self.stale_write_accepted

    def row(self) -> dict[str, Any]:
        return {
            "case": self.case,
            "A's WAIT 1 reply": self.a_wait_replicas,
            "A token": self.a_token,
            "B token": self.b_token,
            "B granted while A's lease ran": self.b_granted_during_a_lease,
            "B's write accepted": self.b_write_accepted,
            "A's stale write accepted": self.stale_write_accepted,
            "record holds": self.store_holds,
        }


def _fenced_write(store: FencedStore, value: str, token: int, owner: str) -> bool:
    """``store.write`` naming the writer as ``owner`` when this ``FencedStore`` takes owners.

    A store that refuses an equal token from a different owner must be told who writes, or
    it refuses every equal token, A's own second write included; a store with no owner rule
    compares tokens only. Either version of ``FencedStore`` gives the rule it implements.
    """
    takes_owner = "owner" in inspect.signature(store.write).parameters
    named: dict[str, Any] = {"owner": owner} if takes_owner else {}
    return store.write(value, token, **named)


def locks_across_failover(
    cluster: LocalCluster,
    index: int,
    prefix: str,
    *,
    lease_replicated: float = 0.5,
    lease_lost: float = 30.0,
    timeout: float = 20.0,
) -> list[LockRound]:
    """Two ``labkit.locks.Lock`` grants on primary ``index``, then a failover.

    Holder A takes lock 1 (lease ``lease_replicated``) and sees ``WAIT 1`` confirm it. Then
    the replica is paused with ``CLIENT PAUSE WRITE`` (it stops applying the replication
    stream: a deterministic stand-in for replication lag) and A takes lock 2 (lease
    ``lease_lost``); ``WAIT 1`` answers 0. A writes each lock's ``FencedStore`` (on another
    primary) with its token. The primary is killed; once the replica noticed
    (``master_link_status:down``) it is unpaused, drops the unapplied stream and is promoted.
    Holder B then asks for both locks on the new primary and writes the store with its
    token; A, unaware, writes again after B with its own token. Each write names its holder
    (``owner="A"`` / ``"B"``) when the store takes owners.

    When the grant was lost, B's token equals A's, and no store rule that compares tokens
    can fence A off: a store that accepts an equal token takes both holders' writes (A's
    stale write lands after B's); one that refuses an equal token from a different owner
    keeps A, who wrote first, and refuses B, the rightful holder. Either way the record ends
    holding A's value (``store_holds``) and ``fenced_off`` is False; the row says which of
    the two writes the store refused.
    """
    checks.seconds("lease_replicated", lease_replicated)
    checks.seconds("lease_lost", lease_lost)
    checks.prefix(prefix)
    victim, replica = _primary_with_replica(cluster, index)
    rc = cluster.client()
    try:
        names = [tag_on_node(rc, victim, "report"), tag_on_node(rc, victim, "invoice")]
        other = next(n for n in cluster.nodes if n is not victim and role(n) == "master")
        store_tag = tag_on_node(rc, other, "store")
        stores = [FencedStore(rc, f"{prefix}{{{store_tag}}}:{name}") for name in names]
        # A talks to the primary directly: one connection, so WAIT follows A's own write.
        a_client = victim.client()
        a_locks = [
            Lock(a_client, names[0], ttl=lease_replicated, prefix=prefix),
            Lock(a_client, names[1], ttl=lease_lost, prefix=prefix),
        ]
        a_tokens: list[int] = []
        a_waits: list[int] = []
        granted_at: list[float] = []
        replica_client = replica.client()
        try:
            for i, lock in enumerate(a_locks):
                if i == 1:  # the replica stops applying the stream: A's next grant stays behind
                    replica_client.execute_command("CLIENT", "PAUSE", int(timeout * 1000), "WRITE")
                token = lock.acquire(blocking=False)
                granted_at.append(time.monotonic())
                if token is None:
                    raise RuntimeError(f"lock {lock.name!r} was already held; use a fresh prefix")
                a_tokens.append(token)
                a_waits.append(int(a_client.wait(1, 1000 if i == 0 else 50)))
                _fenced_write(stores[i], "A", token, "A")  # A starts its work under the lock
            kill_primary(cluster, index)
            # Once the replica saw the link drop it has discarded the unapplied stream.
            _wait_for(
                lambda: replica_client.info("replication").get("master_link_status") == "down",
                timeout,
                "the replica to notice its primary is gone",
            )
        finally:
            replica_client.execute_command("CLIENT", "UNPAUSE")
        wait_for_promotion(replica, timeout)
        b_client = cluster.client()
        try:
            wait_writable(b_client, f"{prefix}{{{names[1]}}}:probe", timeout)
            rounds = []
            for i, name in enumerate(names):
                lease = lease_replicated if i == 0 else lease_lost
                b_lock = Lock(b_client, name, ttl=lease, strategy="spin", prefix=prefix)
                b_token = b_lock.acquire(timeout=timeout, blocking=True)
                if b_token is None:
                    raise TimeoutError(f"B did not get lock {name!r} within {timeout} s")
                during = time.monotonic() - granted_at[i] < lease
                b_accepted = _fenced_write(stores[i], "B", b_token, "B")
                stale_accepted = _fenced_write(stores[i], "A (stale)", a_tokens[i], "A")
                holds = stores[i].read()[0]
                b_lock.release()
                rounds.append(
                    LockRound(
                        case="grant replicated" if i == 0 else "grant not replicated",
                        a_token=a_tokens[i],
                        a_wait_replicas=a_waits[i],
                        b_token=b_token,
                        b_granted_during_a_lease=during,
                        b_write_accepted=b_accepted,
                        stale_write_accepted=stale_accepted,
                        store_holds=holds or "",
                    )
                )
            return rounds
        finally:
            b_client.close()
    finally:
        rc.close()


@dataclass
class MinorityRun:
    """A primary cut off from the other primaries: how long it kept accepting writes."""

    node_timeout_ms: int
    accepted: int  # writes it acknowledged after the others stopped answering
    accepting_s: float  # from the cut to its last acknowledged write
    refused_after_s: float  # from the cut to its first refused write
    refusal: str  # what it answered then

    def row(self) -> dict[str, Any]:
        return {
            "cluster-node-timeout (ms)": self.node_timeout_ms,
            "writes accepted after the cut": self.accepted,
            "accepted for (s)": round(self.accepting_s, 3),
            "first refusal after (s)": round(self.refused_after_s, 3),
            "refusal": self.refusal,
        }


def minority_primary_writes(
    cluster: LocalCluster, index: int, prefix: str, *, timeout: float = 20.0
) -> MinorityRun:
    """Cut primary ``index`` off from every other primary; write to it until it refuses.

    The other primaries are frozen with SIGSTOP (processes this process started), which to
    the victim looks like a network partition that leaves it in the minority. A client that
    still reaches the victim sends ``INCR`` in a loop; the victim answers until it has
    flagged a majority of primaries as failing (``cluster-node-timeout`` without an answer)
    and set ``cluster_state:fail``, then refuses with ``CLUSTERDOWN``. The others get SIGCONT
    in every case, and the function returns once the victim reports ``cluster_state:ok``.

    The cluster must have no replicas (``ValueError`` otherwise): after SIGCONT the frozen
    primaries may briefly flag each other as failing, which with replicas could start a
    failover nobody asked for.
    """
    checks.prefix(prefix)
    index = checks.integer("index", index, low=0, high=cluster.masters - 1)
    if cluster.replicas:
        raise ValueError("minority_primary_writes needs a cluster without replicas (replicas=0)")
    victim = cluster.primaries[index]
    if role(victim) != "master":
        raise ValueError(f"index {index}: that node is {role(victim)}, not a running primary")
    others = [n for n in cluster.primaries if n is not victim and n.running]
    if not others:
        raise ValueError("the cluster needs at least 2 running primaries to cut one off")
    rc = cluster.client()
    client = victim.client(socket_timeout=timeout)
    try:
        key = f"{prefix}{{{tag_on_node(rc, victim, 'minority')}}}:accepted"
        node_timeout = int(str(client.config_get("cluster-node-timeout")["cluster-node-timeout"]))
        client.incr(key)  # warm connection: the first command after the cut is a plain write
        accepted, last_ok, refusal = 0, 0.0, ""
        for node in others:
            assert node.pid is not None
            os.kill(node.pid, signal.SIGSTOP)
        cut = time.monotonic()
        try:
            while True:
                try:
                    client.incr(key)
                except redis.exceptions.ResponseError as exc:
                    refused = time.monotonic()
                    refusal = f"{type(exc).__name__}: {exc}"[:80]
                    break
                accepted += 1
                last_ok = time.monotonic()
                if last_ok - cut > timeout:
                    raise TimeoutError(f"the cut-off primary still accepted writes after {timeout} s")
        finally:
            for node in others:
                if node.pid is not None:
                    os.kill(node.pid, signal.SIGCONT)
        _wait_for(
            lambda: "cluster_state:ok" in str(client.execute_command("CLUSTER", "INFO")),
            timeout,
            "the cluster to heal after the cut",
        )
        wait_writable(rc, key, timeout)
        return MinorityRun(
            node_timeout_ms=node_timeout,
            accepted=accepted,
            accepting_s=last_ok - cut if accepted else 0.0,
            refused_after_s=refused - cut,
            refusal=refusal,
        )
    finally:
        client.close()
        rc.close()
