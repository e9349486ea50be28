"""Broadcast domains and slow consumers, each on a server of its own."""

from __future__ import annotations

import pytest
from wsclient import Peer

pytestmark = pytest.mark.anyio

BROADCAST_APP = """
[routes."/ws".events]
broadcast = "e2e_handlers:broadcast"
echo = "e2e_handlers:echo"
[routes."/other".events]
broadcast = "e2e_handlers:broadcast"
echo = "e2e_handlers:echo"
[routes."/private"]
broadcast = "route"
[routes."/private".events]
broadcast = "e2e_handlers:broadcast"
echo = "e2e_handlers:echo"
"""


async def test_broadcast_skips_the_sender_and_crosses_paths_but_not_private_routes(start_server):
    server = start_server(BROADCAST_APP)
    async with (
        await Peer.connect(server.url + "/ws") as a,
        await Peer.connect(server.url + "/ws") as b,
        await Peer.connect(server.url + "/other") as c,
        await Peer.connect(server.url + "/private") as p,
        await Peer.connect(server.url + "/private") as q,
    ):
        await a.call("broadcast", {"event": "news", "payload": 1})
        assert a.before == []
        assert await b.recv() == {"event": "news", "payload": 1}
        assert await c.recv() == {"event": "news", "payload": 1}
        await p.nothing_pending()
        await q.nothing_pending()

        await p.call("broadcast", {"event": "inside", "payload": 2})
        assert p.before == []
        assert await q.recv() == {"event": "inside", "payload": 2}
        for peer in (a, b, c):
            await peer.nothing_pending()


SLOW_APP = """
[server]
send_queue = 16
slow_consumer = "{policy}"
close_timeout = 30

[routes."/ws".events]
blob = "e2e_handlers:blob"
echo = "e2e_handlers:echo"
to_room = "e2e_handlers:to_room"
"""

BLOB = 256 * 1024


async def test_a_client_that_never_reads_is_disconnected_with_1008(start_server):
    server = start_server(SLOW_APP.format(policy="disconnect"))
    url = server.url + "/ws"
    # max_queue=1: the client library stops reading the socket after one frame
    async with (
        await Peer.connect(url, max_queue=1, max_size=None) as slow,
        await Peer.connect(url, max_size=None) as fast,
    ):
        await slow.call("joinRoom", room="firehose")
        await fast.call("joinRoom", room="firehose")
        sent = 0
        while sent < 2000:
            sent += 1
            still_there = await fast.call(
                "blob", {"room": "firehose", "size": BLOB, "watch": slow.id}
            )
            assert [f["event"] for f in fast.before] == ["blob"]  # fast keeps receiving
            if not still_there:
                break
        assert not still_there, "the slow client was never disconnected"
        assert sent > 16, "given up on before its queue was full"
        await fast.call("to_room", {"event": "after", "room": "firehose"})
        assert fast.before == [{"event": "after", "payload": None}]
        code, frames = await slow.closed(timeout=30)
        assert code == 1008
        assert all(f["event"] in ("blob", "probe") for f in frames)
    assert "not reading: closing with 1008" in server.log()


async def test_drop_oldest_keeps_the_newest_frames_and_the_connection(start_server):
    server = start_server(SLOW_APP.format(policy="drop_oldest"))
    url = server.url + "/ws"
    async with (
        await Peer.connect(url, max_queue=1, max_size=None) as slow,
        await Peer.connect(url, max_size=None) as fast,
    ):
        await slow.call("joinRoom", room="firehose")
        await fast.call("joinRoom", room="firehose")
        total = 200
        for i in range(total):
            await fast.call("blob", {"room": "firehose", "size": BLOB, "i": i})
        seen = []
        while not seen or seen[-1] != total - 1:
            frame = await slow.recv()
            if frame["event"] == "blob":
                seen.append(frame["payload"]["i"])
        assert seen == sorted(seen)
        assert len(seen) < total, "nothing was dropped: the socket never filled"
        assert seen[-16:] == list(range(total - 16, total))  # the newest send_queue frames
        assert await slow.call("echo", "still connected") == "still connected"
