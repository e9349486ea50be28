"""``vws run --workers N``: one port, N processes, one app; SIGTERM stops them all."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys

import pytest
from apps.scaleout_brokers import SHARED_REDIS, eventually, health
from conftest import APPS, REPO, Workers
from wsclient import Peer

pytestmark = pytest.mark.anyio

APP = """
[server]
channel_prefix = "{prefix}"
[routes."/ws".events]
to_room = "e2e_handlers:to_room"
to = "e2e_handlers:to"
echo = "e2e_handlers:echo"
node = "scaleout_handlers:node"
"""


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_workers_report_a_port_they_cannot_listen_on(tmp_path):
    config = tmp_path / "routes.toml"
    config.write_text(APP.format(prefix="w"))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(APPS), str(REPO)])}
    env["VWS_BACKPLANE"] = SHARED_REDIS
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        command = [sys.executable, "-m", "vws.cli", "run", "-c", str(config), "--port", port]
        done = subprocess.run(
            [*command, "--workers", "2"],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
    assert done.returncode == 1
    assert f"vws: cannot listen on 127.0.0.1:{port}" in done.stderr


def test_workers_refuse_the_memory_backplane(tmp_path):
    config = tmp_path / "routes.toml"
    config.write_text(APP.format(prefix="w"))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(APPS), str(REPO)])}
    env.pop("VWS_BACKPLANE", None)
    done = subprocess.run(
        [sys.executable, "-m", "vws.cli", "run", "--config", str(config), "--workers", "2"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 2
    assert "--workers 2 needs a shared backplane" in done.stderr
    assert "redis://" in done.stderr and "nats://" in done.stderr


async def test_two_workers_share_one_port_and_one_app(tmp_path):
    config = tmp_path / "routes.toml"
    config.write_text(APP.format(prefix="w" + secrets.token_hex(5)))
    workers = Workers(config, 2, {"VWS_BACKPLANE": SHARED_REDIS})
    try:
        await eventually(
            lambda: workers.log().count("Application startup complete") == 2, timeout=60
        )
        assert len(workers.pids()) == 2
        nodes = set()

        def both_answer() -> bool:  # each new connection may land on either worker
            nodes.add(health(workers.http)["node"])
            return len(nodes) == 2

        await eventually(both_answer, every=0.01)

        peers: dict[str, Peer] = {}
        for _ in range(100):  # connect until there is a client on each worker
            peer = await Peer.connect(f"{workers.url}/ws")
            node = await peer.call("node")
            if node in peers:
                await peer.ws.close()
            else:
                peers[node] = peer
            if len(peers) == 2:
                break
        a, b = peers.values()

        async def direct() -> bool:
            return await a.call("to", {"id": b.id, "event": "dm", "payload": 1})

        await eventually(direct)
        assert await b.recv() == {"event": "dm", "payload": 1}
        for peer in (a, b):
            await peer.ws.close()

        os.kill(workers.pids()[0], signal.SIGKILL)  # a worker dies: it is replaced
        await eventually(lambda: workers.log().count("Application startup complete") == 3, 30)
        assert "exited with code -9; restarting" in workers.log()
    finally:
        code = workers.stop()
    assert code == 0, workers.log()
    assert all(_gone(pid) for pid in workers.pids())
    assert "SIGTERM: stopping 2 workers" in workers.log()
    assert workers.log().count("Application shutdown complete") == 2
