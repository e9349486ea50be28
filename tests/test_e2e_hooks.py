"""SPEC §4 end to end: plugins loaded from routes.toml change what a real server does."""

from __future__ import annotations

import signal

import anyio
import pytest
import websockets
from conftest import RunningServer
from wsclient import Peer

pytestmark = pytest.mark.anyio

APP = """
[plugins]
load = ["e2e_plugins", "e2e_second_plugin"]

[routes."/ws".events]
echo = "e2e_handlers:echo"
emit = "e2e_handlers:emit"
to_room = "e2e_handlers:to_room"
join = "e2e_handlers:join"
leave = "e2e_handlers:leave"
whoami = "e2e_handlers:whoami"
burst = "e2e_handlers:burst"
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    config = tmp_path_factory.mktemp("hooks") / "routes.toml"
    config.write_text(APP)
    running = RunningServer(config)
    yield running
    running.stop()


async def test_startup_ran_before_serving(server: RunningServer):
    log = server.log()
    assert log.index("e2e plugin: startup") < log.index("Uvicorn running on")


async def test_connect_hook_fills_state_and_can_refuse(server: RunningServer):
    async with await Peer.connect(server.url + "/ws") as a:
        assert (await a.call("whoami"))["state"] == {"plugin": "connected"}
    async with websockets.connect(server.url + "/ws?plugin_deny=1") as ws:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403


async def test_an_async_join_hook_denies(server: RunningServer):
    async with await Peer.connect(server.url + "/ws") as a:
        reply = await a.request("joinRoom", room="forbidden-zone")
        assert reply["event"] == "error"
        assert reply["payload"] == {"code": "join_denied", "message": "forbidden-zone is closed"}
        assert await a.call("join", "forbidden-zone") is False  # Client.join asks the hook too
        assert await a.call("whoami") is not None
        assert await a.call("joinRoom", room="open-zone") == {"room": "open-zone"}


async def test_leave_hook_sees_every_leave(server: RunningServer):
    url = server.url + "/ws"
    async with await Peer.connect(url) as a, await Peer.connect(url) as b:
        for room in ("h-1", "h-2"):
            await a.call("joinRoom", room=room)
            await b.call("joinRoom", room=room)
        await b.call("leftRoom", room="h-1")  # asked by the client
        assert await a.recv() == {"event": "left", "payload": {"id": b.id, "room": "h-1"}}
        await b.call("leave", "h-2")  # from a handler
        assert await a.recv() == {"event": "left", "payload": {"id": b.id, "room": "h-2"}}
        await b.call("joinRoom", room="h-1")
        await b.ws.close()  # by disconnecting
        assert await a.recv() == {"event": "left", "payload": {"id": b.id, "room": "h-1"}}


@pytest.mark.parametrize(
    ("event", "code", "message"),
    [
        ("blocked", "denied", "blocked by plugin"),
        ("limited", "rate_limited", "rate limit exceeded"),
        ("plugin_crash", "denied", "refused by a plugin"),
    ],
)
async def test_message_hook_refuses(server: RunningServer, event: str, code: str, message: str):
    async with await Peer.connect(server.url + "/ws") as a:
        reply = await a.request(event)
        assert reply["payload"] == {"code": code, "message": message}
        assert await a.call("echo", "alive") == "alive"


async def test_emit_hooks_chain_in_call_order(server: RunningServer):
    async with await Peer.connect(server.url + "/ws") as a:
        await a.call("emit", {"event": "shout", "payload": "hi"})
        # the plugin loaded last runs first: "hi" -> "hi-second" -> "HI-SECOND"
        assert a.before == [{"event": "shout", "payload": "HI-SECOND"}]


async def test_emit_hook_drop_stops_delivery(server: RunningServer):
    url = server.url + "/ws"
    async with await Peer.connect(url) as a, await Peer.connect(url) as b:
        await b.call("joinRoom", room="h-drop")
        await a.call("to_room", {"event": "secret", "room": "h-drop"})
        await a.call("to_room", {"event": "shout", "room": "h-drop", "payload": "x"})
        assert await b.recv() == {"event": "shout", "payload": "X-SECOND"}


async def test_disconnect_hook_sees_the_close_code(server: RunningServer):
    async with await Peer.connect(server.url + "/ws") as a:
        client_id = a.id
        await a.ws.close(code=4321)
    async with await Peer.connect(server.url + "/ws") as b:
        # the server handles a's close before it answers b's fresh connection at the latest
        for _ in range(200):
            if f"e2e plugin: disconnect {client_id} 4321" in server.log():
                break
            await b.call("echo")
        assert f"e2e plugin: disconnect {client_id} 4321" in server.log()


async def test_a_raising_hook_is_logged_with_the_plugin_name(server: RunningServer):
    async with await Peer.connect(server.url + "/ws") as a:
        await a.request("plugin_crash")
    assert "e2e_plugins" in server.log() and "plugin internals" in server.log()


async def test_shutdown_hook_runs_on_sigterm(start_server):
    running = start_server(APP)
    async with await Peer.connect(running.url + "/ws") as a:
        # uvicorn re-raises SIGTERM once it has shut down cleanly, so the exit status says so
        assert await anyio.to_thread.run_sync(running.stop) in (0, -signal.SIGTERM)
        code, _ = await a.closed()
        assert code in (1001, 1012)
    log = running.log()
    assert log.index("e2e plugin: shutdown") < log.index("Application shutdown complete")


async def test_async_emit_hook_keeps_order_and_acks_last(start_server):
    running = start_server(
        APP.replace('load = ["e2e_plugins", "e2e_second_plugin"]', 'load = ["e2e_async_emit"]')
    )
    url = running.url + "/ws"
    async with await Peer.connect(url) as a, await Peer.connect(url) as b:
        await b.call("joinRoom", room="seq")
        reply = await a.request("burst", {"count": 300})
        assert [f["payload"] for f in a.before] == [i * 10 for i in range(300)]
        assert reply["payload"] == 300
        await a.call("burst", {"count": 50, "room": "seq"})
        assert [(await b.recv())["payload"] for _ in range(50)] == [i * 10 for i in range(50)]
        await a.call("emit", {"event": "secret"})
        assert a.before == []


async def test_an_emit_hook_answering_nonsense_drops_the_frame_not_the_handler(start_server):
    running = start_server(
        APP.replace('load = ["e2e_plugins", "e2e_second_plugin"]', 'load = ["e2e_bad_emit"]')
    )
    async with await Peer.connect(running.url + "/ws") as a:
        assert await a.call("emit", {"event": "odd"}) is None  # an ack, not handler_error
        assert a.before == []
        await a.call("emit", {"event": "fine"})
        assert a.before == [{"event": "fine", "payload": None}]
    assert "returned 'bool' from vws_emit" in running.log()
