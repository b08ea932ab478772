"""Stream worker processes for notebook 04 and the tests: a handler that records what it saw,
the entry point of a worker process, a graceful stop on SIGTERM/SIGINT, and a CLI.

    proc = start_worker_process(url, queue, "worker-1", ns.key("seen"), min_idle_ms=300)
    ...
    proc.send_signal(signal.SIGTERM)   # finishes the current message, acks, prints its stats

The pattern itself (``StreamQueue``, ``Worker``) is ``labkit.streams``; this module only
runs it in processes and records what happened.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import redis

from labkit import checks
from labkit.client import Client
from labkit.streams import DEFAULT_MAX_DELIVERIES, Message, StreamQueue, Worker


def recording_handler(
    r: Client, seen_key: str, *, fail_field: str | None = None, work_ms: float = 0.0
) -> Callable[[Message], None]:
    """A handler for experiments and tests: counts every delivery of a message id in the
    hash ``seen_key`` (HINCRBY, one round trip), spends ``work_ms`` "working", then raises
    ``ValueError`` if the payload has a truthy ``fail_field`` (a poison message).

    Idempotent in effect: the set of ids in the hash is the same however often a message
    is delivered; the counts show how often that was."""
    checks.text("seen_key", seen_key)
    work_s = checks.number("work_ms", work_ms, low=0, high=checks.MAX_MS) / 1000
    if fail_field is not None:
        checks.text("fail_field", fail_field)

    def handle(message: Message) -> None:
        r.hincrby(seen_key, message.id, 1)
        if work_s:
            time.sleep(work_s)
        if fail_field is not None:
            data = message.data
            if isinstance(data, Mapping) and data.get(fail_field) not in (None, "", "0", 0):
                raise ValueError(f"poison message {message.id}")

    return handle


@contextmanager
def stop_on_signals(worker: Worker) -> Iterator[Worker]:
    """While inside, SIGTERM and SIGINT ask ``worker`` to stop (it finishes the current
    message, acks it and returns) instead of killing the process mid-handler. Only the
    main thread can install signal handlers; elsewhere this does nothing. The previous
    handlers are restored on exit."""
    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, lambda *_: worker.stop())
    try:
        yield worker
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_worker(
    url: str,
    stream: str,
    group: str,
    consumer: str,
    handler_factory: Callable[..., Callable[[Message], object]],
    handler_kwargs: Mapping[str, Any] | None = None,
    queue_kwargs: Mapping[str, Any] | None = None,
    worker_kwargs: Mapping[str, Any] | None = None,
) -> dict[str, int]:
    """Entry point for a worker *process* (multiprocessing ``spawn``/``forkserver``): connect
    to ``url``, build the handler with ``handler_factory(r, **handler_kwargs)`` (a
    module-level function, so it pickles), run a ``Worker`` until it stops (SIGTERM/SIGINT
    stop it gracefully), close the connection, return its stats."""
    r = redis.Redis.from_url(url, decode_responses=True)
    try:
        queue = StreamQueue(r, stream, group, **dict(queue_kwargs or {}))
        handler = handler_factory(r, **dict(handler_kwargs or {}))
        worker = Worker(queue, consumer, handler, **dict(worker_kwargs or {}))
        with stop_on_signals(worker):
            return worker.run().as_dict()
    finally:
        r.close()


def start_worker_process(
    url: str,
    queue: StreamQueue,
    consumer: str,
    seen_key: str,
    *,
    fail_field: str | None = None,
    work_ms: float = 0.0,
    count: int = 10,
    block_ms: int = 100,
    min_idle_ms: int = 30_000,
    claim_every_s: float = 1.0,
    exit_when_idle: bool = False,
) -> subprocess.Popen[str]:
    """Start a child process running a ``Worker`` with ``recording_handler`` on ``queue``;
    its stats are printed as JSON on stdout when it stops (SIGTERM/SIGINT or
    ``exit_when_idle``). The caller owns the process: wait for it, or kill it.

    The child runs ``python -m labkit.experiments.streams`` (``main``), which imports
    redis-py and the pattern modules, not pandas, so it starts quickly."""
    checks.text("url", url)
    checks.text("consumer", consumer)
    checks.text("seen_key", seen_key)
    # refuse bad settings here, not in a child process that would die on them
    checks.number("work_ms", work_ms, low=0, high=checks.MAX_MS)
    Worker(
        queue, consumer, print, count=count, block_ms=block_ms, min_idle_ms=min_idle_ms,
        claim_every_s=claim_every_s,
    )  # fmt: skip
    args = [
        sys.executable, "-m", "labkit.experiments.streams", url, queue.stream, queue.group,
        consumer, seen_key,
        "--work-ms", repr(float(work_ms)), "--max-deliveries", str(queue.max_deliveries),
        "--count", str(count), "--block-ms", str(block_ms),
        "--min-idle-ms", str(min_idle_ms), "--claim-every-s", repr(float(claim_every_s)),
    ]  # fmt: skip
    if fail_field is not None:
        args += ["--fail-field", checks.text("fail_field", fail_field)]
    if exit_when_idle:
        args.append("--exit-when-idle")
    return subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True)


def main(argv: list[str] | None = None) -> int:
    """``python -m labkit.experiments.streams URL STREAM GROUP CONSUMER SEEN_KEY [options]``:
    one worker process running ``recording_handler``; prints its stats as JSON when it
    stops (SIGTERM/SIGINT finish the current message first)."""
    parser = argparse.ArgumentParser(
        prog="python -m labkit.experiments.streams", description=main.__doc__
    )
    for name in ("url", "stream", "group", "consumer", "seen_key"):
        parser.add_argument(name)
    parser.add_argument("--fail-field", default=None)
    parser.add_argument("--work-ms", type=float, default=0.0)
    parser.add_argument("--max-deliveries", type=int, default=DEFAULT_MAX_DELIVERIES)
    parser.add_argument("--count", type=int, default=10)
    parser.add_argument("--block-ms", type=int, default=100)
    parser.add_argument("--min-idle-ms", type=int, default=30_000)
    parser.add_argument("--claim-every-s", type=float, default=1.0)
    parser.add_argument("--exit-when-idle", action="store_true")
    args = parser.parse_args(argv)
    stats = run_worker(
        args.url,
        args.stream,
        args.group,
        args.consumer,
        recording_handler,
        handler_kwargs={
            "seen_key": args.seen_key,
            "fail_field": args.fail_field,
            "work_ms": args.work_ms,
        },
        queue_kwargs={"max_deliveries": args.max_deliveries},
        worker_kwargs={
            "count": args.count,
            "block_ms": args.block_ms,
            "min_idle_ms": args.min_idle_ms,
            "claim_every_s": args.claim_every_s,
            "exit_when_idle": args.exit_when_idle,
        },
    )
    print(json.dumps(stats), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
