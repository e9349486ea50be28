"""#16: plugins decide per receiver (vws_deliver), refuse leaves, hear why clients leave, and
reach the node through their ``server`` argument, on a real ``vws run``."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from apps.scaleout_brokers import SHARED_REDIS, eventually
from conftest import APPS, REPO, RunningServer
from wsclient import Peer

pytestmark = pytest.mark.anyio

KEY = "receivers-admin-key-0123456789"
APP = f"""
[admin]
key = "{KEY}"

[plugins]
load = ["e2e_receivers", "history"]

[plugins.settings.history]
rooms = ["kept-*"]

[routes."/ws"]
middleware = ["e2e_receivers:identify"]
[routes."/ws".events]
echo = "e2e_handlers:echo"
emit = "e2e_handlers:emit"
to_room = "e2e_handlers:to_room"
to = "e2e_handlers:to"
broadcast = "e2e_handlers:broadcast"
leave = "e2e_handlers:leave"
hide = "e2e_receivers:hide"
show = "e2e_receivers:show"
kick = "e2e_receivers:kick"
node = "e2e_receivers:node"
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    config = tmp_path_factory.mktemp("receivers") / "routes.toml"
    config.write_text(APP)
    running = RunningServer(config, args=("--log-format", "json"))
    yield running
    running.stop()


def publish(server: RunningServer, message: object) -> dict[str, object]:
    request = urllib.request.Request(
        server.http + "/_vws/api/publish",
        data=json.dumps(message).encode(),
        headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200
        return json.loads(response.read())


async def test_a_hidden_client_gets_nothing_while_the_others_get_everything(server: RunningServer):
    url = server.url + "/ws"
    async with (
        await Peer.connect(url) as sender,
        await Peer.connect(url) as seen,
        await Peer.connect(url) as hidden,
    ):
        for peer in (sender, seen, hidden):
            await peer.call("joinRoom", room="r")
        await sender.call("hide", {"id": hidden.id})
        await sender.call("to_room", {"event": "in-room", "room": "r"})
        await sender.call("broadcast", {"event": "to-all"})
        assert await sender.call("to", {"id": hidden.id, "event": "direct"}) is False
        assert await sender.call("to", {"id": seen.id, "event": "direct"}) is True
        publish(server, {"path": "/ws", "room": "r", "event": "api"})
        publish(server, {"path": "/ws", "broadcast": True, "event": "api-all"})
        to_hidden = {"path": "/ws", "client_id": hidden.id, "event": "api-direct"}
        assert publish(server, to_hidden)["error"] == "dropped"  # the API says so, too
        batch = publish(server, [to_hidden, {**to_hidden, "client_id": seen.id}])
        assert batch["results"] == [{"ok": False, "error": "dropped"}, {"ok": True}]
        expected = ["in-room", "to-all", "direct", "api", "api-all", "api-direct"]
        assert [(await seen.recv())["event"] for _ in expected] == expected
        # hidden, the frames it was kept from never come: the next it gets is the one after it
        # is shown again, and its own acks were never withheld
        await hidden.nothing_pending()
        await sender.call("show", {"id": hidden.id})
        await sender.call("to_room", {"event": "after", "room": "r"})
        assert (await hidden.recv())["event"] == "after"


async def test_history_replays_pass_the_per_receiver_hook(server: RunningServer):
    url = server.url + "/ws"
    async with await Peer.connect(url) as sender:
        await sender.call("joinRoom", room="kept-1")
        for i in range(3):
            await sender.call("to_room", {"event": "story", "room": "kept-1", "payload": i})
        publish(server, {"path": "/ws", "room": "kept-1", "event": "story", "payload": "api"})
        assert (await sender.recv())["payload"] == "api"  # the room has it: so has history
        async with await Peer.connect(url) as fresh:
            await fresh.call("joinRoom", room="kept-1")
            payloads = [frame["payload"] for frame in fresh.before]
            assert payloads == [0, 1, 2, "api"]  # published frames are kept too
        async with await Peer.connect(url) as hidden:
            await sender.call("hide", {"id": hidden.id})
            assert await hidden.call("joinRoom", room="kept-1") == {"room": "kept-1"}
            assert hidden.before == []


async def test_a_leave_can_be_refused_and_every_leave_says_why(server: RunningServer):
    url = server.url + "/ws"
    async with await Peer.connect(url) as watcher:
        async with await Peer.connect(url) as a:
            await a.call("joinRoom", room="sticky-1")
            reply = await a.request("leftRoom", room="sticky-1")
            assert reply["event"] == "error"
            assert reply["payload"] == {
                "code": "leave_denied",
                "message": "sticky-1 keeps its members",
            }
            await watcher.call("joinRoom", room="sticky-1")
            await watcher.call("to_room", {"event": "still-in", "room": "sticky-1"})
            assert (await a.recv())["event"] == "still-in"  # the refused leave kept it in
            assert await a.call("leave", "sticky-1") is True  # a handler's leave is not refused
            for room in ("r1", "r2", "r3"):
                await a.call("joinRoom", room=room)
            await a.call("leftRoom", room="r1")
            assert await watcher.call("kick", {"id": a.id, "room": "r2"}) is True
            seen = list(watcher.before)
            assert await watcher.call("kick", {"id": a.id, "room": "r2"}) is False
            seen += watcher.before
            a_id = a.id
        left = [f["payload"] for f in seen if f["event"] == "left"]
        while len(left) < 4:
            frame = await watcher.recv()
            if frame["event"] == "left":
                left.append(frame["payload"])
    assert [(p["id"], p["room"], p["reason"]) for p in left] == [
        (a_id, "sticky-1", "handler"),
        (a_id, "r1", "asked"),
        (a_id, "r2", "kicked"),
        (a_id, "r3", "disconnect"),
    ]


async def test_hooks_reach_the_node_even_without_a_sender(server: RunningServer):
    async with await Peer.connect(server.url + "/ws?user=ann") as a:
        node = await a.call("node")
        await a.call("joinRoom", room="stamps")
        await a.call("to_room", {"event": "stamp", "room": "stamps"})
        assert a.before[0]["payload"] == {"node": node, "user": "ann"}
        publish(server, {"path": "/ws", "room": "stamps", "event": "stamp"})
        assert (await a.recv())["payload"] == {"node": node, "user": None}


async def test_a_plugin_logger_names_its_plugin(server: RunningServer):
    async with await Peer.connect(server.url + "/ws?user=bo") as a:
        await a.call("joinRoom", room="t")
        await a.call("to_room", {"event": "trace", "room": "t"})
    for _ in range(200):
        lines = [json.loads(line) for line in server.lines if '"trace for' in line]
        if lines:
            break
        async with await Peer.connect(server.url + "/ws") as probe:  # a round trip, not a sleep
            await probe.call("echo", 1)
    assert lines, server.log()
    assert lines[0]["logger"] == "vws.plugin.e2e_receivers"
    assert lines[0]["plugin"] == "e2e_receivers"
    assert lines[0]["event"] == "trace for bo from bo"


def test_an_async_vws_deliver_is_refused_at_load(tmp_path: Path):
    (tmp_path / "slow_deliver.py").write_text(
        "from vws import hookimpl\n\n@hookimpl\nasync def vws_deliver(client, message):\n"
        "    return None\n"
    )
    (tmp_path / "routes.toml").write_text(
        '[plugins]\nload = ["slow_deliver"]\n[routes."/ws".events]\necho = "e2e_handlers:echo"\n'
    )
    done = subprocess.run(
        [sys.executable, "-m", "vws.cli", "check"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": f"{APPS}:{REPO}", "PATH": "/usr/bin:/bin"},
        timeout=60,
    )
    assert done.returncode != 0
    assert "vws_deliver runs once per receiver" in done.stdout + done.stderr


async def test_frames_from_another_node_pass_the_receivers_hooks(tmp_path: Path):
    """Over a real Redis: the node that holds a receiver decides for it, and knows the sender."""
    prefix = "recv" + secrets.token_hex(4)
    config = tmp_path / "routes.toml"
    config.write_text(f'[server]\nchannel_prefix = "{prefix}"\n' + APP)
    env = {"VWS_BACKPLANE": SHARED_REDIS}
    one = RunningServer(config, env, ("--log-format", "json"))
    try:
        two = RunningServer(config, env, ("--log-format", "json"))
        try:
            async with (
                await Peer.connect(one.url + "/ws?user=ann") as sender,
                await Peer.connect(two.url + "/ws?user=bo") as seen,
                await Peer.connect(two.url + "/ws?user=cy") as hidden,
            ):
                for peer in (sender, seen, hidden):
                    await peer.call("joinRoom", room="far")
                await seen.call("hide", {"id": hidden.id})  # node two's plugin hides it
                await eventually(lambda: _delivered(sender, seen, "far"))
                await sender.call("to_room", {"event": "trace", "room": "far"})
                assert (await seen.recv())["event"] == "trace"
                await hidden.nothing_pending()
                assert await _logged(two, "trace for bo from ann")
        finally:
            two.stop()
    finally:
        one.stop()


async def _delivered(sender: Peer, receiver: Peer, room: str) -> bool:
    """Whether a frame sent to ``room`` on one node now reaches ``receiver`` on the other (the
    second node subscribes to the room's channel a moment after the join is acknowledged)."""
    await sender.call("to_room", {"event": "probe", "room": room})
    try:
        while (await receiver.recv(timeout=0.5))["event"] != "probe":
            pass
    except TimeoutError:
        return False
    return True


async def _logged(server: RunningServer, text: str) -> bool:
    for _ in range(200):
        if text in server.log():
            return True
        async with await Peer.connect(server.url + "/ws") as probe:  # a round trip, not a sleep
            await probe.call("echo", 1)
    return False
