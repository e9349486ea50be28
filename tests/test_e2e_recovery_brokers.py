"""#17 across nodes: ``vws run`` processes sharing a real Redis, then a real NATS; a member that
comes back, to the same node or another, gets every frame it missed, in order, once; a lost
history (Redis flushed, the NATS stream deleted) is told, never a silent gap."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest
import redis.asyncio as aioredis
from apps.scaleout_brokers import PrivateRedis, eventually, health
from conftest import RunningServer
from wsclient import Peer

pytestmark = pytest.mark.anyio

#: A database of its own: the flush test empties it, and nothing else uses it.
REDIS = "redis://127.0.0.1:6379/12"
NATS = "nats://127.0.0.1:4222"

APP = """
[server]
channel_prefix = "{prefix}"

[routes."/ws"]
history_size = 1000
history_ttl = "5m"
rate = "off"

[routes."/ws".rooms."busy"]  # room enough for every frame of its test, however slow the resumes
history_size = 5000

[routes."/ws".events]
echo = "e2e_handlers:echo"
burst = "e2e_handlers:burst"
"""


class Nodes:
    """Two nodes of one app on one broker."""

    def __init__(self, folder: Path, url: str) -> None:
        self.prefix = "rec" + secrets.token_hex(4)
        self.url = url
        config = folder / "routes.toml"
        config.write_text(APP.format(prefix=self.prefix))
        self.config = config
        self.nodes = [RunningServer(config, {"VWS_BACKPLANE": url})]
        self.nodes.append(RunningServer(config, {"VWS_BACKPLANE": url}))

    def ws(self, index: int) -> str:
        return self.nodes[index].url + "/ws"

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


@pytest.fixture(params=["redis", "nats"])
def nodes(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Nodes]:
    running = Nodes(tmp_path, REDIS if request.param == "redis" else NATS)
    yield running
    running.stop()


async def connect(url: str) -> Peer:
    """A client that reads ahead without bound: the senders here leave their own frames
    unread, and a bounded queue would hold up their closing handshake behind them."""
    return await Peer.connect(url, max_queue=None)


async def joined(peer: Peer, room: str, since: dict[str, Any] | None = None) -> dict[str, Any]:
    return await peer.call("joinRoom", room=room, **({} if since is None else {"since": since}))


def position_of(frame: dict[str, Any]) -> dict[str, Any]:
    return {"offset": frame["offset"], "epoch": frame["epoch"]}


@pytest.mark.parametrize("back_to", [0, 1], ids=["same-node", "other-node"])
async def test_a_member_away_for_100_frames_gets_all_of_them_in_order(nodes: Nodes, back_to: int):
    async with await connect(nodes.ws(1)) as sender:
        await joined(sender, "r")
        await sender.call("burst", {"count": 3, "room": "r"})
        async with await connect(nodes.ws(0)) as member:
            # a join of a room with a history is acked once the node hears the room: its
            # position is where it stands, whatever was in flight
            ack = await joined(member, "r")
            since = {"offset": ack["offset"], "epoch": ack["epoch"]}
        assert await sender.call("burst", {"count": 100, "room": "r"}) == 100
        async with await connect(nodes.ws(back_to)) as back:
            resumed = await joined(back, "r", since)
            frames = list(back.before)
            # what the broker had not positioned yet when the history was read comes live
            while not frames or frames[-1]["payload"] != 99:  # only the burst of 100 has 99
                frames.append(await back.recv())
    assert resumed["recovered"] is True
    # the 100, after what of the first 3 the member's ack had not counted yet
    assert [f["payload"] for f in frames][-100:] == list(range(100))
    offsets = [f["offset"] for f in frames]
    assert offsets == list(range(since["offset"] + 1, since["offset"] + 1 + len(frames)))


async def test_frames_sent_during_the_replay_arrive_after_it_none_lost_or_twice(nodes: Nodes):
    """Five clients resume one after another while the room keeps getting frames: each sees
    every offset after its position exactly once, the replay's and the live ones joined."""
    async with await connect(nodes.ws(1)) as sender:
        await joined(sender, "busy")
        await sender.call("burst", {"count": 1, "room": "busy"})
        since = position_of(await last_of(sender, 1))
        await sender.call("burst", {"count": 300, "room": "busy"})
        last = since["offset"] + 300 + 50 * 20
        results: list[tuple[bool, list[int]]] = []

        async def resume() -> None:
            async with await connect(nodes.ws(0)) as back:
                ack = await joined(back, "busy", since)
                seen = [f["offset"] for f in back.before]
                while not seen or seen[-1] < last:
                    seen.append((await back.recv())["offset"])
                results.append((ack["recovered"], seen))

        async with anyio.create_task_group() as group:

            async def keep_sending() -> None:
                for _ in range(50):
                    await sender.call("burst", {"count": 20, "room": "busy"})

            group.start_soon(keep_sending)
            for _ in range(5):
                group.start_soon(resume)
                await anyio.lowlevel.checkpoint()  # each resume starts at another moment
    expected = list(range(since["offset"] + 1, last + 1))
    assert [recovered for recovered, _ in results] == [True] * 5
    for _, seen in results:
        assert seen == expected


async def last_of(peer: Peer, count: int) -> dict[str, Any]:
    """The last of the ``count`` frames a burst sent ``peer`` (some came before its ack, the
    rest come through the broker after it)."""
    frames = list(peer.before)
    while len(frames) < count:
        frames.append(await peer.recv())
    return frames[count - 1]


async def test_a_lost_history_is_a_new_epoch_and_recovered_false(nodes: Nodes):
    async with await connect(nodes.ws(0)) as sender:
        await joined(sender, "gone")
        await sender.call("burst", {"count": 5, "room": "gone"})
        since = position_of(await last_of(sender, 5))
    await lose_history(nodes)
    async with await connect(nodes.ws(1)) as sender:
        await joined(sender, "gone")
        await sender.call("burst", {"count": 1, "room": "gone"})
        fresh = await last_of(sender, 1)
        assert fresh["offset"] == 1 and fresh["epoch"] != since["epoch"]
        async with await connect(nodes.ws(0)) as back:
            ack = await joined(back, "gone", since)
            assert back.before == []
    assert ack == {"room": "gone", "recovered": False, **position_of(fresh)}


async def test_an_offset_beyond_the_history_is_not_recovered(nodes: Nodes):
    async with await connect(nodes.ws(0)) as sender:
        await joined(sender, "ahead")
        await sender.call("burst", {"count": 2, "room": "ahead"})
        now = position_of(await last_of(sender, 2))
        async with await connect(nodes.ws(1)) as back:
            ack = await joined(back, "ahead", {**now, "offset": now["offset"] + 10})
    assert ack == {"room": "ahead", "recovered": False, **now}


async def lose_history(nodes: Nodes) -> None:
    """What an operator's accident does: Redis flushed, or the NATS history stream deleted."""
    if nodes.url.startswith("redis"):
        client = aioredis.Redis.from_url(nodes.url)
        try:
            await client.flushdb()
        finally:
            await client.aclose()
        return
    import nats

    connection = await nats.connect(nodes.url)
    try:
        js = connection.jetstream()
        streams = [info.config.name for info in await js.streams_info()]
        ours = [name for name in streams if name and nodes.prefix in name]
        assert ours, streams
        for name in ours:
            await js.delete_stream(name)
    finally:
        await connection.close()


async def test_with_the_broker_gone_a_room_with_a_history_still_hears_its_node(tmp_path: Path):
    """Positions come from the broker; while it is out of reach, the members on the sending
    node still get the room's frames, live and without a position (so in no history, and no
    gap in anyone's positions), and once it is back frames are positioned again."""
    broker = PrivateRedis().start()
    node = None
    try:
        config = tmp_path / "routes.toml"
        config.write_text(APP.format(prefix="out" + secrets.token_hex(4)))
        node = RunningServer(config, {"VWS_BACKPLANE": broker.url})
        url = node.url + "/ws"
        async with await connect(url) as a, await connect(url) as b:
            await joined(a, "h")
            await joined(b, "h")
            await a.call("burst", {"count": 1, "room": "h"})
            before = await last_of(b, 1)
            broker.kill()
            await eventually(lambda: health(node.http)["status"] == "degraded")
            await a.call("burst", {"count": 1, "room": "h"})
            during = await b.recv()
            assert during["payload"] == 0 and "offset" not in during
            broker.start()
            await eventually(lambda: health(node.http)["status"] == "ok", timeout=30)
            await a.call("burst", {"count": 1, "room": "h"})
            after = await b.recv()
        # the private broker kept nothing: a new history, told by its epoch
        assert after["offset"] == 1 and after["epoch"] != before["epoch"]
    finally:
        if node is not None:
            node.stop()
        broker.close()
