"""The notebook 03 rig: the flaky proxy fails like a network, the defect rows count what they say."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from labkit.experiments import pubsub as rig
from labkit.keys import namespace


@pytest.fixture
def single(single_client: Any) -> Any:
    ns = namespace(single_client, "test-experiments-pubsub")
    yield single_client, ns.prefix
    ns.cleanup()


def proxied(r: Any, proxy: rig.FlakyProxy) -> redis.Redis:
    kwargs = {**r.connection_pool.connection_kwargs, "host": proxy.host, "port": proxy.port}
    return redis.Redis(connection_pool=redis.ConnectionPool(**kwargs))


def test_blackhole_keeps_the_subscriber_counted_while_nothing_arrives(single: Any) -> None:
    r, prefix = single
    channel = prefix + "proxy"
    kwargs = r.connection_pool.connection_kwargs
    with rig.FlakyProxy(kwargs["host"], kwargs["port"]) as proxy:
        client = proxied(r, proxy)
        sub = client.pubsub()
        sub.subscribe(channel)
        assert sub.get_message(timeout=5)["type"] == "subscribe"
        assert r.publish(channel, "before") == 1
        assert sub.get_message(timeout=5)["data"] == "before"
        proxy.blackhole()
        assert r.publish(channel, "lost") == 1  # the server still counts it
        assert rig.wait_for(lambda: proxy.discarded > 0, timeout=5)
        proxy.drop()
        # the server sees the close; the subscriber is gone from its count
        assert rig.wait_for(lambda: r.pubsub_numsub(channel)[0][1] == 0, timeout=5)
        # redis-py reconnects through the healed proxy and re-subscribes by itself
        seen = []

        def heard_after() -> bool:
            msg = sub.get_message(timeout=0.1)
            if msg is not None:
                seen.append(msg["data"])
            if r.pubsub_numsub(channel)[0][1] == 1:
                r.publish(channel, "after")
            return "after" in seen

        assert rig.wait_for(heard_after, timeout=10)
        assert "lost" not in seen  # thrown away by the network, counted by PUBLISH
        sub.close()
        client.close()


def test_silent_outage_loses_messages_publish_counted(single: Any) -> None:
    r, prefix = single
    rows = rig.run_outage(r, prefix, "blackhole", rate=200, duration=1.0, down_at=0.3, up_at=0.7)
    lost_counted = sum(1 for _, _, receivers, arrived in rows if receivers > 0 and not arrived)
    during = sum(1 for _, t, _, _ in rows if 0.3 <= t < 0.7)
    assert lost_counted >= 0.8 * during
    assert rows[-1][3]  # reconnected and re-subscribed: the last message arrived


def test_defect_rows_count_the_naive_and_labkit_deliveries(single: Any) -> None:
    r, prefix = single
    assert [rig.p1_star_taken_literally(r, prefix, n=5)[k] for k in ("naive", "labkit")] == [0, 5]
    assert [rig.p2_pattern_misses_names(r, prefix, n=5)[k] for k in ("naive", "labkit")] == [0, 5]
    rows = {row["defect"]: row for row in rig.p3_poison_kills_the_listener(r, prefix, n=3)}
    for poison in rig.POISONS:
        assert (rows[f"P3 ({poison})"]["naive"], rows[f"P3 ({poison})"]["labkit"]) == (0, 3)
    assert (rows["P3 (dead)"]["naive"], rows["P3 (dead)"]["labkit"]) == (3, 0)
    # the article's subscriber counts no failures: shown as such, not as a measured 0
    assert rows["P3 (silent)"]["naive"] == rig.NO_COUNTER
    # the dead listener's connection is closed: the app's later PUBLISHes reach nobody
    assert rows["P3 (void)"]["labkit"] == 0
    assert rows["P3 (void)"]["naive"] >= 2 * len(rig.POISONS)


def test_cluster_pattern_counts_only_publishes_routed_to_the_subscriber(cluster_client: Any) -> None:
    ns = namespace(cluster_client, "test-experiments-pubsub-cluster")
    try:
        naive_row, labkit_row = rig.cluster_pattern_counts(cluster_client, ns.prefix, n=20)
    finally:
        ns.cleanup()
    assert naive_row["delivered"] == labkit_row["delivered"] == 20
    assert labkit_row["PUBLISH returned (sum)"] == 20
    assert naive_row["PUBLISH returned (sum)"] < 20  # channels in other slots went elsewhere


def test_slow_subscriber_rejects_an_unknown_variant() -> None:
    with pytest.raises(ValueError, match="variant"):
        rig.slow_subscriber("fast")
