"""labkit.experiments.failover: a real local cluster with replicas, real SIGKILLs, real promotions.

One cluster (3 primaries, 1 replica each) serves the module; each failover test kills a
primary that still has a replica, so the tests do not depend on their order.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

from labkit.experiments import failover
from labkit.server import LocalCluster, RedisServer


def _backend() -> str | None:
    forced = os.environ.get("LABKIT_SERVER", "").strip().lower()
    return forced if forced in ("binary", "embedded") else None


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    with LocalCluster(masters=3, replicas=1, node_timeout_ms=500, backend=_backend()) as c:
        yield c
    assert not c.running


def _primary_with_replica(cluster: LocalCluster) -> int:
    for index, node in enumerate(cluster.primaries):
        if failover.role(node) == "master" and failover.replica_of(cluster, node) is not None:
            return index
    pytest.skip("every primary of the module cluster has already been failed over")


def test_pause_write_holds_the_replication_link() -> None:
    """The lag technique itself, on a plain primary and replica of the server under test."""
    with RedisServer(backend=_backend()) as primary, RedisServer(backend=_backend()) as replica:
        p, rep = primary.client(), replica.client()
        rep.execute_command("REPLICAOF", primary.host, primary.port)
        deadline = time.monotonic() + 10
        while rep.info("replication").get("master_link_status") != "up":
            assert time.monotonic() < deadline, "the replica did not link"
            time.sleep(0.02)
        p.set("before", 1)
        assert p.wait(1, 2000) == 1
        rep.execute_command("CLIENT", "PAUSE", 10_000, "WRITE")
        for i in range(50):
            p.set(f"k{i}", i)
        assert p.wait(1, 200) == 0  # the replica acknowledges only what it applied
        offset = int(p.info("replication")["master_repl_offset"])
        deadline = time.monotonic() + 5
        while int(rep.info("replication")["slave_read_repl_offset"]) < offset:
            assert time.monotonic() < deadline, "the stream did not reach the replica"
            time.sleep(0.01)
        assert int(rep.info("replication")["slave_repl_offset"]) < offset  # received, unapplied
        assert rep.dbsize() == 1
        primary.stop()
        while rep.info("replication").get("master_link_status") != "down":
            time.sleep(0.01)
        rep.execute_command("CLIENT", "UNPAUSE")
        time.sleep(0.2)
        assert rep.dbsize() == 1  # the unapplied stream was dropped with the link
        rep.close()


def test_writes_in_step_wait_confirmed_survive(cluster: LocalCluster) -> None:
    index = _primary_with_replica(cluster)
    run = failover.writes_across_failover(
        cluster, index, "lab:test-failover:step:", waits=(0, 1), writes_before_kill=100,
        writes_after_promotion=5,
    )  # fmt: skip
    plain, waited = run.writer(0), run.writer(1)
    assert not run.lagged and run.paused_at is None
    assert plain.acknowledged >= 100 and waited.acknowledged >= 100
    assert 0 <= plain.survived <= plain.acknowledged
    assert plain.unconfirmed == 0
    assert waited.lost == 0
    # the promoted replica has no replica of its own: its writes cannot be confirmed
    assert waited.unconfirmed >= 5
    assert run.failover_s > 0
    assert set(run.events["outcome"]) <= {"acknowledged", "lost", "unconfirmed", "failed"}
    assert (run.events["writer"] == "plain SET").sum() >= plain.acknowledged
    assert failover.role(cluster.primaries[index]) == "down"
    with pytest.raises(ValueError, match="not a running primary"):
        failover.kill_primary(cluster, index)


def test_a_lagging_replica_loses_plain_writes_but_not_wait_confirmed_ones(
    cluster: LocalCluster,
) -> None:
    index = _primary_with_replica(cluster)
    run = failover.writes_across_failover(
        cluster, index, "lab:test-failover:lag:", waits=(0, 1), lag_s=0.2,
        writes_before_kill=100, writes_after_promotion=5,
    )  # fmt: skip
    plain, waited = run.writer(0), run.writer(1)
    assert run.lagged and run.paused_at is not None and run.paused_at < 0
    assert plain.lost >= 1
    assert waited.lost == 0
    assert waited.unconfirmed >= 1  # WAIT timed out while the replica lagged
    assert run.replica_behind_bytes > 0
    lost = run.events[run.events["outcome"] == "lost"]
    assert len(lost) == plain.lost
    # Lost: acknowledged during the lag, or just before it, while still on its way to the
    # replica (replication is asynchronous; paused_at is read after CLIENT PAUSE returns).
    assert lost["t"].between(run.paused_at - 0.05, 0).all()


def test_lost_lock_grant_gives_two_holders_and_fencing_stops_only_the_replicated_one(
    cluster: LocalCluster,
) -> None:
    index = _primary_with_replica(cluster)
    replicated, lost = failover.locks_across_failover(cluster, index, "lab:test-failover:lock:")
    assert replicated.a_wait_replicas == 1
    assert replicated.b_token == replicated.a_token + 1
    assert not replicated.b_granted_during_a_lease
    assert replicated.b_write_accepted
    assert not replicated.stale_write_accepted
    assert replicated.fenced_off and replicated.store_holds == "B"
    assert lost.a_wait_replicas == 0
    assert lost.b_granted_during_a_lease
    assert lost.b_token == lost.a_token  # the fencing counter was lost with the grant
    # An equal token: accepted, both holders write (A last); refused from another owner, A
    # (first to write) goes on and B is refused. Either way A's stale write stands.
    assert lost.stale_write_accepted
    assert not lost.fenced_off and lost.store_holds == "A (stale)"


def test_a_cut_off_primary_accepts_writes_for_about_the_node_timeout() -> None:
    with LocalCluster(masters=3, node_timeout_ms=500, backend=_backend()) as cut:
        run = failover.minority_primary_writes(cut, 0, "lab:test-failover:cut:")
        assert run.node_timeout_ms == 500
        assert run.accepted > 0
        # it cannot flag the others failing before the node timeout has passed
        assert run.accepting_s >= 0.45
        assert run.refused_after_s >= run.accepting_s
        assert "ClusterDown" in run.refusal or "CLUSTERDOWN" in run.refusal
        assert failover.role(cut.primaries[1]) == "master"  # SIGCONT: the others are back
    with pytest.raises(ValueError, match="without replicas"):
        failover.minority_primary_writes(LocalCluster(masters=3, replicas=1), 0, "lab:x:")


def test_kill_primary_refuses_a_bad_index_before_killing() -> None:
    cluster = LocalCluster(masters=3)  # not started: nothing must be touched
    with pytest.raises(ValueError, match=r"index must be between 0 and 2, got 3"):
        failover.kill_primary(cluster, 3)
    with pytest.raises(TypeError, match="index must be an int"):
        failover.kill_primary(cluster, "0")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"waits": (-1,)}, "waits must be between 0 and"),
        ({"waits": ()}, "waits must be a non-empty tuple"),
        ({"lag_s": -1}, "lag_s must be"),
        ({"wait_timeout_ms": -5}, "wait_timeout_ms must be between 0 and"),
        ({"prefix": "lab:{x}:"}, "prefix must not contain"),
        ({"index": 7}, r"index must be between 0 and 2"),
    ],
)
def test_writes_across_failover_rejects_bad_arguments(
    kwargs: dict[str, object], message: str
) -> None:
    args: dict[str, object] = {"index": 0, "prefix": "lab:x:"} | kwargs
    with pytest.raises(ValueError, match=message):
        failover.writes_across_failover(LocalCluster(masters=3), **args)  # type: ignore[arg-type]
