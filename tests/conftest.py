"""Shared fixtures: real servers for the whole session, one namespace per test.

``redis_client`` is parametrised: every test that uses it runs twice, once against
``labkit.connect()``'s server (``REDIS_URL`` when set, then only namespaced keys are touched;
else a private server) and once against a private three-primary ``LocalCluster``, so every
pattern is proven to keep its multi-key operations inside one hash slot.
Tests that need server settings start their own ``RedisServer``.

Under pytest-xdist (``make test``) each worker is its own process, so these session fixtures
give every worker its own private server and cluster.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

import labkit
from labkit.keys import Namespace
from labkit.server import LocalCluster


@pytest.fixture(scope="session")
def single_client() -> Iterator[Any]:
    r = labkit.connect(cluster=False)
    yield r
    r.close()


@pytest.fixture(scope="session")
def cluster_client() -> Iterator[Any]:
    with LocalCluster(masters=3) as cluster:
        rc = cluster.client()
        yield rc
        rc.close()


@pytest.fixture(scope="session", params=["single", "cluster"])
def redis_client(request: pytest.FixtureRequest) -> Any:
    return request.getfixturevalue(f"{request.param}_client")


@pytest.fixture
def ns(redis_client: Any, request: pytest.FixtureRequest) -> Iterator[Namespace]:
    """A namespace named after the test; its keys are deleted when the test ends."""
    name = "test-" + re.sub(r"[^A-Za-z0-9._-]", "-", request.node.name)[:90]
    space = labkit.namespace(redis_client, name)
    space.cleanup()
    yield space
    space.cleanup()


@pytest.fixture
def r(redis_client: Any, ns: Namespace) -> Any:
    """The client under test (single node or cluster), for a test that also uses ``ns``."""
    return redis_client
