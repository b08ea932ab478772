"""labkit.server.LocalCluster and connect(cluster=True): a real cluster, and hash tags at work."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import redis
from redis.cluster import RedisCluster

import labkit
from labkit.server import LocalCluster, ServerNotFoundError, is_cluster

UNTAGGED_SCRIPT = "return redis.call('MGET', KEYS[1], KEYS[2])"


def node_clients(rc: RedisCluster) -> list[redis.Redis]:
    return [redis.Redis(host=n.host, port=n.port, decode_responses=True) for n in rc.get_nodes()]


def test_cluster_covers_every_slot(cluster_client: RedisCluster) -> None:
    info = cluster_client.cluster_info()
    assert info["cluster_state"] == "ok"
    assert int(info["cluster_slots_assigned"]) == 16384
    assert int(info["cluster_known_nodes"]) == 3
    assert is_cluster(cluster_client)
    assert labkit.server_info(cluster_client).owned


def test_untagged_multi_key_script_fails_with_crossslot(cluster_client: RedisCluster) -> None:
    """Without a hash tag the two keys land in different slots and the server refuses."""
    a, b = "lab:crossslot:a", "lab:crossslot:b"
    assert cluster_client.keyslot(a) != cluster_client.keyslot(b)
    # The cluster client refuses before sending ...
    with pytest.raises(redis.exceptions.RedisClusterException, match="same key slot"):
        cluster_client.eval(UNTAGGED_SCRIPT, 2, a, b)
    # ... and a node asked directly answers CROSSSLOT (or MOVED when it owns neither slot).
    errors = []
    for node in node_clients(cluster_client):
        with pytest.raises(redis.exceptions.ResponseError) as excinfo:
            node.eval(UNTAGGED_SCRIPT, 2, a, b)
        errors.append(str(excinfo.value))
    assert any("CROSSSLOT" in e or "same slot" in e for e in errors), errors


def test_tagged_multi_key_script_runs(cluster_client: RedisCluster) -> None:
    a, b = "lab:crossslot:{t}a", "lab:crossslot:{t}b"
    assert cluster_client.keyslot(a) == cluster_client.keyslot(b)
    cluster_client.set(a, 1)
    try:
        assert cluster_client.eval(UNTAGGED_SCRIPT, 2, a, b) == ["1", None]
    finally:
        cluster_client.delete(a)


def test_cluster_with_replicas_links_each_replica() -> None:
    with LocalCluster(masters=1, replicas=1, node_timeout_ms=1000) as cluster:
        primary, replica = (node.client() for node in cluster.nodes)
        assert primary.info("replication")["role"] == "master"
        assert replica.info("replication")["master_link_status"] == "up"
        rc = cluster.client()
        rc.set("k", "v")
        assert primary.wait(1, 2000) == 1
        workdirs = [Path(node.workdir or "") for node in cluster.nodes]
    assert not any(path.exists() for path in workdirs)
    assert not cluster.running


def test_connect_cluster_via_environment(
    monkeypatch: pytest.MonkeyPatch, cluster_client: Any
) -> None:
    node = cluster_client.get_default_node()
    monkeypatch.delenv("LABKIT_SERVER", raising=False)
    monkeypatch.setenv("REDIS_URL", f"redis://{node.host}:{node.port}")
    monkeypatch.setenv("LABKIT_CLUSTER", "1")
    rc = labkit.connect()
    assert is_cluster(rc)
    assert rc.ping()


def test_cluster_url_that_is_not_a_cluster_is_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    with labkit.RedisServer() as plain:
        monkeypatch.delenv("LABKIT_SERVER", raising=False)
        monkeypatch.setenv("REDIS_URL", plain.url)
        with pytest.raises(ServerNotFoundError, match="did not answer as a cluster"):
            labkit.connect(cluster=True)


def test_bad_labkit_cluster_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABKIT_CLUSTER", "maybe")
    with pytest.raises(ServerNotFoundError, match="LABKIT_CLUSTER='maybe' is not 1 or 0"):
        labkit.connect()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"masters": 0}, "masters must be an int >= 1"),
        ({"replicas": -1}, "replicas must be an int >= 0"),
        ({"node_timeout_ms": 0}, "node_timeout_ms must be > 0"),
    ],
)
def test_bad_cluster_shape(kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LocalCluster(**kwargs)
