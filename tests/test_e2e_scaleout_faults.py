"""Broker faults under real ``vws run`` nodes, each on a private broker the test may kill:
local delivery never stops, cross-node delivery comes back by itself, and losses are counted."""

from __future__ import annotations

import asyncio
import signal
import time

import pytest
import redis
from apps.scaleout_brokers import PrivateBroker, PrivateNats, PrivateRedis, eventually, health
from test_e2e_scaleout import Cluster, until_room_reaches
from wsclient import Peer

pytestmark = pytest.mark.anyio

#: Settings that make the faults show within a test's patience (see docs/scaling.md).
FAST = {"node_timeout": 2.0, "publish_timeout": 1.0, "reconnect_max_delay": 1.0}
#: Frames per second the tests send while the broker is away.
RATE = 20


async def traffic(sender: Peer, local: Peer, room: str, seconds: float) -> int:
    """Send to ``room`` for ``seconds``; ``local`` (on the sender's node) gets every frame."""
    end = time.monotonic() + seconds
    sent = 0
    while time.monotonic() < end:
        await sender.call("to_room", {"event": "during", "room": room, "payload": sent})
        assert await local.recv() == {"event": "during", "payload": sent}
        sent += 1
        await asyncio.sleep(1 / RATE)  # the traffic's rate, not a wait for anything
    return sent


async def resumed(sender: Peer, receiver: Peer, room: str) -> None:
    """Cross-node delivery works again: skip what arrived from before, then probe."""
    await eventually(lambda: _drained(receiver), timeout=30)
    await until_room_reaches(sender, room, [receiver])


async def _drained(peer: Peer) -> bool:
    try:
        while (await peer.recv(timeout=0.3))["event"] in ("during", "probe"):
            pass
    except TimeoutError:
        return True
    return False


def _broker(kind: str) -> PrivateBroker:
    return PrivateRedis() if kind == "redis" else PrivateNats()


@pytest.mark.parametrize(
    ("kind", "outage"),
    [("redis", 2), ("redis", 10), ("nats", 2)],
    ids=["redis-2s", "redis-10s", "nats-2s"],
)
async def test_the_broker_goes_away_during_traffic_and_comes_back(tmp_path, kind, outage):
    broker = _broker(kind).start()
    cluster = None
    try:
        cluster = Cluster(tmp_path, broker.url, count=2, **FAST)
        a, a2, b = await cluster.peer(0), await cluster.peer(0), await cluster.peer(1)
        for peer in (a, a2, b):
            await peer.call("joinRoom", room="r")
        await until_room_reaches(a, "r", [a2, b])

        broker.kill()
        await eventually(lambda: health(cluster.nodes[0].http)["status"] == "degraded")
        await traffic(a, a2, "r", outage)  # local delivery goes on all along
        broker.start()

        await eventually(lambda: health(cluster.nodes[0].http)["status"] == "ok", timeout=30)
        await resumed(a, b, "r")
        await a2.call("echo", "drain")
        report = health(cluster.nodes[0].http)["backplane"]
        assert report["dropped"] > 0  # what could not cross was counted
        assert report["reconnects"] >= 1

        async def direct() -> bool:  # the client registry is whole again
            return await b.call("to", {"id": a.id, "event": "dm"})

        await eventually(direct)
        assert (await a.recv())["event"] == "dm"
        assert "not published" in cluster.nodes[0].log()

        async def everyone_present() -> bool:  # the broker kept nothing: the nodes wrote again
            return (await b.call("presence", "r"))["count"] == 3

        await eventually(everyone_present)
    finally:
        if cluster is not None:
            cluster.stop()
        broker.close()


async def test_a_subscriber_killed_by_redis_comes_back(tmp_path):
    broker = PrivateRedis().start()
    cluster = None
    try:
        cluster = Cluster(tmp_path, broker.url, count=2, **FAST)
        a, b = await cluster.peer(0), await cluster.peer(1)
        for peer in (a, b):
            await peer.call("joinRoom", room="r")
        await until_room_reaches(a, "r", [b])
        admin = redis.Redis(port=broker.port)
        try:
            assert admin.client_kill_filter(_type="pubsub") == 2
        finally:
            admin.close()
        await eventually(lambda: health(cluster.nodes[1].http)["backplane"]["reconnects"] >= 1)
        await until_room_reaches(a, "r", [b])
        await until_room_reaches(b, "r", [a])
    finally:
        if cluster is not None:
            cluster.stop()
        broker.close()


async def test_nodes_started_before_the_broker_join_when_it_appears(tmp_path):
    broker = PrivateRedis()  # not started yet
    cluster = None
    try:
        cluster = Cluster(tmp_path, broker.url, count=2, **FAST)
        assert health(cluster.nodes[0].http)["status"] == "degraded"
        a, a2, b = await cluster.peer(0), await cluster.peer(0), await cluster.peer(1)
        for peer in (a, a2, b):
            await peer.call("joinRoom", room="r")
        await a.call("to_room", {"event": "local", "room": "r"})
        assert await a2.recv() == {"event": "local", "payload": None}  # serving meanwhile
        broker.start()
        for node in cluster.nodes:
            await eventually(lambda n=node: health(n.http)["status"] == "ok", timeout=30)
        await resumed(a, b, "r")
    finally:
        if cluster is not None:
            cluster.stop()
        broker.close()


async def test_a_node_killed_outright_leaves_the_others_working(tmp_path):
    broker = PrivateRedis().start()
    cluster = None
    try:
        cluster = Cluster(tmp_path, broker.url, count=3, **FAST)
        a, b, c = [await cluster.peer(i) for i in (0, 1, 2)]
        for peer in (a, b, c):
            await peer.call("joinRoom", room="r")
        await until_room_reaches(a, "r", [b, c])
        assert (await a.call("presence", "r"))["count"] == 3

        cluster.nodes[2].stop(signal.SIGKILL)
        await a.call("to_room", {"event": "after", "room": "r"})
        assert await b.recv() == {"event": "after", "payload": None}

        async def forgotten() -> bool:  # its client and its presence go with it
            gone = not await a.call("to", {"id": c.id, "event": "dm"})
            return gone and (await b.call("presence", "r"))["count"] == 2

        await eventually(forgotten, timeout=15)
        await b.call("broadcast", {"event": "still", "payload": 1})
        assert await a.recv() == {"event": "still", "payload": 1}
    finally:
        if cluster is not None:
            cluster.stop()
        broker.close()
