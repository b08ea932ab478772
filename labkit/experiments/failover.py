"""Failover on a local Redis Cluster: kill a primary, let its replica take over, count the
acknowledged writes (and lock grants) that did not survive. Experiment helpers for notebook 10.

    with LocalCluster(masters=3, replicas=1, node_timeout_ms=500) as cluster:
        run = writes_across_failover(cluster, 0, "lab:10:plain:")                # plain SET
        run_wait = writes_across_failover(cluster, 1, "lab:10:wait:", wait_replicas=1)
        run.lost, run_wait.lost                                   # acknowledged, then gone
        replicated, lost = locks_across_failover(cluster, 2, "lab:10:locks:")

``writes_across_failover``: a writer thread sends ``SET`` (optionally followed by ``WAIT
numreplicas timeout`` on the same connection) to the primary that owns its keys' slot and
records every write the server acknowledged. The primary is killed with SIGKILL while the
writer runs; the cluster marks it failed after ``node_timeout_ms``, its replica wins the
election and serves the slots; the writer follows it. Afterwards every acknowledged key is
read back from the new primary.

- ``lost``: writes the client was told succeeded (``OK``, and with ``wait_replicas`` also
  ``WAIT`` reporting that many replicas) that are absent after the failover. Replication is
  asynchronous, so a plain ``OK`` write can be lost when the primary dies before streaming
  it; a write ``WAIT`` confirmed on the only replica had reached that replica, so it
  survives that replica's promotion.
- ``unconfirmed``: writes that got ``OK`` but whose ``WAIT`` timed out with fewer replicas;
  they are not counted as acknowledged (a client using ``WAIT`` must treat them as "maybe").

``locks_across_failover``: a ``labkit.locks.Lock`` grant that reached the replica and one
that did not (the replica held back with ``CLIENT PAUSE WRITE``), through a failover; see
its docstring.

What it does not promise: ``WAIT`` does not make Redis strongly consistent (Redis docs,
``WAIT``: a replica that did not receive a write can still be promoted, e.g. with several
replicas, and a restart without persistence loses everything). With the replica on the same
machine replication lag is microseconds, so both write variants usually lose 0. Killing is
SIGKILL of processes this process started (``LocalCluster``), nothing else.

Keys: writes go to ``<prefix>{<tag>}:<n>``, ``tag`` chosen so the slot belongs to the
victim primary; locks use ``labkit.locks`` keys under ``prefix`` and fenced records under
``<prefix>{<store tag>}:<lock name>`` on another primary.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass
from typing import Any

import redis
from redis.cluster import RedisCluster

from labkit import checks
from labkit.locks import FencedStore, Lock
from labkit.server import LocalCluster, RedisServer

_RETRY_SLEEP = 0.01


@dataclass
class FailoverRun:
    """The outcome of one ``writes_across_failover`` run."""

    wait_replicas: int
    acknowledged: int  # writes the client was told succeeded
    survived: int  # of those, present after the failover
    unconfirmed: int  # OK but WAIT reported fewer replicas: not counted as acknowledged
    failed_attempts: int  # writes that raised (node dead, cluster down): never acknowledged
    failover_s: float  # from the SIGKILL to the replica reporting role:master

    @property
    def lost(self) -> int:
        return self.acknowledged - self.survived

    def row(self) -> dict[str, Any]:
        return {
            "WAIT": f"WAIT {self.wait_replicas}" if self.wait_replicas else "none",
            "acknowledged": self.acknowledged,
            "survived": self.survived,
            "lost": self.lost,
            "unconfirmed (WAIT timed out)": self.unconfirmed,
            "failed attempts": self.failed_attempts,
            "failover (s)": round(self.failover_s, 2),
        }


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


def kill_primary(cluster: LocalCluster, index: int) -> tuple[RedisServer, RedisServer]:
    """SIGKILL ``cluster.primaries[index]``; return ``(killed, replica that will take over)``.

    Refuses (``ValueError``) a primary that is already down, is no longer a primary, or has
    no replica to promote, before killing anything.
    """
    index = checks.integer("index", index, low=0, high=cluster.masters - 1)
    primary = cluster.primaries[index]
    if role(primary) != "master":
        raise ValueError(f"index {index}: that node is {role(primary)}, not a running primary")
    replica = replica_of(cluster, primary)
    if replica is None:
        raise ValueError(f"index {index}: primary {primary.port} has no replica to promote")
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
    """SET (+ WAIT on the same connection) in a loop, recording acknowledged writes."""

    def __init__(self, rc: RedisCluster, key_prefix: str, wait_replicas: int, wait_timeout_ms: int):
        super().__init__(name="labkit-failover-writer", daemon=True)
        self.rc, self.key_prefix = rc, key_prefix
        self.wait_replicas, self.wait_timeout_ms = wait_replicas, wait_timeout_ms
        self.acked: list[str] = []
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
                _refresh(self.rc)
                continue
            self.replies += 1
            if self.wait_replicas and int(replies[1]) < self.wait_replicas:
                self.unconfirmed += 1
            else:
                self.acked.append(key)


def writes_across_failover(
    cluster: LocalCluster,
    index: int,
    prefix: str,
    *,
    wait_replicas: int = 0,
    wait_timeout_ms: int = 100,
    writes_before_kill: int = 300,
    writes_after_promotion: int = 50,
    timeout: float = 20.0,
) -> FailoverRun:
    """Kill primary ``index`` while a writer runs; count acknowledged writes that are gone.

    The writer's keys are ``<prefix>{<tag>}:<n>`` with ``tag`` on the victim primary. The kill
    comes once ``writes_before_kill`` writes were acknowledged; the writer stops after
    ``writes_after_promotion`` more replies from the promoted replica. That replica has no
    replica of its own, so with ``wait_replicas`` those writes count as unconfirmed.
    """
    wait_replicas = checks.integer("wait_replicas", wait_replicas, low=0)
    wait_timeout_ms = checks.integer("wait_timeout_ms", wait_timeout_ms, low=0)
    checks.prefix(prefix)
    index = checks.integer("index", index, low=0, high=cluster.masters - 1)
    rc = cluster.client()
    try:
        tag = tag_on_node(rc, cluster.primaries[index], stem="w")
        writer = _Writer(rc, f"{prefix}{{{tag}}}:", wait_replicas, wait_timeout_ms)
        writer.start()
        try:
            _wait_for(lambda: len(writer.acked) >= writes_before_kill, timeout, "writes")
            _, replica = kill_primary(cluster, index)
            failover_s = wait_for_promotion(replica, timeout)
            # Count replies, not acknowledgements: the promoted primary has no replica yet,
            # so after the failover every WAIT times out and nothing more is acknowledged.
            target = writer.replies + writes_after_promotion
            _wait_for(lambda: writer.replies >= target, timeout, "replies after promotion")
        finally:
            writer.stop_event.set()
            writer.join()
        survived = _count_present(rc, writer.acked)
        return FailoverRun(
            wait_replicas=wait_replicas,
            acknowledged=len(writer.acked),
            survived=survived,
            unconfirmed=writer.unconfirmed,
            failed_attempts=writer.failed,
            failover_s=failover_s,
        )
    finally:
        rc.close()


def _wait_for(ready: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no progress: waited {timeout} s for {what}")
        time.sleep(0.005)


def _count_present(rc: RedisCluster, keys: list[str], chunk: int = 500) -> int:
    """How many of ``keys`` (all in one slot) exist, in chunks of one EXISTS each."""
    present = 0
    for i in range(0, len(keys), chunk):
        present += int(rc.exists(*keys[i : i + chunk]))
    return present


@dataclass
class LockRound:
    """One lock through a failover: holder A on the old primary, holder B on the new one."""

    case: str
    a_token: int
    a_wait_replicas: int  # what WAIT 1 answered right after A's grant
    b_token: int
    b_granted_during_a_lease: bool  # two holders at once
    stale_write_accepted: bool  # A's write, sent after B's, landed in the fenced store

    def row(self) -> dict[str, Any]:
        return {
            "case": self.case,
            "A's WAIT 1 reply": self.a_wait_replicas,
            "A token": self.a_token,
            "B token": self.b_token,
            "B granted while A's lease ran": self.b_granted_during_a_lease,
            "A's stale write accepted": self.stale_write_accepted,
        }


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
    ``lease_lost``); ``WAIT 1`` answers 0. The primary is killed; once the replica noticed
    (``master_link_status:down``) it is unpaused, drops the unapplied stream and is promoted.
    Holder B then asks for both locks on the new primary and writes a ``FencedStore``
    (on another primary) with its token; A, unaware, writes after B with its own token.
    """
    checks.seconds("lease_replicated", lease_replicated)
    checks.seconds("lease_lost", lease_lost)
    checks.prefix(prefix)
    victim = cluster.primaries[index]
    if role(victim) != "master":
        raise ValueError(f"index {index}: that node is {role(victim)}, not a running primary")
    replica = replica_of(cluster, victim)
    if replica is None:
        raise ValueError(f"index {index}: primary {victim.port} has no replica to promote")
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
                stores[i].write("B", b_token)
                stale_accepted = stores[i].write("A (stale)", a_tokens[i])
                b_lock.release()
                rounds.append(
                    LockRound(
                        case="grant replicated" if i == 0 else "grant not replicated",
                        a_token=a_tokens[i],
                        a_wait_replicas=a_waits[i],
                        b_token=b_token,
                        b_granted_during_a_lease=during,
                        stale_write_accepted=stale_accepted,
                    )
                )
            return rounds
        finally:
            b_client.close()
    finally:
        rc.close()
