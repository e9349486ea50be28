"""#17 end to end: a client that reconnects to a room with a history gets what it missed, in
order, none twice, then the live frames — on a real ``vws run``, in memory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from conftest import RunningServer
from wsclient import Peer

pytestmark = pytest.mark.anyio

APP = """
[routes."/ws"]
history_size = {size}
history_ttl = "{ttl}"
history_skip = ["typing"]
rate = "off"

[routes."/ws".rooms."plain-*"]
history_size = 0

[routes."/ws".events]
echo = "e2e_handlers:echo"
burst = "e2e_handlers:burst"
to_room = "e2e_handlers:to_room"
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    config = tmp_path_factory.mktemp("recovery") / "routes.toml"
    config.write_text(APP.format(size=500, ttl="5m"))
    running = RunningServer(config)
    yield running
    running.stop()


async def read_seq(peer: Peer, count: int) -> list[dict[str, Any]]:
    return [await peer.recv() for _ in range(count)]


async def test_a_client_back_after_a_disconnect_gets_all_it_missed_in_order(
    server: RunningServer,
):
    url = server.url + "/ws"
    async with await Peer.connect(url) as sender:
        await sender.call("joinRoom", room="r")
        async with await Peer.connect(url) as member:
            joined = await member.call("joinRoom", room="r")
            assert set(joined) == {"room", "offset", "epoch"}
            since = {"offset": joined["offset"], "epoch": joined["epoch"]}
        assert await sender.call("burst", {"count": 100, "room": "r"}) == 100
        async with await Peer.connect(url) as back:
            ack = await back.call("joinRoom", room="r", since=since)
            replayed = back.before
        # a room that had no frame yet had no epoch: (0, "") resumes from its first frame
        epoch = since["epoch"] or replayed[0]["epoch"]
        assert ack == {
            "room": "r",
            "recovered": True,
            "offset": since["offset"] + 100,
            "epoch": epoch,
        }
        assert [f["payload"] for f in replayed] == list(range(100))
        offsets = [f["offset"] for f in replayed]
        assert offsets == list(range(since["offset"] + 1, since["offset"] + 101))
        assert {f["room"] for f in replayed} == {"r"}
        assert {f["epoch"] for f in replayed} == {epoch}


async def test_frames_sent_during_the_replay_follow_it_with_no_gap_and_none_twice(
    server: RunningServer,
):
    url = server.url + "/ws"
    async with await Peer.connect(url) as sender:
        first = await sender.call("joinRoom", room="busy")
        since = {"offset": first["offset"], "epoch": first["epoch"]}
        await sender.call("burst", {"count": 200, "room": "busy"})
        async with await Peer.connect(url) as back, anyio.create_task_group() as group:
            # the sender keeps sending while the resume is under way
            async def keep_sending() -> None:
                for _ in range(20):
                    await sender.call("burst", {"count": 10, "room": "busy"})

            group.start_soon(keep_sending)
            await back.call("joinRoom", room="busy", since=since)
            seen = [f["offset"] for f in back.before]
            last = since["offset"] + 200 + 200
            while not seen or seen[-1] < last:
                seen.append((await back.recv())["offset"])
        assert seen == list(range(since["offset"] + 1, last + 1))


async def test_a_resume_that_cannot_be_recovered_says_so_with_the_current_position(
    server: RunningServer,
):
    url = server.url + "/ws"
    async with await Peer.connect(url) as sender:
        ack = await sender.call("joinRoom", room="lost")
        await sender.call("burst", {"count": 3, "room": "lost"})
        epoch = sender.before[-1]["epoch"]
        now = {"room": "lost", "recovered": False, "offset": ack["offset"] + 3, "epoch": epoch}
        async with await Peer.connect(url) as back:
            beyond = {"offset": ack["offset"] + 50, "epoch": epoch}
            assert await back.call("joinRoom", room="lost", since=beyond) == now
            assert back.before == []
        async with await Peer.connect(url) as back:
            other = {"offset": 1, "epoch": "another-epoch"}
            assert await back.call("joinRoom", room="lost", since=other) == now
        async with await Peer.connect(url) as back:  # the whole history, from its first frame
            whole = await back.call("joinRoom", room="lost", since={"offset": 0, "epoch": ""})
            assert whole["recovered"] is True and len(back.before) == 3
        async with await Peer.connect(url) as back:
            reply = await back.request("joinRoom", room="lost", since={"offset": "x"})
            assert reply["payload"]["code"] == "bad_frame"


async def test_rooms_without_a_history_carry_no_position(server: RunningServer):
    url = server.url + "/ws"
    async with await Peer.connect(url) as a:
        assert await a.call("joinRoom", room="plain-1") == {"room": "plain-1"}
        await a.call("to_room", {"event": "x", "room": "plain-1"})
        assert a.before == [{"event": "x", "payload": None}]
        back = await a.call("joinRoom", room="plain-2", since={"offset": 1, "epoch": "e"})
        assert back == {"room": "plain-2", "recovered": False}


async def test_the_history_is_bounded_by_its_size(tmp_path: Path):
    config = tmp_path / "routes.toml"
    config.write_text(APP.format(size=10, ttl="5m"))
    small = RunningServer(config)
    try:
        async with await Peer.connect(small.url + "/ws") as sender:
            ack = await sender.call("joinRoom", room="r")
            await sender.call("burst", {"count": 30, "room": "r"})
            epoch = sender.before[-1]["epoch"]
            async with await Peer.connect(small.url + "/ws") as back:
                recent = {"offset": ack["offset"] + 25, "epoch": epoch}
                resumed = await back.call("joinRoom", room="r", since=recent)
                assert resumed["recovered"] is True
                assert [f["payload"] for f in back.before] == [25, 26, 27, 28, 29]
            async with await Peer.connect(small.url + "/ws") as back:
                old = {"offset": ack["offset"] + 5, "epoch": epoch}
                assert (await back.call("joinRoom", room="r", since=old))["recovered"] is False
                assert back.before == []
    finally:
        small.stop()


async def test_events_in_history_skip_go_live_only_without_a_position(server: RunningServer):
    url = server.url + "/ws"
    async with await Peer.connect(url) as sender:
        await sender.call("joinRoom", room="skips")
        await sender.call("to_room", {"event": "typing", "room": "skips"})
        (typing,) = sender.before
        await sender.call("to_room", {"event": "kept", "room": "skips"})
        (kept,) = sender.before
        assert typing == {"event": "typing", "payload": None}
        assert kept["offset"] >= 1
        async with await Peer.connect(url) as back:
            ack = await back.call("joinRoom", room="skips", since={"offset": 0, "epoch": ""})
            assert ack["recovered"] is True
            assert [f["event"] for f in back.before] == ["kept"]
