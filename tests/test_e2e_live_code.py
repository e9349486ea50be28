"""Live code on a real ``vws run``: an edited handler module serves from the next frame, with no
flag, and a reload that goes wrong (a module that exits or hangs at import, a half-written or
undecodable routes.toml, an edit that removes every route) leaves the clients served by the
old table."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import RunningServer
from wsclient import Peer

pytestmark = pytest.mark.anyio

WAIT = 10.0
V1 = """def answer(client, payload):
    return 'v1'


def echo(client, payload):
    return payload
"""
ROUTES = '[routes."/ws".events]\nanswer = "{module}:answer"\necho = "{module}:echo"\n'


@pytest.fixture
def app(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[RunningServer, Path]]:
    """A project folder: routes.toml and its own handler module (named for the test, so no
    two tests share a module in sys.modules)."""
    module = "live_" + request.node.name.replace("[", "_").replace("]", "")[-40:]
    source = tmp_path / f"{module}.py"
    source.write_text(V1)
    config = tmp_path / "routes.toml"
    config.write_text(ROUTES.format(module=module))
    server = RunningServer(config)
    yield server, source
    server.stop()


async def eventually(check, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError("the condition did not come true in time")
        await asyncio.sleep(0.05)


async def logged(server: RunningServer, text: str, timeout: float = WAIT) -> None:
    async def seen() -> bool:
        return text in server.log()

    await eventually(seen, timeout)


async def test_an_edited_handler_body_answers_the_next_frame(app):
    server, source = app
    async with await Peer.connect(server.url + "/ws") as peer:
        assert await peer.call("answer") == "v1"
        source.write_text(V1.replace("'v1'", "'v2'"))

        async def answers_v2() -> bool:
            return await peer.call("answer") == "v2"

        await eventually(answers_v2)
    assert f"re-imported {source.stem}" in server.log()


async def test_a_new_function_can_be_referenced_at_once(app):
    server, source = app
    async with await Peer.connect(server.url + "/ws") as peer:
        source.write_text(V1 + "\n\ndef shout(client, payload):\n    return payload.upper()\n")
        config = server.config
        config.write_text(config.read_text() + f'shout = "{source.stem}:shout"\n')
        await logged(server, "+shout")
        assert await peer.call("shout", "hi") == "HI"
    assert "reload refused" not in server.log()


async def test_a_module_that_exits_at_import_refuses_the_reload(app):
    server, source = app
    async with await Peer.connect(server.url + "/ws") as peer:
        source.write_text('import sys\n\nsys.exit("missing env var")\n' + V1)
        await logged(server, "reload refused")
        assert f"{source.name}:3: re-importing {source.stem} failed: SystemExit" in server.log()
        assert await peer.call("answer") == "v1"  # the old table serves, the client stayed
    assert server.process.poll() is None


async def test_a_slow_import_does_not_hold_up_the_clients(app):
    server, source = app
    async with await Peer.connect(server.url + "/ws") as peer:
        source.write_text("import time\n\ntime.sleep(4)\n" + V1.replace("'v1'", "'v2'"))
        started = time.monotonic()
        slowest = 0.0
        while "reloaded routes.toml" not in server.log():
            assert time.monotonic() - started < 20, "the re-import did not finish"
            sent = time.monotonic()
            assert await peer.call("echo", "ping") == "ping"
            slowest = max(slowest, time.monotonic() - sent)
            await asyncio.sleep(0.02)
        assert time.monotonic() - started > 3.5  # the import really took its time
        assert slowest < 0.1, f"an echo took {slowest * 1000:.0f} ms during the import"
        assert await peer.call("answer") == "v2"


async def test_a_file_written_in_place_is_read_only_once_settled(app):
    server, _ = app
    config = server.config
    full = config.read_text()
    async with await Peer.connect(server.url + "/ws") as peer:
        with config.open("w") as file:  # truncate, then write a moment later
            file.flush()
            await asyncio.sleep(0.1)
            file.write(full + "# edited\n")
        await logged(server, "reloaded routes.toml")
        assert "-/ws" not in server.log()
        assert await peer.call("answer") == "v1"  # never closed with 4404


async def test_an_edit_that_removes_every_route_is_refused(app):
    server, _ = app
    async with await Peer.connect(server.url + "/ws") as peer:
        server.config.write_text("# nothing here\n")
        await logged(server, "VWS_ALLOW_NO_ROUTES")
        assert await peer.call("answer") == "v1"


async def test_invalid_utf8_in_routes_toml_is_a_located_error(app):
    server, _ = app
    async with await Peer.connect(server.url + "/ws") as peer:
        server.config.write_bytes(server.config.read_bytes() + b"# caf\xe9\n")
        await logged(server, "routes.toml:4: invalid UTF-8")
        assert "Traceback" not in server.log()
        assert await peer.call("answer") == "v1"


PLUGIN = """from vws import Deny, hookimpl


@hookimpl
def vws_message(client, event, payload):
    if event == "answer" and payload == "guarded":
        raise Deny("{word}")
"""


async def test_an_edited_plugins_folder_file_is_live_at_once(tmp_path: Path):
    folder = tmp_path / "plugins"
    folder.mkdir()
    plugin = folder / "guard.py"
    plugin.write_text(PLUGIN.format(word="v1"))
    (tmp_path / "live_plugin_handlers.py").write_text(V1)
    config = tmp_path / "routes.toml"
    config.write_text(
        '[plugins]\ndir = "plugins"\n\n' + ROUTES.format(module="live_plugin_handlers")
    )
    server = RunningServer(config)
    try:
        async with await Peer.connect(server.url + "/ws") as peer:
            assert (await peer.request("answer", "guarded"))["payload"]["message"] == "v1"
            plugin.write_text(PLUGIN.format(word="v2"))

            async def says_v2() -> bool:
                reply = await peer.request("answer", "guarded")
                return reply["payload"]["message"] == "v2"

            await eventually(says_v2)
        assert "spec not found" not in server.log()
    finally:
        server.stop()
