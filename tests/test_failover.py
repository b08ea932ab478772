"""labkit.experiments.failover: a real local cluster with replicas, real SIGKILLs, real promotions.

One cluster (3 primaries, 1 replica each) serves the module; each failover test kills a
primary that still has a replica, so the tests do not depend on their order.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from labkit.experiments import failover
from labkit.server import LocalCluster


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


def test_plain_writes_are_counted_and_read_back_after_failover(cluster: LocalCluster) -> None:
    index = _primary_with_replica(cluster)
    run = failover.writes_across_failover(
        cluster, index, "lab:test-failover:plain:", writes_before_kill=100,
        writes_after_promotion=10,
    )  # fmt: skip
    assert run.acknowledged >= 110
    assert 0 <= run.survived <= run.acknowledged
    assert run.lost == run.acknowledged - run.survived
    assert run.unconfirmed == 0
    assert run.failover_s > 0
    assert failover.role(cluster.primaries[index]) == "down"
    with pytest.raises(ValueError, match="not a running primary"):
        failover.kill_primary(cluster, index)


def test_writes_confirmed_by_wait_survive_the_failover(cluster: LocalCluster) -> None:
    index = _primary_with_replica(cluster)
    run = failover.writes_across_failover(
        cluster, index, "lab:test-failover:wait:", wait_replicas=1, wait_timeout_ms=20,
        writes_before_kill=100, writes_after_promotion=5,
    )  # fmt: skip
    assert run.acknowledged >= 100
    assert run.lost == 0
    # the promoted replica has no replica of its own: its writes cannot be confirmed
    assert run.unconfirmed >= 5


def test_lost_lock_grant_gives_two_holders_and_fencing_stops_only_the_replicated_one(
    cluster: LocalCluster,
) -> None:
    index = _primary_with_replica(cluster)
    replicated, lost = failover.locks_across_failover(cluster, index, "lab:test-failover:lock:")
    assert replicated.a_wait_replicas == 1
    assert replicated.b_token == replicated.a_token + 1
    assert not replicated.b_granted_during_a_lease
    assert not replicated.stale_write_accepted
    assert lost.a_wait_replicas == 0
    assert lost.b_granted_during_a_lease
    assert lost.b_token == lost.a_token  # the fencing counter was lost with the grant
    # Two holders, one number: FencedStore refuses an equal token from another writer (its
    # one rule), so with B writing first A's stale write is refused; had A written first,
    # B's would have been. Only a counter that never goes back tells them apart.
    assert not lost.stale_write_accepted


def test_kill_primary_refuses_a_bad_index_before_killing() -> None:
    cluster = LocalCluster(masters=3)  # not started: nothing must be touched
    with pytest.raises(ValueError, match=r"index must be between 0 and 2, got 3"):
        failover.kill_primary(cluster, 3)
    with pytest.raises(TypeError, match="index must be an int"):
        failover.kill_primary(cluster, "0")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"wait_replicas": -1}, "wait_replicas must be between 0 and"),
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
