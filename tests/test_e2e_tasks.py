"""routes.toml's ``[tasks]`` and sending from outside a handler (``vws.server()``), on a real
``vws run``: a task sends to a room every 100 ms, a sync task sends from a worker thread, tasks
follow reloads, a failing task is logged with its name and retried, ``vws routes`` and the
status list them, and a task's frames reach the clients of another node through Redis."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import httpx
import pytest
from apps.scaleout_brokers import SHARED_REDIS
from conftest import APPS, RunningServer, ServerFactory
from wsclient import Peer

pytestmark = pytest.mark.anyio

ROUTES = """
[routes."/ws".events]
members = "tasks_app:members"

[tasks]
{tasks}
"""
TICK = 'clock = { handler = "tasks_app:tick", every = "100ms" }'


async def frames_of(peer: Peer, event: str, count: int, timeout: float = 5.0) -> list[dict]:
    """The next ``count`` frames named ``event`` (others are skipped)."""
    found: list[dict] = []
    deadline = time.monotonic() + timeout
    while len(found) < count:
        frame = await peer.recv(timeout=max(0.01, deadline - time.monotonic()))
        if frame["event"] == event:
            found.append(frame)
    return found


async def test_a_task_sends_to_a_room_every_100_ms(start_server: ServerFactory):
    server = start_server(ROUTES.format(tasks=TICK))
    async with await Peer.connect(server.url + "/ws") as peer:
        await peer.call("joinRoom", room="clock")
        started = time.monotonic()
        ticks = await frames_of(peer, "tick", 5)
        took = time.monotonic() - started
        numbers = [frame["payload"]["n"] for frame in ticks]
        assert numbers == sorted(numbers) and len(set(numbers)) == 5
        assert 0.3 < took < 2.0, f"5 ticks took {took:.2f} s"
        assert await peer.call("members", "clock") == [peer.id]


async def test_a_sync_task_sends_safely_from_its_worker_thread(start_server: ServerFactory):
    task = 'threaded = { handler = "tasks_app:tick_from_a_thread", every = "100ms" }'
    server = start_server(ROUTES.format(tasks=task))
    async with await Peer.connect(server.url + "/ws") as peer:
        await peer.call("joinRoom", room="clock")
        frames = await frames_of(peer, "thread-tick", 3)
        assert all(frame["payload"]["thread"] != "MainThread" for frame in frames)


async def test_tasks_follow_a_reload(start_server: ServerFactory):
    server = start_server(ROUTES.format(tasks=""))
    async with await Peer.connect(server.url + "/ws") as peer:
        await peer.call("joinRoom", room="clock")
        server.config.write_text(ROUTES.format(tasks=TICK))
        await frames_of(peer, "tick", 2)  # added: it started
        server.config.write_text(ROUTES.format(tasks=""))
        deadline = time.monotonic() + 5
        while "task_stopped task=clock" not in server.log():
            assert time.monotonic() < deadline, "the removed task did not stop"
            await asyncio.sleep(0.05)
        # Drain what was sent before it stopped; then nothing more comes (for half a second).
        deadline = time.monotonic() + 5
        with pytest.raises(TimeoutError):
            while time.monotonic() < deadline:
                await peer.recv(timeout=0.5)


async def test_a_failing_task_is_logged_with_its_name_and_retried(start_server: ServerFactory):
    task = 'feed = { handler = "tasks_app:fails", retry = "100ms" }'
    server = start_server(ROUTES.format(tasks=task))
    deadline = time.monotonic() + 5
    while server.log().count("task_error task=feed") < 3:
        assert time.monotonic() < deadline, server.log()[-2000:]
        await asyncio.sleep(0.05)
    assert "RuntimeError: the feed is down" in server.log()
    async with httpx.AsyncClient() as http:
        status = (await http.get(server.http + "/_vws/status")).json()
    (feed,) = status["tasks"]
    assert feed["name"] == "feed" and feed["errors"] >= 3 and feed["state"] in {"failed", "running"}


def test_vws_routes_lists_the_tasks(tmp_path):
    (tmp_path / "routes.toml").write_text(ROUTES.format(tasks=TICK))
    result = subprocess.run(
        [sys.executable, "-m", "vws.cli", "routes"],
        cwd=tmp_path,
        env={"PYTHONPATH": str(APPS), "PATH": ""},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert ["clock", "tasks_app:tick", "0.1", "s"] in [
        line.split() for line in result.stdout.splitlines()
    ]


async def test_a_task_reaches_the_clients_of_another_node(tmp_path):
    prefix = f"tasks{time.monotonic_ns()}"
    server_settings = f'[server]\nbackplane = "{SHARED_REDIS}"\nchannel_prefix = "{prefix}"\n'
    sender_config = tmp_path / "a" / "routes.toml"
    other_config = tmp_path / "b" / "routes.toml"
    sender_config.parent.mkdir()
    other_config.parent.mkdir()
    sender_config.write_text(server_settings + ROUTES.format(tasks=TICK))
    other_config.write_text(server_settings + ROUTES.format(tasks=""))
    sender, other = RunningServer(sender_config), RunningServer(other_config)
    try:
        async with await Peer.connect(other.url + "/ws") as peer:
            await peer.call("joinRoom", room="clock")
            assert len(await frames_of(peer, "tick", 3, timeout=10)) == 3
    finally:
        sender.stop()
        other.stop()
