"""The editing commands as a user runs them, on a file full of comments and a live server."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from conftest import RunningServer
from test_cli import vws
from wsclient import Peer

ROUTES = """\
# chat service -- hand written, keep my comments!
[server]
port = 9000   # staging

[routes."/ws".events]
echo = "e2e_handlers:echo"     # answers with the payload
# more events below
rooms = "e2e_handlers:rooms"
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "routes.toml").write_text(ROUTES)
    return tmp_path


def test_add_event_validates_writes_and_keeps_everything_else(project: Path):
    result = vws(
        "add-event",
        "/ws",
        "typed",
        "e2e_handlers:typed",
        "--schema",
        "e2e_handlers:Point",
        cwd=project,
    )
    assert result.returncode == 0, result.stderr
    text = (project / "routes.toml").read_text()
    assert text == ROUTES + (
        '\n[routes."/ws".events.typed]\nhandler = "e2e_handlers:typed"\n'
        'schema = "e2e_handlers:Point"\n'
    )
    assert vws("check", cwd=project).returncode == 0


def test_a_reference_that_does_not_import_is_refused_and_nothing_is_written(project: Path):
    result = vws("add-event", "/ws", "ghost", "e2e_handlers:nope", cwd=project)
    assert result.returncode == 1
    assert "not changed" in result.stderr and "nope" in result.stderr
    assert (project / "routes.toml").read_text() == ROUTES
    assert [p.name for p in project.iterdir()] == ["routes.toml"]  # no temp file left


def test_add_and_remove_route_and_event(project: Path):
    assert vws("add-route", "/admin", cwd=project).returncode == 0
    assert vws("add-event", "/admin", "echo", "e2e_handlers:echo", cwd=project).returncode == 0
    assert vws("remove-event", "/ws", "rooms", cwd=project).returncode == 0
    text = (project / "routes.toml").read_text()
    assert 'rooms = "e2e_handlers:rooms"' not in text
    assert "# more events below" in text and "# staging" in text
    assert vws("remove-route", "/admin", cwd=project).returncode == 0
    assert (project / "routes.toml").read_text() == ROUTES.replace(
        'rooms = "e2e_handlers:rooms"\n', ""
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("add-route", "/ws"), "exists already"),
        (("remove-event", "/ws", "nope"), "has no event"),
        (("add-event", "/missing", "e", "e2e_handlers:echo"), "vws add-route /missing"),
        (("add-event", "/ws", "joinRoom", "e2e_handlers:echo"), "reserved event name"),
    ],
)
def test_refusals_are_clear(project: Path, args: tuple[str, ...], message: str):
    result = vws(*args, cwd=project)
    assert result.returncode == 1
    assert message in result.stderr
    assert (project / "routes.toml").read_text() == ROUTES


@pytest.mark.anyio
async def test_a_running_server_picks_up_an_edit(project: Path):
    server = RunningServer(project / "routes.toml")
    try:
        async with await Peer.connect(server.url + "/ws") as a:
            assert (await a.request("typed", {"x": 1, "y": 1}))["payload"]["code"] == (
                "unknown_event"
            )
            result = await anyio.to_thread.run_sync(
                lambda: vws(
                    "add-event",
                    "/ws",
                    "typed",
                    "e2e_handlers:typed",
                    "--schema",
                    "e2e_handlers:Point",
                    cwd=project,
                )
            )
            assert result.returncode == 0, result.stderr
            with anyio.fail_after(10):
                while (await a.request("typed", {"x": 1, "y": 1}))["event"] != "ack":
                    await anyio.sleep(0.02)
            assert await a.call("typed", {"x": 2, "y": 2}) == {"type": "Point", "sum": 4}
    finally:
        server.stop()
