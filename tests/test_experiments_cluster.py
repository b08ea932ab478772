"""labkit.experiments.cluster: the pattern tour, the spread over primaries, sharded pub/sub."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from labkit.experiments import cluster as experiments
from labkit.keys import Namespace, namespace
from labkit.server import LocalCluster


def _backend() -> str | None:
    forced = os.environ.get("LABKIT_SERVER", "").strip().lower()
    return forced if forced in ("binary", "embedded") else None


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    with LocalCluster(masters=3, replicas=1, node_timeout_ms=2000, backend=_backend()) as c:
        yield c


@pytest.fixture
def cns(cluster: LocalCluster) -> Iterator[Namespace]:
    rc = cluster.client()
    ns = namespace(rc, "test-experiments-cluster")
    ns.cleanup()
    yield ns
    ns.cleanup()
    rc.close()


def test_every_pattern_runs_on_a_cluster_with_its_keys_under_its_prefix(
    cluster: LocalCluster, cns: Namespace
) -> None:
    rc = cluster.client()
    try:
        tour = experiments.pattern_tour(rc, cns)
    finally:
        rc.close()
    assert list(tour["pattern"]) == list(experiments.PATTERNS)
    assert (tour["result"] == "ok").all(), tour[tour["result"] != "ok"]
    for name, keys in zip(tour["pattern"], tour["keys left (after the namespace prefix)"], strict=True):
        assert all(k.startswith(f"{name}:") for k in keys), (name, keys)


def test_tags_per_entity_spread_and_one_tag_piles_up(cluster: LocalCluster, cns: Namespace) -> None:
    rc = cluster.client()
    try:
        spread = experiments.spread_over_primaries(
            cluster, rc, cns.prefix_for("spread"),
            {"per user": lambda i: f"user:{i}", "one tag": lambda i: "shop"}, entities=600,
        )  # fmt: skip
        owner = int(rc.get_node_from_key("{shop}").port)
    finally:
        rc.close()
    share = spread.groupby("scheme")["share of keys"].max()
    assert share["per user"] < 0.5
    assert share["one tag"] == 1.0
    assert spread.groupby("scheme")["keys"].sum().tolist() == [600, 600]
    assert (spread["keys"] >= 0).all()
    # named as notebook 10 names primaries: by their index in cluster.primaries
    index = [n.port for n in cluster.primaries].index(owner)
    piled = spread[(spread["scheme"] == "one tag") & (spread["keys"] == 600)]
    assert piled["primary"].tolist() == [f"primary {index} (:{owner})"]
    assert cns.keys() == []  # the experiment removed what it wrote


def test_spread_refuses_a_scheme_name_with_braces(cluster: LocalCluster, cns: Namespace) -> None:
    with pytest.raises(ValueError, match="scheme"):
        experiments.spread_over_primaries(cluster, cluster.client(), cns.prefix, {"{x}": str})


def test_sharded_publish_stays_in_its_shard(cluster: LocalCluster, cns: Namespace) -> None:
    rc = cluster.client()
    try:
        cost = experiments.bus_messages(cluster, rc, cns.key("news"), messages=20)
    finally:
        rc.close()
    assert cost["PUBLISH"] == len(cluster.nodes) - 1  # every other node
    assert cost["SPUBLISH"] == 1  # the shard's one replica
