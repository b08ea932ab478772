"""Session experiments (notebook 02): the article's store and labkit's on the same workloads.

Every race here is forced (threads wait at a barrier between their read and their write), so
the counts are the same on every run and on a loaded machine; ``cart_race`` is the one
unforced race, run for the chart. ``defect_table`` measures S1..S6 of
``labkit.naive.RedisSession`` beside ``labkit.sessions.SessionStore``.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pandas as pd

from labkit import naive
from labkit.client import Client
from labkit.measure import counting_client
from labkit.sessions import SessionStore
from labkit.workloads import VirtualClock


def run_threads(n: int, work: Callable[[int], object], timeout: float = 30.0) -> None:
    """Run ``work(i)`` for i in range(n), each in its own thread, and wait for all of them."""
    pool = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(n)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(timeout)
    if any(thread.is_alive() for thread in pool):
        raise TimeoutError(f"{n} threads did not finish within {timeout} s")


class AfterGet:
    """A client wrapper that calls ``after()`` each time a GET returns (to force a race).

    Every other attribute is the wrapped client's, so ``naive.RedisSession`` takes it as is.
    """

    def __init__(self, r: Client, after: Callable[[], object]) -> None:
        self._r = r
        self._after = after

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._r, name)
        if name != "get":
            return attr

        def get(*args: Any, **kwargs: Any) -> Any:
            reply = attr(*args, **kwargs)
            self._after()
            return reply

        return get


# -- S1: concurrent updates of different fields ------------------------------------------


def s1_different_fields(r: Client, prefix: str, store: SessionStore, n: int = 8) -> tuple[int, int]:
    """Updates lost when ``n`` requests each set a field of their own at the same time.

    The naive requests all finish their GET before any writes back (a barrier after the GET).
    Returns (naive lost, labkit lost), each out of ``n``.
    """
    plain = naive.RedisSession(r, prefix=prefix)
    sid = plain.create_session("alice")
    barrier = threading.Barrier(n, timeout=20)
    gated = naive.RedisSession(AfterGet(r, barrier.wait), prefix=prefix)
    run_threads(n, lambda i: gated.update_session(sid, {f"field{i}": i}))
    blob = plain.get_session(sid) or {}
    naive_lost = sum(f"field{i}" not in blob for i in range(n))

    labkit_sid = store.create_session("alice")
    start = threading.Barrier(n, timeout=20)

    def update(i: int) -> None:
        start.wait()
        store.update_session(labkit_sid, **{f"field{i}": i})

    run_threads(n, update)
    session = store.get_session(labkit_sid)
    kept = session.data if session else {}
    plain.destroy_session(sid)
    store.destroy_session(labkit_sid)
    return naive_lost, sum(f"field{i}" not in kept for i in range(n))


# -- the cart: concurrent appends to one field -------------------------------------------


def cart_adders(r: Client, prefix: str, store: SessionStore) -> dict[str, tuple[Any, Any, Any]]:
    """Three ways to add an item to a session's cart: name -> (sid, read, write).

    ``read()`` is what a request does before deciding its write (None when the write needs
    no read); ``write(snapshot, item)`` writes. ``cart(sid)`` is recovered by ``cart_of``.
    """
    plain = naive.RedisSession(r, prefix=prefix)
    naive_sid = plain.create_session("alice")
    plain.update_session(naive_sid, {"cart": []})
    rmw_sid = store.create_session("alice", cart=[])
    append_sid = store.create_session("alice", cart=[])

    def naive_read() -> Any:
        return plain.get_session(naive_sid)

    def naive_write(blob: Any, item: int) -> None:  # the Flask /cart route's shape
        plain.update_session(naive_sid, {"cart": [*blob["cart"], item]})

    def hash_read() -> Any:
        return store.get_session(rmw_sid)

    def hash_write(session: Any, item: int) -> None:
        store.update_session(rmw_sid, cart=[*session.data["cart"], item])

    return {
        "naive (JSON blob)": (naive_sid, naive_read, naive_write),
        "labkit Hash, read then update_session": (rmw_sid, hash_read, hash_write),
        "labkit append_session (Lua)": (
            append_sid,
            lambda: None,
            lambda _, item: store.append_session(append_sid, "cart", item),
        ),
    }


def cart_of(r: Client, prefix: str, store: SessionStore, name: str, sid: str) -> list[Any]:
    """The cart stored under ``sid`` by the adder called ``name``."""
    if name.startswith("naive"):
        blob = naive.RedisSession(r, prefix=prefix).get_session(sid) or {}
        return list(blob.get("cart", []))
    session = store.get_session(sid)
    return list(session.data.get("cart", [])) if session else []


def cart_forced(r: Client, prefix: str, store: SessionStore, n: int = 8) -> dict[str, int]:
    """Items lost when ``n`` requests add one item each, all reading before any writes."""
    lost = {}
    for name, (sid, read, write) in cart_adders(r, prefix, store).items():
        barrier = threading.Barrier(n, timeout=20)

        def add(i: int, read: Any = read, write: Any = write, barrier: Any = barrier) -> None:
            snapshot = read()
            barrier.wait()
            write(snapshot, i)

        run_threads(n, add)
        lost[name] = n - len(cart_of(r, prefix, store, name, sid))
    return lost


def cart_race(
    r: Client, prefix: str, store: SessionStore, threads: int, per_thread: int = 25
) -> dict[str, int]:
    """Items lost when ``threads`` requests each add ``per_thread`` items, unforced."""
    lost = {}
    for name, (sid, read, write) in cart_adders(r, prefix, store).items():
        start = threading.Barrier(threads, timeout=20)

        def work(t: int, read: Any = read, write: Any = write, start: Any = start) -> None:
            start.wait()
            for k in range(per_thread):
                write(read(), t * per_thread + k)

        run_threads(threads, work)
        lost[name] = threads * per_thread - len(cart_of(r, prefix, store, name, sid))
    return lost


# -- S2: an update racing a logout -------------------------------------------------------


def s2_resurrections(
    r: Client, prefix: str, store: SessionStore, trials: int = 20
) -> tuple[int, int]:
    """Sessions alive after a logout that raced an update, out of ``trials``.

    Naive: the update's GET returns, then the logout (DEL) runs, then the update writes the
    blob back. labkit, each trial twice: the same order forced (logout, then the update's
    script), and the two started together from a barrier; a trial counts if either left the
    session alive. Returns (naive, labkit).
    """
    plain = naive.RedisSession(r, prefix=prefix)
    naive_alive = 0
    for _ in range(trials):
        sid = plain.create_session("alice")
        read_done, go = threading.Event(), threading.Event()

        def pause(read_done: Any = read_done, go: Any = go) -> None:
            read_done.set()
            go.wait(20)

        gated = naive.RedisSession(AfterGet(r, pause), prefix=prefix)
        updater = threading.Thread(target=gated.update_session, args=(sid, {"cart": [3]}))
        updater.start()
        read_done.wait(20)
        plain.destroy_session(sid)  # the user logs out
        go.set()
        updater.join(20)
        if plain.get_session(sid) is not None:
            naive_alive += 1
            plain.destroy_session(sid)
    labkit_alive = 0
    for _ in range(trials):
        # The naive order, forced: the update request has begun (it has nothing to read
        # first), the logout runs, then the update's script runs.
        sid = store.create_session("alice")
        store.destroy_session(sid)
        store.update_session(sid, cart=[3])
        resurrected = store.get_session(sid) is not None
        # And left to the scheduler: both start together from a barrier.
        raced = store.create_session("alice")
        start = threading.Barrier(2, timeout=20)

        def race(i: int, sid: str = raced, start: Any = start) -> None:
            start.wait()
            if i == 0:
                store.update_session(sid, cart=[3])
            else:
                store.destroy_session(sid)

        run_threads(2, race)
        resurrected |= store.get_session(raced) is not None
        if resurrected:
            labkit_alive += 1
        store.destroy_session(sid)
        store.destroy_session(raced)
    return naive_alive, labkit_alive


# -- S3: activity keeps a session alive forever ------------------------------------------


def s3_workday(r: Client, prefix: str, hours: int = 10, every_min: int = 10) -> dict[str, Any]:
    """A request every ``every_min`` minutes for ``hours`` hours, 30 min idle / 8 h absolute.

    labkit runs on a ``VirtualClock``. The naive store reads no clock (it never looks at its
    ``created_at``) and its key TTL (1 h) is longer than the gap between requests, so calling
    ``refresh_session`` once per request, back to back, is what those hours would do to it.
    Returns requests served, and those served past the 8-hour mark, for each.
    """
    requests = hours * 60 // every_min
    clock = VirtualClock(1_000_000)
    store = SessionStore(r, idle_ttl=30 * 60, absolute_ttl=8 * 3600, prefix=prefix, clock=clock)
    sid = store.create_session("dana")
    plain = naive.RedisSession(r, ttl=3600, prefix=prefix)
    naive_sid = plain.create_session("dana")
    served: dict[str, list[int]] = {"naive": [], "labkit": []}
    for minute in range(every_min, requests * every_min + 1, every_min):
        clock.advance(every_min * 60)
        if plain.refresh_session(naive_sid):
            served["naive"].append(minute)
        if store.refresh_session(sid):
            served["labkit"].append(minute)
    plain.destroy_session(naive_sid)
    store.destroy_session(sid)
    late = {k: sum(m > 8 * 60 for m in v) for k, v in served.items()}
    return {
        "requests": requests,
        "served": {k: len(v) for k, v in served.items()},
        "served after 8 h": late,
        "last served (h)": {k: (v[-1] / 60 if v else 0.0) for k, v in served.items()},
    }


# -- S4: session fixation ----------------------------------------------------------------


def s4_fixation(r: Client, prefix: str, store: SessionStore, trials: int = 20) -> tuple[int, int]:
    """Planted ids that are logged in as the victim after the victim logs in with them.

    Naive: login writes the user into the same session (the article has no other tool).
    labkit: login changes the user, so it starts a new session for the user and destroys the
    planted one (``rotate_session`` keeps the user: it is for a privilege change by the same
    user). Returns (naive, labkit), each out of ``trials``.
    """
    plain = naive.RedisSession(r, prefix=prefix)
    naive_hijacked = labkit_hijacked = 0
    for _ in range(trials):
        planted = plain.create_session(None)  # the attacker's anonymous id
        plain.update_session(planted, {"user_id": "alice", "role": "admin"})
        seen = plain.get_session(planted)
        naive_hijacked += bool(seen and seen.get("role") == "admin")
        plain.destroy_session(planted)

        planted = store.create_session("visitor")
        store.destroy_session(planted)
        victim = store.create_session("alice", role="admin")
        seen_labkit = store.get_session(planted)
        labkit_hijacked += bool(seen_labkit and seen_labkit.data.get("role") == "admin")
        store.destroy_session(victim)
    return naive_hijacked, labkit_hijacked


# -- S5: log out everywhere --------------------------------------------------------------


def s5_logout_everywhere(
    r: Client, prefix: str, store_prefix: str, others: int = 97, mine: int = 3
) -> dict[str, tuple[int, int]]:
    """Round trips to end all of alice's sessions among ``others + mine``, and how many ended.

    The naive store has no per-user index: SCAN every session key, GET each to read its
    user, DEL alice's. labkit: ``destroy_user_sessions``. Returns name -> (trips, ended).
    """
    counted, counter = counting_client(r)
    try:
        plain = naive.RedisSession(counted, prefix=prefix)
        store = SessionStore(counted, prefix=store_prefix)
        for _ in range(mine):
            plain.create_session("alice")
            store.create_session("alice")
        for i in range(others):
            plain.create_session(f"user{i}")
            store.create_session(f"user{i}")
        store.destroy_user_sessions("nobody")  # loads the script: not part of the count
        counter.reset()
        ended = 0
        for key in counted.scan_iter(match=f"{prefix}session:*", count=100):
            blob = counted.get(key)
            if blob and json.loads(blob)["user_id"] == "alice":
                ended += counted.delete(key)
        result = {"naive": (counter.count, ended)}
        counter.reset()
        ended = store.destroy_user_sessions("alice")
        result["labkit"] = (counter.count, ended)
        for i in range(others):
            store.destroy_user_sessions(f"user{i}")
        for key in counted.scan_iter(match=f"{prefix}session:*", count=100):
            counted.delete(key)
        return result
    finally:
        counted.close()


# -- S6: a String, not a Hash ------------------------------------------------------------


def s6_bytes_per_update(server_client: Client, cart_items: int = 50) -> dict[str, Any]:
    """TYPE of the session key, and bytes the server received for a one-field change.

    ``server_client`` must be on a private server nobody else uses: the bytes come from its
    ``INFO stats`` ``total_net_input_bytes`` before and after (less the INFO itself). The
    session holds a cart of ``cart_items`` items and a theme; the change sets the theme.
    """
    cart = [{"sku": f"sku-{i:04d}", "qty": 1} for i in range(cart_items)]
    plain = naive.RedisSession(server_client, prefix="s6:")
    store = SessionStore(server_client, prefix="s6:")
    naive_sid = plain.create_session("alice", {"theme": "dark"})
    plain.update_session(naive_sid, {"cart": cart})
    sid = store.create_session("alice", theme="dark", cart=cart)
    store.update_session(sid, theme="dark")  # the script is cached on the server from here

    def received(call: Callable[[], object]) -> int:
        def net_in() -> int:
            return int(server_client.info("stats")["total_net_input_bytes"])

        before = net_in()
        call()
        after = net_in()
        baseline = net_in()
        return (after - before) - (baseline - after)  # less one INFO request

    result = {
        "type": {
            "naive": server_client.type(f"s6:session:{naive_sid}"),
            "labkit": server_client.type(store.keys.session_key(sid) or ""),
        },
        "bytes received": {
            "naive": received(lambda: plain.update_session(naive_sid, {"theme": "light"})),
            "labkit": received(lambda: store.update_session(sid, theme="light")),
        },
    }
    plain.destroy_session(naive_sid)
    store.destroy_session(sid)
    return result


# -- ids: length and source --------------------------------------------------------------


@contextmanager
def urandom_bytes() -> Iterator[list[int]]:
    """Count the bytes drawn from the OS CSPRNG (``os.urandom``, ``secrets``) while inside."""
    drawn = [0]
    real_os, real_random = os.urandom, random._urandom  # type: ignore[attr-defined]

    def counted(n: int) -> bytes:
        drawn[0] += n
        return real_os(n)

    os.urandom = counted
    random._urandom = counted  # type: ignore[attr-defined]  # what secrets draws from
    try:
        yield drawn
    finally:
        os.urandom = real_os
        random._urandom = real_random  # type: ignore[attr-defined]


def id_randomness(make_id: Callable[[], bytes], n: int = 300) -> dict[str, float]:
    """Estimate the random bits behind ``make_id()`` (the id's raw bytes) from ``n`` ids.

    Two measured upper bounds on the id's entropy, of which the smaller is reported: bits
    drawn from the OS CSPRNG per id (a PRNG such as ``random`` or a clock draws none) and bit
    positions that vary across the ``n`` ids (a fixed position carries no entropy).
    """
    with urandom_bytes() as drawn:
        ids = [make_id() for _ in range(n)]
    width = max(len(b) for b in ids) * 8
    values = [int.from_bytes(b, "big") for b in ids]
    varying = 0
    for bit in range(width):
        seen = {(v >> bit) & 1 for v in values}
        varying += len(seen) == 2
    csprng_bits = drawn[0] * 8 / n
    return {
        "id bytes": width / 8,
        "CSPRNG bits drawn per id": csprng_bits,
        "bit positions that vary": varying,
        "CSPRNG bits per id (at most)": min(csprng_bits, varying),
    }


def id_designs(r: Client, prefix: str, store: SessionStore) -> dict[str, Callable[[], bytes]]:
    """name -> a function creating one id and returning its raw bytes (sessions are kept)."""
    import base64

    plain = naive.RedisSession(r, prefix=prefix)

    def labkit_id() -> bytes:
        token = store.create_session("ids").split(".", 1)[1]
        return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))

    return {
        "labkit (secrets.token_urlsafe(32))": labkit_id,
        "naive (uuid4)": lambda: uuid.UUID(plain.create_session("ids")).bytes,
        "control: time-based uuid1": lambda: uuid.uuid1().bytes,
        "control: random.getrandbits(128)": lambda: random.getrandbits(128).to_bytes(16, "big"),
    }


# -- idle and absolute timeouts, in real time --------------------------------------------


def timeline(
    r: Client, prefix: str, idle: float, absolute: float, span: float, tick: float = 0.1
) -> pd.DataFrame:
    """Four sessions watched every ``tick`` s for ``span`` s: labkit's and the naive store's
    (TTL ``idle``, whole seconds), each used every tick and never used.

    Times are seconds since the watch began. Each row carries ``t before`` and ``t after``
    around its check, and ``created before`` / ``created after`` around the session's
    creation, so ``lifetimes`` can bracket each session's life however late a loaded
    machine runs the ticks.
    """
    store = SessionStore(r, idle_ttl=idle, absolute_ttl=absolute, prefix=prefix)
    plain = naive.RedisSession(r, ttl=round(idle), prefix=prefix)
    t0 = time.monotonic()

    def timed(create: Callable[[], str]) -> tuple[str, float, float]:
        before = time.monotonic() - t0
        sid = create()
        return sid, before, time.monotonic() - t0

    busy, quiet = (
        timed(lambda: store.create_session("bea")),
        timed(lambda: store.create_session("quinn")),
    )
    naive_busy = timed(lambda: plain.create_session("nina"))
    naive_quiet = timed(lambda: plain.create_session("nico"))
    checks = {
        "labkit, used every tick": (
            busy, lambda: store.refresh_session(busy[0]), store.keys.session_key(busy[0])),
        "labkit, never used": (
            quiet, lambda: r.exists(store.keys.session_key(quiet[0]) or "") == 1,
            store.keys.session_key(quiet[0])),
        "naive, used every tick": (
            naive_busy, lambda: plain.refresh_session(naive_busy[0]),
            f"{prefix}session:{naive_busy[0]}"),
        "naive, never used": (
            naive_quiet, lambda: r.exists(f"{prefix}session:{naive_quiet[0]}") == 1,
            f"{prefix}session:{naive_quiet[0]}"),
    }  # fmt: skip
    rows = []
    while time.monotonic() - t0 < span:
        for name, ((_, c_before, c_after), alive, key) in checks.items():
            before = time.monotonic() - t0
            ok = bool(alive())
            pttl = r.pttl(key or "")
            rows.append({"session": name, "t before": before, "t after": time.monotonic() - t0,
                         "alive": ok, "PTTL (ms)": int(pttl),
                         "created before": c_before, "created after": c_after})  # fmt: skip
        time.sleep(tick)
    plain.destroy_session(naive_busy[0])
    plain.destroy_session(naive_quiet[0])
    store.destroy_user_sessions("bea")
    store.destroy_user_sessions("quinn")
    return pd.DataFrame(rows)


def lifetimes(frame: pd.DataFrame) -> pd.DataFrame:
    """Per session, in seconds since its creation: its life was longer than "last seen alive"
    and no longer than "first seen gone" (inf when it was never seen gone).

    A check that saw it alive began before the end; one that saw it gone ended after it; the
    creation happened between "created before" and "created after". "resolution (s)" is the
    widest such bracket the checks could give: the longest span from the start of one check to
    the end of the next, plus the creation's own bracket. A session whose life was exactly T
    has "last seen alive" >= T - resolution and "first seen gone" <= T + resolution.
    """
    out = {}
    for name, part in frame.groupby("session"):
        alive, gone = part[part.alive], part[~part.alive]
        c_before, c_after = part["created before"].iloc[0], part["created after"].iloc[0]
        out[name] = {
            "last seen alive (s)": float(alive["t before"].max() - c_after) if len(alive) else 0.0,
            "first seen gone (s)": (
                float(gone["t after"].min() - c_before) if len(gone) else float("inf")
            ),
            "resolution (s)": float(
                (part["t after"].shift(-1) - part["t before"]).max() + (c_after - c_before)
            ),
        }
    return pd.DataFrame(out).T


# -- memory per session ------------------------------------------------------------------


def memory_per_session(m: Client, sizes: tuple[int, ...], prefix: str = "mem:") -> pd.DataFrame:
    """``MEMORY USAGE ... SAMPLES 0`` of sessions of n short fields, for each n in ``sizes``.

    ``m`` must be a private server (the thresholds are its settings). Two encodings of the same
    plain strings, a JSON string and a Hash, each with short values only and with one value of
    100 bytes; and the two stores holding the same short values: the article's
    ``RedisSession`` (one JSON blob with its user and created-at) and labkit's ``SessionStore``
    (each value as JSON text in its own field, plus ``_uid``, ``_created`` and ``_seen``).
    One row per (fields, variant) with its bytes and encoding.
    """
    plain = naive.RedisSession(m, prefix=prefix)
    store = SessionStore(m, prefix=prefix)
    json_key, hash_key = f"{prefix}json", f"{prefix}hash"
    rows = []

    def row(n: int, kind: str, values: str, key: str) -> None:
        rows.append({"fields": n, "variant": f"{kind}, {values}", "kind": kind, "values": values,
                     "bytes": m.memory_usage(key, samples=0),
                     "encoding": m.object("encoding", key)})  # fmt: skip

    for n in sizes:
        short: dict[Any, Any] = {f"field{i:04d}": f"value{i:04d}" for i in range(n)}
        for data, values in (
            (short, "short values"),
            ({**short, "field0000": "x" * 100}, "one 100-byte value"),
        ):
            m.set(json_key, json.dumps(data))
            m.delete(hash_key)
            m.hset(hash_key, mapping=data)
            row(n, "JSON string", values, json_key)
            row(n, "Hash", values, hash_key)
        naive_sid = plain.create_session("alice", short)
        row(n, "naive RedisSession", "short values", f"{prefix}session:{naive_sid}")
        sid = store.create_session("alice", **short)
        row(n, "labkit SessionStore", "short values", store.keys.session_key(sid) or "")
        plain.destroy_session(naive_sid)
        store.destroy_session(sid)
    m.delete(json_key, hash_key)
    return pd.DataFrame(rows)


# -- Flask-Session, driven by Flask's test client ----------------------------------------


def flask_walkthrough(
    app: Any, r: Client, blob_client: Client, trips: Any, key_prefix: str
) -> tuple[pd.DataFrame, str, tuple[int, Any]]:
    """Log in, read, add to the cart, forge the cookie's signature, read, log out.

    ``app`` is a Flask app with Flask-Session on ``blob_client`` (counted by ``trips``) and
    keys under ``key_prefix``; ``r`` reads those keys (TYPE, TTL). Returns one row per request
    (status, reply, round trips, session keys, their type and TTL), the signed cookie, and
    the session's (MEMORY USAGE, stored value) after login.
    """
    client = app.test_client()
    rows = []

    def session_keys() -> list[str]:
        return sorted(r.scan_iter(match=f"{key_prefix}*", count=1000))

    def visit(method: str, path: str, cookie: str | None = None) -> list[str]:
        if cookie is not None:
            client.set_cookie("session", cookie)
        trips.reset()
        reply = getattr(client, method)(path)
        count = trips.count
        keys = session_keys()
        rows.append({"request": f"{method.upper()} {path}", "status": reply.status_code,
                     "reply": reply.get_data(as_text=True).strip()[:40],
                     "Redis round trips": count, "session keys": len(keys),
                     "type": r.type(keys[0]) if keys else None,
                     "TTL (s)": r.ttl(keys[0]) if keys else None})  # fmt: skip
        return keys

    visit("post", "/login")
    cookie = client.get_cookie("session").value
    key = visit("get", "/me")[0]
    stored = (int(r.memory_usage(key, samples=0) or 0), blob_client.get(key))
    visit("post", "/cart")
    sid_part, signature = cookie.rsplit(".", 1)
    visit("get", "/me", cookie=f"{sid_part}.{'A' * len(signature)}")  # a forged signature
    visit("get", "/me", cookie=cookie)
    visit("post", "/logout")
    return pd.DataFrame(rows), cookie, stored


def round_trips_per_request(
    r: Client, naive_prefix: str, store_prefix: str
) -> dict[str, tuple[int, int]]:
    """Round trips of one read and of a one-value change: name -> (read, update).

    For the article's ``RedisSession`` and labkit's ``SessionStore`` (its scripts loaded
    first, so the count is the steady state).
    """
    counted, counter = counting_client(r)
    try:
        plain = naive.RedisSession(counted, prefix=naive_prefix)
        store = SessionStore(counted, prefix=store_prefix)
        naive_sid = plain.create_session("alice", {"cart": [42]})
        sid = store.create_session("alice", cart=[42])
        store.get_session(sid)
        store.update_session(sid, cart=[42])  # loads the scripts: not part of the count
        out = {}
        for name, read, update in (
            ("naive", lambda: plain.get_session(naive_sid),
             lambda: plain.update_session(naive_sid, {"cart": [42, 43]})),
            ("labkit", lambda: store.get_session(sid), lambda: store.update_session(sid, cart=[42, 43])),
        ):  # fmt: skip
            counter.reset()
            read()
            reads = counter.count
            counter.reset()
            update()
            out[name] = (reads, counter.count)
        plain.destroy_session(naive_sid)
        store.destroy_session(sid)
        return out
    finally:
        counted.close()


# -- an ACL user confined to the session prefix ------------------------------------------


def acl_attempts(webapp: Client, store: SessionStore) -> pd.DataFrame:
    """What a client logged in as the confined ACL user may do: one row per attempt.

    ``store`` runs on ``webapp``. Session calls first, then commands on another key.
    """
    import redis

    def attempt(what: str, call: Callable[[], object]) -> dict[str, Any]:
        try:
            return {"as user webapp": what, "allowed": True, "reply": str(call())[:60]}
        except redis.exceptions.NoPermissionError as exc:
            return {"as user webapp": what, "allowed": False, "reply": str(exc)[:60]}

    new_sid = store.create_session("bob", theme="light")
    session = store.get_session(new_sid)
    return pd.DataFrame([
        attempt("create_session('bob')", lambda: new_sid),
        attempt("get_session(bob's id)", lambda: session.data if session else None),
        attempt("list_user_sessions('alice')", lambda: len(store.list_user_sessions("alice"))),
        attempt("GET billing:card:alice", lambda: webapp.get("billing:card:alice")),
        attempt("SET billing:card:alice", lambda: webapp.set("billing:card:alice", "stolen")),
        attempt("FLUSHALL", lambda: webapp.flushall()),
    ])  # fmt: skip
