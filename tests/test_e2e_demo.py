"""The demo app of the README: the repository's own routes.toml, served as it is."""

from __future__ import annotations

import pytest
import websockets
from conftest import REPO, RunningServer
from wsclient import Peer

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def demo():
    server = RunningServer(REPO / "routes.toml")
    yield server
    server.stop()


async def test_chat_in_a_room(demo: RunningServer):
    url = demo.url + "/ws"
    async with await Peer.connect(url) as ann, await Peer.connect(url) as bob:
        assert (await ann.recv())["event"] == "welcome"
        assert (await bob.recv())["event"] == "welcome"
        await ann.call("joinRoom", room="lobby")
        await bob.call("joinRoom", room="lobby")
        reply = await ann.call("chat", {"room": "lobby", "text": "hello", "name": "Ann"})
        assert reply == {"delivered": True}
        said = {"from": ann.id, "name": "Ann", "text": "hello"}
        assert ann.before == [{"event": "chat", "payload": said}]
        assert await bob.recv() == {"event": "chat", "payload": said}
        await bob.send({"event": "user-typing", "payload": True})
        typing = {"event": "user-typing", "payload": {"from": bob.id, "typing": True}}
        assert await ann.recv() == typing
        assert await bob.recv() == typing  # to_room includes the sender when a member
        assert await ann.call("direct", {"to": bob.id, "text": "psst"}) == {"sent": True}
        assert await bob.recv() == {"event": "direct", "payload": {"from": ann.id, "text": "psst"}}
        bad = await ann.request("chat", {"room": "lobby"})
        assert bad["payload"]["code"] == "invalid_payload"
        outside = await ann.request("chat", {"room": "elsewhere", "text": "x"})
        assert outside["payload"]["code"] == "denied"


async def test_admins_need_the_token(demo: RunningServer):
    async with websockets.connect(demo.url + "/admins") as ws:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
    async with (
        await Peer.connect(demo.url + "/admins?token=letmein") as admin,
        await Peer.connect(demo.url + "/ws") as user,
    ):
        await user.recv()  # welcome
        await admin.send({"event": "admin-message", "payload": "maintenance at noon"})
        assert await user.recv() == {
            "event": "admin-message",
            "payload": {"from": admin.id, "payload": "maintenance at noon"},
        }
