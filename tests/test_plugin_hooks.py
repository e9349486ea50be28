"""The hook system end to end: chaining order across plugin sources, settings reaching hooks,
async refusals, the post-join and refusal observers, and raising plugins that harm nobody."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import websockets
from conftest import APPS, REPO, STARTUP_TIMEOUT, free_port
from wsclient import Peer

pytestmark = pytest.mark.anyio

SUFFIX_PLUGIN = """
from vws import hookimpl


@hookimpl
def vws_emit(message):
    if message.event == "shout":
        return message.replace(payload=f"{message.payload}-dir")
    return None
"""

APP = """
[server]
max_rooms_per_client = 2

[plugins]
load = ["e2e_plugins", "e2e_second_plugin", "plug_probe", "plug_crash", "plug_early"]

[plugins.settings.plug_probe]
tag = "configured"
copies = 2

[routes."/ws".events]
echo = "e2e_handlers:echo"
emit = "e2e_handlers:emit"
to_room = "e2e_handlers:to_room"
join = "e2e_handlers:join"
deny = "e2e_handlers:deny"
"""


class FlagServer:
    """``vws run --plugins-dir DIR`` in a subprocess (conftest's server takes no extra flags)."""

    def __init__(self, config: Path, plugins_dir: Path) -> None:
        self.port = free_port()
        self.url = f"ws://127.0.0.1:{self.port}"
        self.lines: list[str] = []
        ready = threading.Event()
        env = {k: v for k, v in os.environ.items() if not k.startswith("VWS_")}
        env["PYTHONPATH"] = os.pathsep.join([str(APPS), str(REPO)])
        self.process = subprocess.Popen(
            [
                *(sys.executable, "-m", "vws.cli", "run", "--config", str(config)),
                *("--port", str(self.port), "--plugins-dir", str(plugins_dir)),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            cwd=config.parent,
        )

        def pump() -> None:
            assert self.process.stdout is not None
            for line in self.process.stdout:
                self.lines.append(line)
                if "Uvicorn running on" in line:
                    ready.set()
            ready.set()

        threading.Thread(target=pump, daemon=True).start()
        if not ready.wait(STARTUP_TIMEOUT) or self.process.poll() is not None:
            self.stop()
            raise RuntimeError("vws run did not start:\n" + "".join(self.lines))

    def log(self) -> str:
        return "".join(self.lines)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("plugin-hooks")
    (root / "routes.toml").write_text(APP)
    folder = root / "plugins-here"
    folder.mkdir()
    (folder / "suffix_dir.py").write_text(SUFFIX_PLUGIN)
    running = FlagServer(root / "routes.toml", folder)
    yield running
    running.stop()


async def wait_for_log(server: FlagServer, peer: Peer, text: str) -> None:
    """The server logs asynchronously: poll with round trips until ``text`` shows up."""
    for _ in range(200):
        if text in server.log():
            return
        await peer.call("echo")
    assert text in server.log()


async def test_emit_chain_order_is_reverse_registration_across_sources(server: FlagServer):
    # registered: plugins dir (suffix_dir), then load in order; the last registered runs first:
    # e2e_second_plugin ("-second"), then e2e_plugins (upper case), then suffix_dir ("-dir")
    async with await Peer.connect(server.url + "/ws") as a:
        await a.call("emit", {"event": "shout", "payload": "hi"})
        assert a.before == [{"event": "shout", "payload": "HI-SECOND-dir"}]


async def test_a_drop_stops_delivery_to_every_receiver(server: FlagServer):
    url = server.url + "/ws"
    async with await Peer.connect(url) as a, await Peer.connect(url) as b:
        await b.call("joinRoom", room="drop-room")
        b_joined = b.before
        assert [f["event"] for f in b_joined] == ["probe:joined", "probe:joined"]
        await a.call("to_room", {"event": "secret", "room": "drop-room"})
        await a.call("to_room", {"event": "after", "room": "drop-room", "payload": 1})
        assert await b.recv() == {"event": "after", "payload": 1}


async def test_settings_reach_startup_and_every_hook(server: FlagServer):
    assert "probe: startup tag=configured node=" in server.log()
    async with await Peer.connect(server.url + "/ws") as a:
        assert await a.call("joinRoom", room="s-1") == {"room": "s-1"}
        # vws_joined_room ran before the ack, with copies = 2 from the settings
        assert (
            a.before
            == [{"event": "probe:joined", "payload": {"room": "s-1", "tag": "configured"}}] * 2
        )


async def test_an_async_hook_denies_a_join_and_the_refusal_is_observed(server: FlagServer):
    async with await Peer.connect(server.url + "/ws") as a:
        reply = await a.request("joinRoom", room="probe-closed-1")
        assert reply["payload"] == {
            "code": "join_denied",
            "message": "probe-closed-1 is closed by the probe",
        }
        assert a.before == []  # no vws_joined_room for a refused join
        assert await a.call("join", "probe-closed-2") is False  # Client.join asks the hooks too
        await wait_for_log(
            server,
            a,
            "probe: refused join probe-closed-2 join_denied 'probe-closed-2 is closed by the "
            "probe' tag=configured",
        )


async def test_refusals_of_room_limits_and_messages_are_observed(server: FlagServer):
    async with await Peer.connect(server.url + "/ws") as a:
        await a.call("joinRoom", room="lim-1")
        await a.call("joinRoom", room="lim-2")
        reply = await a.request("joinRoom", room="lim-3")
        assert reply["payload"]["code"] == "too_many_rooms"
        await wait_for_log(server, a, "probe: refused join lim-3 too_many_rooms")
        assert (await a.request("deny"))["payload"] == {"code": "denied", "message": "not today"}
        await wait_for_log(server, a, "probe: refused message deny denied 'not today'")


async def test_a_refused_connect_is_observed_with_its_close_code(server: FlagServer):
    async with websockets.connect(server.url + "/ws?plugin_deny=1") as ws:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403
    async with await Peer.connect(server.url + "/ws") as a:
        await wait_for_log(server, a, "probe: refused connect /ws 4403 'the plugin says no'")


async def test_raising_hooks_never_break_a_connection(server: FlagServer):
    url = server.url + "/ws"
    async with await Peer.connect(url) as a, await Peer.connect(url) as b:
        # vws_joined_room and vws_left_room raise in plug_crash: the join and leave still happen
        assert await a.call("joinRoom", room="crash-room") == {"room": "crash-room"}
        await b.call("joinRoom", room="crash-room")
        await b.call("to_room", {"event": "hello", "room": "crash-room"})
        assert await a.recv() == {"event": "hello", "payload": None}
        assert await b.call("leftRoom", room="crash-room") == {"room": "crash-room"}
        await a.call("to_room", {"event": "only-a", "room": "crash-room"})
        # plug_crash's vws_left_room runs first and raises; e2e_plugins' still sends "left"
        assert [f["event"] for f in a.before] == ["left", "only-a"]
        # a raising vws_emit drops that one frame; the next is delivered
        await a.call("emit", {"event": "crash"})
        await a.call("emit", {"event": "fine"})
        assert a.before == [{"event": "fine", "payload": None}]
        await a.nothing_pending()
    log = server.log()
    for where in ("vws_joined_room", "vws_left_room", "vws_emit"):
        assert f"plugin 'plug_crash' raised in {where}" in log


@pytest.mark.parametrize("method", ["emit", "join"])
async def test_sending_or_joining_in_vws_connect_is_an_error_not_a_silent_loss(
    server: FlagServer, method: str
):
    """Before it is registered a client has no queue: what it is sent or joins would vanish.
    So the call raises, the connection is refused with 1011, and the log says what to do."""
    async with websockets.connect(server.url + f"/ws?early_{method}=1") as ws:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1011
    async with await Peer.connect(server.url + "/ws") as a:
        await wait_for_log(
            server,
            a,
            f"plugin 'plug_early' raised in vws_connect: RuntimeError: client.{method}() before "
            "the client is registered (in middleware or vws_connect) would be lost: do it in "
            "the route's connect handler, which runs once it is",
        )


async def test_a_raising_connect_hook_refuses_with_1011_and_names_the_plugin(server: FlagServer):
    async with websockets.connect(server.url + "/ws?crash=1") as ws:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1011
    async with await Peer.connect(server.url + "/ws") as a:
        await wait_for_log(
            server, a, "plugin 'plug_crash' raised in vws_connect: RuntimeError: crash-in-connect"
        )
