"""Small helpers shared by the test modules (importable because pytest puts tests/ on sys.path)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import redis


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Poll ``condition`` until true or ``timeout`` seconds; the test asserts on the result."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def bytes_client(r: Any) -> Any:
    """A second client to the same server or cluster as ``r``, with decode_responses=False."""
    if hasattr(r, "get_default_node"):
        node = r.get_default_node()
        return redis.RedisCluster(host=node.host, port=node.port, decode_responses=False)
    kwargs = {**r.connection_pool.connection_kwargs, "decode_responses": False}
    return redis.Redis(connection_pool=redis.ConnectionPool(**kwargs))
