"""Test helpers for the scale-out tests: private brokers that a test may kill, and polling.

The machine's Redis and NATS are shared, so a test that kills or restarts a broker runs its own
``redis-server`` / ``nats-server`` on a free port.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

SHARED_REDIS = "redis://127.0.0.1:6379/0"
SHARED_NATS = "nats://127.0.0.1:4222"
START_TIMEOUT = 10.0
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _answers(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class PrivateBroker:
    """A broker process of this test's own, on a port that stays the same across restarts."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.folder = tempfile.mkdtemp(prefix="vws-broker-")

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> PrivateBroker:
        self.process = subprocess.Popen(
            self.command(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + START_TIMEOUT
        while not _answers(self.port):
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.kill()
                raise RuntimeError(f"{self.command()[0]} did not start")
            time.sleep(0.02)
        return self

    def kill(self) -> None:
        """SIGKILL: the broker vanishes without a word, as in a crash."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None

    def close(self) -> None:
        self.kill()
        shutil.rmtree(self.folder, ignore_errors=True)


class PrivateRedis(PrivateBroker):
    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self) -> list[str]:
        return [
            "redis-server",
            "--port", str(self.port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--dir", self.folder,
        ]  # fmt: skip


class PrivateNats(PrivateBroker):
    """nats-server with JetStream and its monitoring port (to list subscriptions)."""

    def __init__(self) -> None:
        super().__init__()
        self.monitor_port = free_port()

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [
            "nats-server",
            "-a", "127.0.0.1", "-p", str(self.port), "-m", str(self.monitor_port),
            "-js", "-sd", self.folder,
        ]  # fmt: skip

    def subjects(self) -> list[str]:
        """Every subject some client of this server subscribes to (one entry per subscription)."""
        url = f"http://127.0.0.1:{self.monitor_port}/subsz?subs=1&limit=10000"
        with urllib.request.urlopen(url, timeout=5) as response:
            data = json.load(response)
        return [sub["subject"] for sub in data.get("subscriptions_list") or []]


async def eventually(
    check: Callable[[], Awaitable[T] | T], timeout: float = 10.0, every: float = 0.05
) -> T:
    """Poll ``check`` until it returns something true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result: Any = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout}s: {check}")
        await asyncio.sleep(every)


def health(http: str) -> dict[str, Any]:
    with urllib.request.urlopen(http + "/_vws/health", timeout=5) as response:
        assert response.status == 200
        return json.load(response)


async def drop_redis_keys(url: str, prefix: str) -> None:
    """Delete what an app with ``prefix`` left on a shared Redis (a node a test crashed)."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


def drop_nats_buckets_now(url: str, prefix: str) -> None:
    """:func:`drop_nats_buckets` from synchronous code (a fixture's teardown), on a thread of its
    own so that it never meets the event loop the async tests run on."""
    worker = threading.Thread(target=asyncio.run, args=(drop_nats_buckets(url, prefix),))
    worker.start()
    worker.join(30)


async def drop_nats_buckets(url: str, prefix: str) -> None:
    """Delete the key-value buckets an app with ``prefix`` made on a shared NATS server."""
    import nats

    connection = await nats.connect(url)
    try:
        js = connection.jetstream()
        for bucket in (f"{prefix}_hash", f"{prefix}_nodes"):
            with contextlib.suppress(Exception):  # never made: this test wrote no hash
                await js.delete_key_value(bucket)
    finally:
        await connection.close()
