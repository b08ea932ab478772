"""labkit.experiments.sessions: the measuring logic the notebook's claims rest on."""

from __future__ import annotations

import os
import random
import secrets
import uuid

import pandas as pd

from labkit.client import Client
from labkit.experiments import sessions as xs
from labkit.keys import Namespace
from labkit.sessions import SessionStore


def test_id_randomness_tells_a_csprng_from_a_prng_a_clock_and_uuid4() -> None:
    csprng = xs.id_randomness(lambda: secrets.token_bytes(32), n=200)
    assert csprng["CSPRNG bits per id (at most)"] == 256
    assert (
        xs.id_randomness(lambda: uuid.uuid4().bytes, n=200)["CSPRNG bits per id (at most)"] == 122
    )
    prng = xs.id_randomness(lambda: random.getrandbits(128).to_bytes(16, "big"), n=200)
    assert prng["bit positions that vary"] == 128 and prng["CSPRNG bits per id (at most)"] == 0
    assert xs.id_randomness(lambda: uuid.uuid1().bytes, n=200)["CSPRNG bits per id (at most)"] == 0


def test_urandom_counting_restores_the_real_functions() -> None:
    real_os, real_random = os.urandom, random._urandom  # type: ignore[attr-defined]
    with xs.urandom_bytes() as drawn:
        secrets.token_bytes(5)
        os.urandom(3)
    assert drawn == [8]
    assert os.urandom is real_os and random._urandom is real_random  # type: ignore[attr-defined]


def test_lifetimes_bracket_each_end_by_the_checks_around_it() -> None:
    frame = pd.DataFrame(
        [
            {"session": "a", "t before": 0.25, "t after": 0.5, "alive": True},
            {"session": "a", "t before": 0.75, "t after": 1.0, "alive": True},
            {"session": "a", "t before": 1.5, "t after": 1.75, "alive": False},
            {"session": "b", "t before": 0.25, "t after": 0.5, "alive": True},
        ]
    ).assign(**{"created before": 0.0, "created after": 0.25})
    out = xs.lifetimes(frame)
    assert list(out.loc["a"])[:2] == [0.5, 1.75]
    assert out.loc["a", "resolution (s)"] == 1.25
    assert out.loc["b", "first seen gone (s)"] == float("inf")


def test_forced_races_count_what_each_design_loses(r: Client, ns: Namespace) -> None:
    store = SessionStore(r, prefix=ns.prefix_for("session"))
    assert xs.s1_different_fields(r, ns.prefix, store, n=4) == (3, 0)
    lost = xs.cart_forced(r, ns.prefix, store, n=4)
    assert list(lost.values()) == [3, 3, 0]
    assert xs.s2_resurrections(r, ns.prefix, store, trials=3) == (3, 0)
