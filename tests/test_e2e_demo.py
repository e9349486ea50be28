"""The demo app of the README: the repository's own routes.toml, served as it is."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from conftest import DEMO_ADMIN_TOKEN, REPO, RunningServer
from wsclient import Peer, refused

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def demo():
    server = RunningServer(REPO / "routes.toml", {"VWS_DEMO_ADMIN_TOKEN": DEMO_ADMIN_TOKEN})
    yield server
    server.stop()


async def test_chat_in_a_room(demo: RunningServer):
    url = demo.url + "/ws"
    async with await Peer.connect(url + "?name=Ann") as ann, await Peer.connect(url) as bob:
        assert (await ann.recv())["event"] == "welcome"
        assert (await bob.recv())["event"] == "welcome"
        # the demo's rooms keep a history: the ack says where the room stands, and the live
        # frames, one's own presence:join included, follow it
        assert set(await ann.call("joinRoom", room="lobby")) == {"room", "offset", "epoch"}
        assert await heard(ann) == {
            "event": "presence:join",
            "payload": {"room": "lobby", "member": _ann(ann)},
        }
        await bob.call("joinRoom", room="lobby")
        bob_member = {"client_id": bob.id, "user": None, "name": "anonymous"}
        joined = {"event": "presence:join", "payload": {"room": "lobby", "member": bob_member}}
        assert await heard(bob) == joined
        assert await heard(ann) == joined
        members = await ann.call("presence", "lobby")
        assert members == {
            "room": "lobby",
            "count": 2,
            "members": sorted([_ann(ann), bob_member], key=lambda m: m["client_id"]),
        }
        reply = await ann.call("chat", {"room": "lobby", "text": "hello", "name": "Ann"})
        assert reply == {"delivered": True}
        said = {"from": ann.id, "name": "Ann", "room": "lobby", "text": "hello"}
        assert await heard(ann) == {"event": "chat", "payload": said}
        assert await heard(bob) == {"event": "chat", "payload": said}
        await bob.send({"event": "user-typing", "payload": True})
        typing = {
            "event": "user-typing",
            "payload": {"from": bob.id, "name": "anonymous", "room": "lobby", "typing": True},
        }
        assert await heard(ann) == typing
        assert await heard(bob) == typing  # to_room includes the sender when a member
        await ann.send({"event": "user-typing", "payload": {"room": "lobby", "typing": False}})
        stopped = {"from": ann.id, "name": "Ann", "room": "lobby", "typing": False}
        assert await heard(bob) == {"event": "user-typing", "payload": stopped}
        assert await heard(ann) == {"event": "user-typing", "payload": stopped}
        elsewhere = await ann.request("user-typing", {"room": "elsewhere", "typing": True})
        assert elsewhere["payload"]["code"] == "denied"
        assert await ann.call("direct", {"to": bob.id, "text": "psst"}) == {"sent": True}
        direct = {"from": ann.id, "name": "Ann", "text": "psst"}
        assert await bob.recv() == {"event": "direct", "payload": direct}
        assert await ann.call("direct", {"to": "nobody", "text": "x"}) == {"sent": False}
        bad = await ann.request("chat", {"room": "lobby"})
        assert bad["payload"]["code"] == "invalid_payload"
        outside = await ann.request("chat", {"room": "elsewhere", "text": "x"})
        assert outside["payload"]["code"] == "denied"
        await bob.call("leftRoom", room="lobby")
        left = {"event": "presence:leave", "payload": {"room": "lobby", "member": bob_member}}
        assert await heard(ann) == left
        assert (await ann.call("presence", "lobby"))["members"] == [_ann(ann)]


#: The last position each peer heard of lobby, as (id of the peer) → (offset, epoch).
_positions: dict[int, tuple[int, str]] = {}


#: The demo's events whose room frames are live only (its routes.toml ``history_skip``).
LIVE_ONLY = {"user-typing", "presence:join", "presence:leave"}


async def heard(peer: Peer) -> dict[str, Any]:
    """The next frame of lobby ``peer`` got (among those that came before an answer first),
    without its position, which must be the one after the last it heard; the demo's typing
    and presence frames carry none."""
    frame = peer.before.pop(0) if getattr(peer, "before", None) else await peer.recv()
    if frame["event"] in LIVE_ONLY:
        assert "offset" not in frame and "room" not in frame, frame
        return frame
    assert frame.pop("room") == "lobby", frame
    offset, epoch = frame.pop("offset"), frame.pop("epoch")
    last = _positions.get(id(peer))
    if last is not None:
        assert (offset, epoch) == (last[0] + 1, last[1])
    _positions[id(peer)] = (offset, epoch)
    return frame


def _ann(peer: Peer) -> dict[str, str]:
    return {"client_id": peer.id, "user": None, "name": "Ann"}


async def test_the_page_and_the_client_are_served(demo: RunningServer):
    async with httpx.AsyncClient(base_url=demo.http) as http:
        page = await http.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"] == "text/html; charset=utf-8"
        assert 'src="app.js"' in page.text
        script = await http.get("/app.js")
        assert script.headers["content-type"] == "text/javascript; charset=utf-8"
        assert 'from "/_vws/vws.js"' in script.text
        client = await http.get("/_vws/vws.js")
        assert client.status_code == 200
        assert "export function connect" in client.text
    async with await Peer.connect(demo.url + "/ws") as peer:  # WebSocket paths still route
        assert (await peer.recv())["event"] == "welcome"


async def test_admins_need_the_token(demo: RunningServer):
    assert (await refused(demo.url + "/admins?token=letmein")).code == 4401
    token = DEMO_ADMIN_TOKEN
    async with (
        await Peer.connect(demo.url + f"/admins?token={token}") as admin,
        await Peer.connect(
            demo.url + "/admins", additional_headers={"Authorization": f"Bearer {token}"}
        ) as other,
        await Peer.connect(demo.url + "/ws") as user,
    ):
        await user.recv()  # welcome
        await admin.send({"event": "admin-message", "payload": "maintenance at noon"})
        assert await other.recv() == {
            "event": "admin-message",
            "payload": {"from": admin.id, "payload": "maintenance at noon"},
        }
        # /admins is its own broadcast domain: /ws hears nothing of it, and cannot reach it.
        assert await user.call("message", "to everyone") == {"ok": True}
        assert user.before == []  # the admin's broadcast, already delivered, did not come here
        assert await user.call("direct", {"to": admin.id, "text": "hi admin"}) == {"sent": False}
        await admin.send({"event": "admin-message", "payload": "second"})
        # Had the user's broadcast or direct reached /admins, it would have come first.
        assert (await other.recv())["payload"]["payload"] == "second"


async def test_the_admin_route_is_off_without_a_token():
    server = RunningServer(REPO / "routes.toml", {"VWS_DEMO_ADMIN_TOKEN": ""})
    try:
        close = await refused(server.url + "/admins?token=")
        assert close.code == 4401
        assert "VWS_DEMO_ADMIN_TOKEN" in close.reason
    finally:
        server.stop()


async def test_a_chat_message_carries_the_name_given_at_connect(demo: RunningServer):
    url = demo.url + "/ws"
    async with await Peer.connect(url + "?name=Ann") as ann, await Peer.connect(url) as bob:
        for peer in (ann, bob):
            await peer.recv()  # welcome
            await peer.call("joinRoom", room="masks")
        await ann.call("chat", {"room": "masks", "text": "it is me", "name": "Mallory"})
        while (frame := await bob.recv())["event"] != "chat":
            pass
        assert frame["payload"]["name"] == "Ann"
