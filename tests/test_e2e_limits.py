"""The amplification guards and the connection settings of ``[server]``, on a real ``vws run``:
members per room, rooms per node, frames per handler call, the idle timeout and the client
address behind a trusted proxy."""

from __future__ import annotations

import pytest
import websockets
from conftest import ServerFactory
from wsclient import Peer

pytestmark = pytest.mark.anyio

APP = """
[server]
{settings}

[routes."/ws".events]
echo = "hardening:echo"
shout = "hardening:shout"
"""


async def test_a_full_room_refuses_the_next_member(start_server: ServerFactory):
    server = start_server(APP.format(settings="max_room_members = 2"))
    peers = [await Peer.connect(server.url + "/ws") for _ in range(3)]
    try:
        for peer in peers[:2]:
            await peer.call("joinRoom", room="small")
        refused = await peers[2].request("joinRoom", room="small")
        assert refused["payload"]["code"] == "room_full"
        await peers[0].call("leftRoom", room="small")
        await peers[2].call("joinRoom", room="small")  # a place came free
    finally:
        for peer in peers:
            await peer.ws.close()


async def test_the_node_holds_at_most_max_rooms(start_server: ServerFactory):
    server = start_server(APP.format(settings="max_rooms = 2"))
    async with (
        await Peer.connect(server.url + "/ws") as a,
        await Peer.connect(server.url + "/ws") as b,
    ):
        await a.call("joinRoom", room="one")
        await a.call("joinRoom", room="two")
        refused = await a.request("joinRoom", room="three")
        assert refused["payload"]["code"] == "too_many_rooms"
        await b.call("joinRoom", room="one")  # an existing room is no new room


async def test_one_handler_call_fans_out_at_most_max_fanout_frames(start_server: ServerFactory):
    server = start_server(APP.format(settings="max_fanout = 10"))
    async with (
        await Peer.connect(server.url + "/ws") as a,
        await Peer.connect(server.url + "/ws") as b,
    ):
        await a.call("joinRoom", room="r")
        await b.call("joinRoom", room="r")
        assert await a.call("shout", {"room": "r", "times": 5}) is None  # 10 frames: allowed
        refused = await a.request("shout", {"room": "r", "times": 6})
        assert refused["payload"]["code"] == "handler_error"
        assert len([f for f in a.before if f["event"] == "shout"]) == 5  # the sixth was dropped
    assert "max_fanout" in server.log()


async def test_a_silent_client_is_closed_after_idle_timeout(start_server: ServerFactory):
    server = start_server(APP.format(settings="idle_timeout = 0.5\nping_interval = 0"))
    async with await Peer.connect(server.url + "/ws") as quiet:
        code, _ = await quiet.closed(timeout=5)
    assert code == 1001


FAST = """
[routes."/fast"]
rate = "1000/s"
burst = 100
[routes."/fast".events]
echo = "hardening:echo"
"""


async def test_the_rate_limit_applies_per_route(start_server: ServerFactory):
    server = start_server(APP.format(settings='rate = "1/s"\nburst = 2') + FAST)
    async with (
        await Peer.connect(server.url + "/ws") as slow,
        await Peer.connect(server.url + "/fast") as fast,
    ):
        codes = [(await slow.request("echo", n))["event"] for n in range(3)]
        assert codes == ["ack", "ack", "error"]
        assert [(await fast.request("echo", n))["event"] for n in range(20)] == ["ack"] * 20


async def test_the_client_address_comes_from_a_trusted_proxy_header(start_server: ServerFactory):
    server = start_server(
        APP.format(
            settings='proxy_header = "X-Forwarded-For"\ntrusted_proxies = ["127.0.0.1"]\n'
            "max_connections_per_ip = 1"
        )
    )
    url = server.url + "/ws"
    first = await Peer.connect(url, additional_headers={"X-Forwarded-For": "203.0.113.1"})
    other = await Peer.connect(url, additional_headers={"X-Forwarded-For": "203.0.113.2"})
    with pytest.raises(websockets.InvalidStatus) as refused:
        await Peer.connect(url, additional_headers={"X-Forwarded-For": "203.0.113.1"})
    assert refused.value.response.status_code == 503
    await first.ws.close()
    await other.ws.close()
