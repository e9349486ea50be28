"""The presence plugin: member lists on request and from Python, join/leave notices, its limit,
and members seen across nodes through the backplane's shared hashes."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
import pytest
from wsclient import Peer

from vws.config import parse_config
from vws.contrib import presence
from vws.contrib.auth import mint
from vws.hooks import Hooks, create_manager
from vws.routing import compile_table
from vws.runtime.client import Client
from vws.runtime.node import Server
from vws.runtime.outbox import Outbox

pytestmark = pytest.mark.anyio

SECRET = "presence-test-secret-0123456789abcdef"

APP = f"""
[plugins]
load = ["auth", "presence"]

[plugins.settings.auth]
secret = "{SECRET}"
require_exp = false

[plugins.settings.presence]
notify = true
info = {{ user = "claims.sub" }}
max_members = 2

[routes."/ws".events]
presence = "vws.contrib.presence:list_members"
who = "plugin_handlers:who"
echo = "e2e_handlers:echo"
"""


def url_for(server: Any, user: str) -> str:
    return f"{server.url}/ws?token={mint({'sub': user}, SECRET)}"


async def test_members_on_request_from_python_and_notices(start_server):
    server = start_server(APP)
    async with (
        await Peer.connect(url_for(server, "ann")) as ann,
        await Peer.connect(url_for(server, "bob")) as bob,
    ):
        await ann.call("joinRoom", room="lobby")
        # the joiner is a member too, so it hears its own join before the ack
        assert ann.before == [
            {
                "event": "presence:join",
                "payload": {"room": "lobby", "member": {"client_id": ann.id, "user": "ann"}},
            }
        ]
        await bob.call("joinRoom", room="lobby")
        assert await ann.recv() == {
            "event": "presence:join",
            "payload": {"room": "lobby", "member": {"client_id": bob.id, "user": "bob"}},
        }
        listed = await ann.call("presence", "lobby")
        assert listed == {
            "room": "lobby",
            "count": 2,
            "members": sorted(
                [{"client_id": ann.id, "user": "ann"}, {"client_id": bob.id, "user": "bob"}],
                key=lambda m: m["client_id"],
            ),
        }
        assert await bob.call("presence", {"room": "lobby"}) == listed
        assert sorted(await ann.call("who", "lobby")) == ["ann", "bob"]

        await bob.call("leftRoom", room="lobby")
        assert await ann.recv() == {
            "event": "presence:leave",
            "payload": {"room": "lobby", "member": {"client_id": bob.id, "user": "bob"}},
        }
        assert (await ann.call("presence", "lobby"))["count"] == 1

        await bob.call("joinRoom", room="lobby")
        assert (await ann.recv())["event"] == "presence:join"
        await bob.ws.close()  # a disconnect leaves every room, and the room is told
        assert await ann.recv() == {
            "event": "presence:leave",
            "payload": {"room": "lobby", "member": {"client_id": bob.id, "user": "bob"}},
        }
        assert (await ann.call("presence", "lobby"))["members"] == [
            {"client_id": ann.id, "user": "ann"}
        ]


async def test_only_members_may_ask_and_max_members_caps_the_list(start_server):
    server = start_server(APP)
    users = ["u1", "u2", "u3"]
    peers = [await Peer.connect(url_for(server, user)) for user in users]
    try:
        outsider = peers[0]
        reply = await outsider.request("presence", "crowd")
        assert reply["payload"] == {
            "code": "denied",
            "message": "join the room before asking who is in it",
        }
        for peer in peers:
            await peer.call("joinRoom", room="crowd")
        listed = await peers[0].call("presence", "crowd")
        assert listed["count"] == 3
        assert len(listed["members"]) == 2  # max_members = 2
        assert all(m["client_id"] in {p.id for p in peers} for m in listed["members"])
    finally:
        for peer in peers:
            await peer.ws.close()


async def test_without_notify_no_frames_are_sent(start_server):
    server = start_server(APP.replace("notify = true", "notify = false"))
    async with (
        await Peer.connect(url_for(server, "ann")) as ann,
        await Peer.connect(url_for(server, "bob")) as bob,
    ):
        await ann.call("joinRoom", room="quiet")
        await bob.call("joinRoom", room="quiet")
        assert ann.before == [] and bob.before == []
        assert (await bob.call("presence", "quiet"))["count"] == 2
        await ann.nothing_pending()


async def _ignore(text: str) -> None:
    raise AssertionError("these clients have no socket")


class Inbox(Outbox):
    """A client's send queue that keeps what it is given."""

    def __init__(self) -> None:
        super().__init__(_ignore, limit=1000, drop_oldest=False, on_slow=lambda: None)
        self.frames: list[Any] = []

    def put(self, text: str) -> None:
        self.frames.append(msgspec.json.decode(text))


def node(bus: str) -> Server:
    text = (
        f'[server]\nbackplane = "memory://{bus}"\n'
        '[plugins]\nload = ["presence"]\n'
        "[plugins.settings.presence]\nnotify = true\n"
        '[routes."/ws".events]\npresence = "vws.contrib.presence:list_members"\n'
    )
    config = parse_config(text, "routes.toml", environ={})
    return Server(compile_table(config), Hooks(create_manager(config, autoload=False)))


def connect(server: Server) -> Client:
    client = Client(server, "/ws", {"headers": [], "query_string": b""})
    client.outbox = Inbox()
    server.hub.register(client.client_id, client.path, client.outbox)
    return client


async def test_members_and_notices_hold_across_nodes():
    bus = f"presence-{uuid.uuid4().hex}"
    one, two = node(bus), node(bus)
    await one.start()
    await two.start()
    try:
        ann, bob = connect(one), connect(two)
        assert await one.join(ann, "hall")
        assert await two.join(bob, "hall")
        ids = sorted([ann.client_id, bob.client_id])
        for asker in (ann, bob):  # each node sees the other's member
            assert [m["client_id"] for m in await presence.members(asker, "hall")] == ids
        assert ann.outbox.frames[-1] == {  # type: ignore[union-attr]
            "event": "presence:join",
            "payload": {"room": "hall", "member": {"client_id": bob.client_id, "user": None}},
        }
        assert await two.leave(bob, "hall")
        assert [m["client_id"] for m in await presence.members(ann, "hall")] == [ann.client_id]
        assert ann.outbox.frames[-1]["event"] == "presence:leave"  # type: ignore[union-attr]
        # rooms are per path, so the same room name on another path is another member list
        assert presence.room_key("/ws", "hall") != presence.room_key("/other", "hall")
        assert presence.room_key("/a:b", "c") != presence.room_key("/a", "b:c")
    finally:
        await one.stop()
        await two.stop()
