"""Issue #13 item 6, "the first hour, smoothed": what a new user meets first, on a real
``vws run`` where it is about the server."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import APPS, REPO, RunningServer
from wsclient import Peer

pytestmark = pytest.mark.anyio

ROUTES = """
[static]
directory = "web"

[routes."/ws".events]
echo = "e2e_handlers:echo"
whoami = "e2e_handlers:whoami"

[routes."/other".events]
echo = "e2e_handlers:echo"
"""


def vws(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(APPS), str(REPO)])}
    return subprocess.run(
        [sys.executable, "-m", "vws.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=30,
    )


async def test_the_banner_comes_once_the_port_listens_and_lists_what_to_open(tmp_path: Path):
    (tmp_path / "web").mkdir()
    (tmp_path / "web" / "index.html").write_text("<p>hi</p>")
    config = tmp_path / "routes.toml"
    config.write_text(ROUTES)
    server = RunningServer(config, ready="vws: status:")
    try:
        async with await Peer.connect(f"{server.url}/ws") as peer:  # at once: it listens
            assert await peer.call("echo", 1) == 1
        log = server.log()
        assert log.index("Uvicorn running on") < log.index("vws: serving 2 route(s)")
        assert f"ws://127.0.0.1:{server.port}/ws (2 event(s))" in log
        assert f"ws://127.0.0.1:{server.port}/other (1 event(s))" in log
        assert f"page: http://127.0.0.1:{server.port}/\n" in log
        assert f"status: http://127.0.0.1:{server.port}/_vws\n" in log
    finally:
        server.stop()


def test_a_taken_port_is_one_line_and_status_1(tmp_path: Path):
    (tmp_path / "routes.toml").write_text('[routes."/ws".events]\necho = "e2e_handlers:echo"\n')
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        run = vws(tmp_path, "run", "--port", str(port))
    assert run.returncode == 1, run.stderr
    assert run.stderr.strip().splitlines() == [
        f"vws: cannot listen on 127.0.0.1:{port}: Address already in use"
    ]


@pytest.mark.parametrize("port", ["99999", "-1"])
def test_a_port_out_of_range_is_one_line_and_status_2(tmp_path: Path, port: str):
    (tmp_path / "routes.toml").write_text('[routes."/ws".events]\necho = "e2e_handlers:echo"\n')
    run = vws(tmp_path, "run", "--port", port)
    assert run.returncode == 2, run.stderr
    assert run.stderr.strip().splitlines() == ["vws: --port must be 0 to 65535"]
