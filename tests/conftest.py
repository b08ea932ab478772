"""Shared fixtures: one real server per test session, one namespace per test.

``redis_client`` comes from ``labkit.connect()``, so the suite runs against whatever a
learner would get: ``REDIS_URL`` when set (then only namespaced keys are touched), else a
private server. Tests that need server settings start their own ``RedisServer``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import redis

import labkit
from labkit.keys import Namespace


@pytest.fixture(scope="session")
def redis_client() -> Iterator[redis.Redis]:
    r = labkit.connect()
    yield r
    r.close()


@pytest.fixture
def ns(redis_client: redis.Redis, request: pytest.FixtureRequest) -> Iterator[Namespace]:
    """A namespace named after the test; its keys are deleted when the test ends."""
    name = "test-" + re.sub(r"[^A-Za-z0-9._-]", "-", request.node.name)[:90]
    space = labkit.namespace(redis_client, name)
    space.cleanup()
    yield space
    space.cleanup()


@pytest.fixture
def r(redis_client: redis.Redis, ns: Namespace) -> redis.Redis:
    """The session's client, for a test that also asks for ``ns``."""
    return redis_client
