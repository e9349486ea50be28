"""Three ``vws run`` processes sharing one real Redis, then one real NATS: every way to send
behaves as on one node, nothing arrives twice, and a node listens only to its own rooms."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from apps.scaleout_brokers import (
    SHARED_NATS,
    SHARED_REDIS,
    PrivateNats,
    drop_nats_buckets_now,
    eventually,
    health,
)
from conftest import RunningServer
from wsclient import Peer

from vws.backplane import BackplaneOptions
from vws.backplane.nats import NatsBackplane
from vws.backplane.redis import RedisBackplane

pytestmark = pytest.mark.anyio

SCALE_APP = """
[server]
channel_prefix = "{prefix}"
{settings}

[plugins]
load = ["presence"]

[routes."/ws".events]
echo = "e2e_handlers:echo"
to_room = "e2e_handlers:to_room"
to = "e2e_handlers:to"
broadcast = "e2e_handlers:broadcast"
node = "scaleout_handlers:node"
presence = "vws.contrib.presence:list_members"

[routes."/other".events]
echo = "e2e_handlers:echo"
broadcast = "e2e_handlers:broadcast"
node = "scaleout_handlers:node"

[routes."/private"]
broadcast = "route"
[routes."/private".events]
echo = "e2e_handlers:echo"
broadcast = "e2e_handlers:broadcast"
node = "scaleout_handlers:node"
"""


class Cluster:
    """Three nodes of one app on one broker."""

    def __init__(self, folder: Path, url: str, count: int = 3, **settings: float) -> None:
        self.url = url
        self.prefix = "e2e" + secrets.token_hex(5)
        self.config = folder / "routes.toml"
        lines = "\n".join(f"{key} = {value}" for key, value in settings.items())
        self.config.write_text(SCALE_APP.format(prefix=self.prefix, settings=lines))
        self.nodes: list[RunningServer] = []
        try:
            for _ in range(count):
                self.add()
        except BaseException:
            self.stop()
            raise

    def add(self) -> RunningServer:
        node = RunningServer(self.config, {"VWS_BACKPLANE": self.url})
        self.nodes.append(node)
        return node

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    async def peer(self, index: int, path: str = "/ws") -> Peer:
        return await Peer.connect(self.nodes[index].url + path)


@pytest.fixture(scope="module", params=["redis", "nats"])
def cluster(request: pytest.FixtureRequest, tmp_path_factory) -> Iterator[Cluster]:
    url = SHARED_REDIS if request.param == "redis" else SHARED_NATS
    running = Cluster(tmp_path_factory.mktemp(request.param), url)
    yield running
    running.stop()
    if url.startswith("nats:"):
        drop_nats_buckets_now(url, running.prefix)


async def until_room_reaches(sender: Peer, room: str, receivers: list[Peer]) -> None:
    """Probe ``room`` from ``sender`` until every receiver hears it, then read what is left of
    the probes, so the room's subscriptions are in place on every node and nothing is pending.
    (Joining subscribes in the background: pub/sub only carries what is sent afterwards.)"""
    heard = [False] * len(receivers)
    sent = 0
    while not all(heard):
        assert sent < 100, "the room never reached every node"
        sent += 1
        await sender.call("to_room", {"event": "probe", "room": room, "payload": sent})
        for i, receiver in enumerate(receivers):
            if heard[i]:
                continue
            try:
                frame = await receiver.recv(timeout=0.2)
            except TimeoutError:
                continue
            assert frame["event"] == "probe"
            heard[i] = frame["payload"]
    for i, receiver in enumerate(receivers):
        last = heard[i]
        while last != sent:
            frame = await receiver.recv()
            assert frame == {"event": "probe", "payload": last + 1}, "a probe came twice"
            last = frame["payload"]


async def test_to_room_reaches_the_members_on_every_node_exactly_once(cluster):
    a, b, c, d = [await cluster.peer(i) for i in (0, 1, 2, 0)]
    outsider = await cluster.peer(1)
    room = "lobby-" + secrets.token_hex(3)
    for peer in (a, b, c, d):
        await peer.call("joinRoom", room=room)
    await until_room_reaches(a, room, [b, c, d])
    await a.nothing_pending()  # its own probes reached it once, on the local path

    for i in range(20):
        await a.call("to_room", {"event": "chat", "room": room, "payload": i})
    expected = [{"event": "chat", "payload": i} for i in range(20)]
    for peer in (b, c, d):
        assert [await peer.recv() for _ in range(20)] == expected  # in order, each once
        await peer.nothing_pending()
    await outsider.nothing_pending()
    for peer in (a, b, c, d, outsider):
        await peer.ws.close()


async def test_to_finds_a_client_on_another_node_and_unknown_ids_are_false(cluster):
    a = await cluster.peer(0)
    b = await cluster.peer(2)

    async def sent() -> bool:
        return await a.call("to", {"id": b.id, "event": "dm", "payload": "hi"})

    assert await eventually(sent)
    assert await b.recv() == {"event": "dm", "payload": "hi"}
    await b.nothing_pending()
    assert await a.call("to", {"id": "no-such-client", "event": "dm"}) is False
    await b.ws.close()

    async def refused() -> bool:
        return not await a.call("to", {"id": b.id, "event": "dm"})

    await eventually(refused)
    await a.ws.close()


async def test_broadcast_crosses_nodes_and_paths_but_not_route_domains(cluster):
    a, b, c = [await cluster.peer(i) for i in (0, 1, 2)]
    o = await cluster.peer(1, "/other")
    p, q = await cluster.peer(0, "/private"), await cluster.peer(2, "/private")
    for peer in (b, c, o):  # every node knows of the others before the broadcast
        await peer.nothing_pending()
    await a.call("broadcast", {"event": "news", "payload": 1})
    for peer in (b, c, o):
        assert await peer.recv() == {"event": "news", "payload": 1}
    await p.call("broadcast", {"event": "inside", "payload": 2})
    assert await q.recv() == {"event": "inside", "payload": 2}
    for peer in (a, b, c, o, p, q):
        await peer.nothing_pending()  # once each, and never across a route domain
    for peer in (a, b, c, o, p, q):
        await peer.ws.close()


async def test_presence_lists_the_members_of_every_node(cluster):
    room = "presence-" + secrets.token_hex(3)
    peers = [await cluster.peer(i) for i in (0, 1, 2)]
    for peer in peers:
        await peer.call("joinRoom", room=room)
    answer = await peers[0].call("presence", room)
    assert answer["count"] == 3
    assert sorted(m["client_id"] for m in answer["members"]) == sorted(p.id for p in peers)
    await peers[2].ws.close()

    async def two_left() -> bool:
        return (await peers[1].call("presence", room))["count"] == 2

    await eventually(two_left)
    for peer in peers[:2]:
        await peer.ws.close()


@pytest.mark.parametrize("cluster", ["redis"], indirect=True)  # NATS: the test below
async def test_redis_subscribes_only_to_rooms_with_local_members_and_leaves_on_disconnect(
    cluster,
):
    room = "subs-" + secrets.token_hex(3)
    names = RedisBackplane("probe", SHARED_REDIS)
    names.configure(BackplaneOptions(channel_prefix=cluster.prefix))
    channel = names.room_channel("/ws", room)
    inspect = aioredis.Redis.from_url(SHARED_REDIS)
    try:

        async def subscribers(count: int) -> bool:
            return (await inspect.pubsub_numsub(channel))[0][1] == count

        b1, b2, c = await cluster.peer(1), await cluster.peer(1), await cluster.peer(2)
        for peer in (b1, b2, c):
            await peer.call("joinRoom", room=room)
        await eventually(lambda: subscribers(2))  # nodes 1 and 2, once each; never node 0
        await b1.ws.close()
        await c.nothing_pending()
        assert await subscribers(2)  # node 1 still has b2
        await b2.ws.close()
        await c.ws.close()
        await eventually(lambda: subscribers(0))
    finally:
        await inspect.aclose()


async def test_health_names_the_node_and_the_backplane_state(cluster):
    a = await cluster.peer(1)
    report = health(cluster.nodes[1].http)
    assert report["status"] == "ok"
    assert report["node"] == await a.call("node")
    assert report["backplane"]["state"] == "ok"
    assert report["backplane"]["url"] == cluster.url.split("://")[0] + "://"
    await a.ws.close()


async def test_nats_subscribes_only_to_rooms_with_local_members(tmp_path):
    broker = PrivateNats().start()
    cluster = None
    try:
        cluster = Cluster(tmp_path, broker.url, count=2)
        names = NatsBackplane("probe", broker.url)
        names.configure(BackplaneOptions(channel_prefix=cluster.prefix))
        subject = names.room_channel("/ws", "a.*>")

        a, b = await cluster.peer(1), await cluster.peer(1)
        for peer in (a, b):
            await peer.call("joinRoom", room="a.*>")
        await eventually(lambda: broker.subjects().count(subject) == 1)
        await a.ws.close()
        await b.nothing_pending()
        assert broker.subjects().count(subject) == 1
        await b.ws.close()
        await eventually(lambda: subject not in broker.subjects())
        assert not any(".room." in s for s in broker.subjects())
    finally:
        if cluster is not None:
            cluster.stop()
        broker.close()
