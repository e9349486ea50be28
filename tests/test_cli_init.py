"""``vws init``: a new project that ``vws run`` serves at once, with a passing test."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import RunningServer
from test_cli import vws
from wsclient import Peer


@pytest.fixture
def project(tmp_path: Path) -> Path:
    folder = tmp_path / "newapp"
    result = vws("init", str(folder), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "vws run" in result.stdout
    return folder


def test_init_writes_the_project_and_refuses_to_overwrite(project: Path):
    names = sorted(str(p.relative_to(project)) for p in project.rglob("*") if p.is_file())
    assert names == [
        "handlers.py",
        "plugins/hello.py",
        "pytest.ini",
        "routes.toml",
        "tests/test_handlers.py",
    ]
    routes = (project / "routes.toml").read_text()
    assert routes.startswith("# routes.toml:")
    assert '[plugins]\ndir = "plugins"' in routes  # a folder, so it shadows no package
    again = vws("init", str(project), cwd=project.parent)
    assert again.returncode == 1 and "not overwriting" in again.stderr
    assert vws("check", cwd=project).returncode == 0


def test_the_scaffolds_own_test_passes(project: Path):
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout


@pytest.mark.anyio
async def test_vws_run_serves_the_scaffold(project: Path):
    server = RunningServer(project / "routes.toml")
    try:
        async with await Peer.connect(server.url + "/ws") as a:
            welcome = await a.recv()
            assert welcome == {
                "event": "welcome",
                "payload": {"client_id": a.id, "note": "welcome"},
            }
            await a.call("joinRoom", room="lobby")
            assert await a.call("chat", {"room": "lobby", "text": "hey"}) == {"length": 3}
            assert a.before == [{"event": "chat", "payload": {"from": a.id, "text": "hey"}}]
            denied = await a.request("joinRoom", room="_private")
            assert denied["payload"]["code"] == "join_denied"
    finally:
        server.stop()
