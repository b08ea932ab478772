"""labkit.keys: namespaces touch only their own keys."""

from __future__ import annotations

import pytest
import redis

import labkit
from labkit.checks import as_text
from labkit.checks import prefix as check_prefix
from labkit.keys import Namespace, escape_glob, scan_unlink


def test_key_is_built_under_the_prefix(ns: Namespace) -> None:
    assert ns.prefix == f"lab:{ns.name}:"
    assert ns.key("user", 42) == f"lab:{ns.name}:user:42"


def test_cleanup_deletes_only_the_namespace(r: redis.Redis, ns: Namespace) -> None:
    neighbour = labkit.namespace(r, ns.name + "-neighbour")
    for i in range(1200):
        r.set(ns.key(i), i)
    r.set(neighbour.key("keep"), 1)
    r.set(f"lab:{ns.name}", "the prefix without its colon")
    try:
        assert len(ns.keys()) == 1200
        assert ns.cleanup() == 1200
        assert ns.keys() == []
        assert r.get(neighbour.key("keep")) == "1"
        assert r.get(f"lab:{ns.name}") is not None
    finally:
        neighbour.cleanup()
        r.delete(f"lab:{ns.name}")


@pytest.mark.parametrize("bad", ["", "a*", "a?b", "x[1]", "{tag}", "has space", "a:b", "x" * 101])
def test_namespace_names_are_restricted(r: redis.Redis, bad: str) -> None:
    with pytest.raises(ValueError, match="name must be"):
        labkit.namespace(r, bad)


def test_namespace_name_must_be_a_string(r: redis.Redis) -> None:
    with pytest.raises(TypeError, match="name must be a str"):
        labkit.namespace(r, 5)  # type: ignore[arg-type]


def test_escape_glob_matches_only_itself(r: redis.Redis, ns: Namespace) -> None:
    tricky = ns.key("a*b?[c]\\d")
    r.set(tricky, 1)
    r.set(ns.key("aXXb?[c]\\d"), 1)
    r.set(ns.key("a*bZc\\d"), 1)
    assert list(r.scan_iter(match=escape_glob(tricky))) == [tricky]


def test_escape_glob_rejects_non_strings() -> None:
    with pytest.raises(TypeError, match="text must be a str"):
        escape_glob(b"bytes")  # type: ignore[arg-type]


def test_scan_unlink_validates_batch(r: redis.Redis) -> None:
    with pytest.raises(ValueError, match="batch must be >= 1"):
        scan_unlink(r, "lab:nothing:*", batch=0)


def test_as_text_decodes_replies_from_either_kind_of_client() -> None:
    assert as_text(b"caf\xc3\xa9") == "café"
    assert as_text("already text") == "already text"
    assert as_text(42) == "42"


@pytest.mark.parametrize(("prefix", "error"), [(5, TypeError), ("a{b", ValueError), ("}", ValueError)])
def test_check_prefix_refuses_non_strings_and_braces(prefix: object, error: type) -> None:
    with pytest.raises(error, match="prefix must"):
        check_prefix(prefix)


def test_check_prefix_accepts_a_plain_prefix() -> None:
    assert check_prefix("lab:05:") == "lab:05:"
    assert check_prefix("") == ""
