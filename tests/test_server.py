"""labkit.server: resolution order, clear errors, private servers that leave nothing behind."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import redis
from helpers import wait_for

import labkit
from labkit.server import (
    PORT_RANGE,
    NotPrivateServerError,
    RedisServer,
    ServerNotFoundError,
    docker_available,
    find_server_binary,
    probe_client,
    redis_config_args,
)

HAS_BINARY = find_server_binary()[0] == "binary"


def run_python(
    code: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter, as a learner's kernel would."""
    full_env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "LABKIT_SERVER")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def port_is_closed(port: int) -> bool:
    try:
        probe_client("127.0.0.1", port).ping()
    except redis.exceptions.ConnectionError:
        return True
    return False




def pid_alive(pid: int) -> bool:
    """True for a live process; a zombie waiting to be reaped counts as gone."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state != "Z"


def test_connect_returns_a_decoding_client(redis_client: redis.Redis) -> None:
    redis_client.set("lab:test-decoding:k", "v", px=5000)
    assert redis_client.get("lab:test-decoding:k") == "v"
    redis_client.delete("lab:test-decoding:k")


def test_server_info_reports_product_version_and_owner(redis_client: redis.Redis) -> None:
    info = labkit.server_info(redis_client)
    assert info.product in ("Redis", "Valkey")
    assert info.version[0].isdigit()
    assert info.owned == (info.backend != "url")
    assert set(info.as_dict()) == {"product", "version", "backend", "owned", "address"}


def test_private_server_binds_loopback_and_persists_nothing() -> None:
    with RedisServer() as server:
        r = server.client()
        config = r.config_get("*")
        assert config["bind"].split()[0] == "127.0.0.1"
        assert config["save"] == ""
        assert config["appendonly"] == "no"
        assert PORT_RANGE[0] <= server.port <= PORT_RANGE[1]
        assert server.port + 10000 <= 65535
        assert labkit.is_private(r)


def test_private_server_takes_settings() -> None:
    with RedisServer(maxmemory="3mb", maxmemory_policy="allkeys-lfu") as server:
        config = server.client().config_get("maxmemory*")
        assert int(config["maxmemory"]) == 3 * 1024 * 1024
        assert config["maxmemory-policy"] == "allkeys-lfu"


def test_config_args_translate_underscores_and_booleans() -> None:
    args = redis_config_args(
        {
            "maxmemory_policy": "allkeys-lru",
            "lazyfree_lazy_eviction": True,
            "client_output_buffer_limit": "pubsub 1mb 1mb 0",
            "skip": None,
        }
    )
    assert args == [
        "--maxmemory-policy",
        "allkeys-lru",
        "--lazyfree-lazy-eviction",
        "yes",
        "--client-output-buffer-limit",
        "pubsub",
        "1mb",
        "1mb",
        "0",
    ]


def test_stop_removes_process_and_directory() -> None:
    server = RedisServer().start()
    pid, workdir, port = server.pid, server.workdir, server.port
    assert pid and workdir and Path(workdir).is_dir()
    server.stop()
    server.stop()  # idempotent
    assert not pid_alive(pid)
    assert not Path(workdir).exists()
    assert port_is_closed(port)


def test_bad_setting_is_reported_with_the_servers_words() -> None:
    with pytest.raises(ServerNotFoundError, match="did not start"):
        RedisServer(maxmemory_policy="not-a-policy").start()


def test_server_is_gone_after_the_owner_is_killed_with_sigkill() -> None:
    code = """
        import os, labkit
        from labkit.server import _PRIVATE
        r = labkit.connect()
        server = next(iter(_PRIVATE.values()))
        print(server.port, server.pid, server.workdir, flush=True)
        os.kill(os.getpid(), 9)
    """
    result = run_python(code)
    assert result.returncode == -9, result.stderr
    port, pid, workdir = result.stdout.split()
    assert wait_for(lambda: not pid_alive(int(pid))), "server outlived its owner"
    assert wait_for(lambda: not Path(workdir).exists()), "temp dir left behind"
    assert port_is_closed(int(port))


def test_server_is_gone_after_a_normal_exit() -> None:
    result = run_python("""
        import labkit
        from labkit.server import _PRIVATE
        labkit.connect().ping()
        server = next(iter(_PRIVATE.values()))
        print(server.pid, server.workdir)
    """)
    pid, workdir = result.stdout.split()
    assert wait_for(lambda: not pid_alive(int(pid)))
    assert not Path(workdir).exists()


def test_unknown_labkit_server_value_is_one_clear_sentence() -> None:
    result = run_python("import labkit; labkit.connect()", env={"LABKIT_SERVER": "mongo"})
    assert result.returncode != 0
    assert "LABKIT_SERVER='mongo' is not one of url, binary, docker, embedded" in result.stderr


def test_unreachable_redis_url_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LABKIT_SERVER", raising=False)
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    with pytest.raises(
        ServerNotFoundError, match=r"REDIS_URL=redis://127.0.0.1:1/0 did not answer"
    ):
        labkit.connect()


def test_malformed_redis_url_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LABKIT_SERVER", raising=False)
    monkeypatch.setenv("REDIS_URL", "http://example")
    with pytest.raises(ServerNotFoundError, match="not a valid Redis URL"):
        labkit.connect()


def test_password_is_not_echoed_in_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LABKIT_SERVER", raising=False)
    monkeypatch.setenv("REDIS_URL", "redis://user:hunter2@127.0.0.1:1")
    with pytest.raises(ServerNotFoundError) as excinfo:
        labkit.connect()
    assert "hunter2" not in str(excinfo.value)


def test_forced_url_without_redis_url_says_what_to_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setenv("LABKIT_SERVER", "url")
    with pytest.raises(ServerNotFoundError, match="REDIS_URL is not set"):
        labkit.connect()


def test_docker_path_fails_fast_without_a_daemon(monkeypatch: pytest.MonkeyPatch) -> None:
    if docker_available():
        pytest.skip("a Docker daemon answers here")
    started = time.monotonic()
    monkeypatch.setenv("LABKIT_SERVER", "docker")
    with pytest.raises(ServerNotFoundError, match="no Docker daemon answered"):
        labkit.connect()
    assert time.monotonic() - started < 3


def test_default_order_falls_through_docker_to_embedded_without_a_binary(tmp_path: Path) -> None:
    # A PATH with no redis-server on it: the learner's fresh laptop.
    for tool in ("sh", "sleep", "rm"):
        (tmp_path / tool).symlink_to(shutil.which(tool))
    result = run_python(
        "import labkit; print(labkit.server_info(labkit.connect()).backend)",
        env={"PATH": f"{Path(sys.executable).parent}:{tmp_path}"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ("docker" if docker_available() else "embedded")


@pytest.mark.skipif(not HAS_BINARY, reason="no redis-server on PATH")
def test_default_order_prefers_the_binary_on_path() -> None:
    result = run_python("import labkit; print(labkit.server_info(labkit.connect()).backend)")
    assert result.stdout.strip() == "binary", result.stderr


@pytest.mark.parametrize("backend", ["embedded", "binary"])
def test_each_binary_backend_can_be_forced(backend: str) -> None:
    if backend == "binary" and not HAS_BINARY:
        pytest.skip("no redis-server on PATH")
    result = run_python(
        "import labkit; i = labkit.server_info(labkit.connect()); print(i.backend, i.product)",
        env={"LABKIT_SERVER": backend},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[0] == backend


def test_a_server_labkit_did_not_start_is_never_flushed() -> None:
    """Point REDIS_URL at a server holding someone else's keys: labkit refuses to flush it."""
    with RedisServer() as someone_elses:
        other = someone_elses.client()
        other.set("their:precious", "data")
        result = run_python(
            """
            import labkit
            r = labkit.connect()
            info = labkit.server_info(r)
            print(info.backend, info.owned)
            ns = labkit.namespace(r, "intruder")
            r.set(ns.key("mine"), 1)
            print(ns.cleanup())
            try:
                labkit.require_private(r, "FLUSHDB")
            except labkit.NotPrivateServerError as exc:
                print("refused:", exc)
            """,
            env={"REDIS_URL": someone_elses.url},
        )
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert lines[0] == "url False"
        assert lines[1] == "1"
        assert lines[2].startswith("refused: refusing to FLUSHDB")
        assert other.get("their:precious") == "data"
        assert other.dbsize() == 1


def test_require_private_accepts_our_own_server() -> None:
    with RedisServer() as server:
        labkit.require_private(server.client(), "FLUSHDB")


def test_require_private_error_type(redis_client: redis.Redis) -> None:
    assert issubclass(NotPrivateServerError, RuntimeError)


def test_server_output_never_blocks_the_server() -> None:
    """A server that logs more than a pipe holds (64 KiB) must keep answering.

    In real use the warnings come from dropped clients (notebook 03 drops a slow
    subscriber); DEBUG LOG writes the same kind of warning on every server version.
    """
    with RedisServer(enable_debug_command="local") as server:
        r = server.client()
        pipe = r.pipeline(transaction=False)
        for i in range(1000):
            pipe.execute_command("DEBUG", "LOG", f"filler line {i} " + "x" * 200)
        pipe.execute()
        assert r.ping()
        assert Path(server.workdir or "", "server.out").stat().st_size > 65536


def test_password_protected_private_server_starts() -> None:
    with RedisServer(requirepass="s3cret") as server:
        assert server.client().ping()
        with pytest.raises(redis.exceptions.AuthenticationError):
            redis.Redis(host=server.host, port=server.port, password="wrong").ping()


def test_a_server_that_never_answers_is_stopped_and_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "redis-server"
    fake.write_text(
        f"#!{sys.executable}\n"
        "import socket, sys, time\n"
        "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
        "s.bind(('127.0.0.1', int(sys.argv[sys.argv.index('--port') + 1]))); s.listen()\n"
        "conns = []\n"
        "while True: conns.append(s.accept())\n"
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    monkeypatch.setattr("labkit.server._START_TIMEOUT", 2.5)
    server = RedisServer(backend="binary")
    with pytest.raises(ServerNotFoundError, match="no answer on port"):
        server.start()
    assert server.pid is None and server.workdir is None


def test_explicit_url_wins_over_labkit_server(monkeypatch: pytest.MonkeyPatch) -> None:
    with RedisServer() as theirs:
        monkeypatch.setenv("LABKIT_SERVER", "embedded")
        r = labkit.connect(theirs.url)
        assert labkit.server.address(r) == (theirs.host, theirs.port)
        assert r.get("missing") is None  # decode_responses applies here too: no bytes


def test_explicit_bad_url_names_the_argument() -> None:
    with pytest.raises(ServerNotFoundError, match=r"^url=redis://127.0.0.1:1 did not answer"):
        labkit.connect("redis://127.0.0.1:1")
