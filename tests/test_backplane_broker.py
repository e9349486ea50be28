"""The Redis and NATS backplanes in one process, against the machine's real brokers.

Each test uses a channel prefix of its own, so tests (and other users of the shared brokers)
never hear each other. Broker faults are in test_e2e_scaleout_faults.py, on private brokers.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Callable

import pytest
import redis.asyncio as aioredis
from apps.scaleout_brokers import (
    SHARED_NATS,
    SHARED_REDIS,
    PrivateRedis,
    drop_nats_buckets,
    drop_redis_keys,
    eventually,
    free_port,
)

from vws.backplane import Backplane, BackplaneOptions, Envelope, Target, create
from vws.backplane.broker import BrokerBackplane
from vws.backplane.wire import Op

pytestmark = pytest.mark.anyio


class Node:
    """A backplane with a receiver and a local client table, as a Server gives it."""

    def __init__(self, url: str, prefix: str, **options: float) -> None:
        self.backplane: BrokerBackplane = create(url, secrets.token_hex(4))  # type: ignore[assignment]
        self.backplane.configure(BackplaneOptions(channel_prefix=prefix, **options))
        self.received: list[Envelope] = []
        self.clients: dict[str, object] = {}

    async def start(self) -> Node:
        await self.backplane.start(self.received.append, self.clients)
        return self

    def texts(self) -> list[str]:
        return [envelope.text for envelope in self.received]


NodeFactory = Callable[..., "Node"]


async def crash(node: Node) -> None:
    """The node's process dies: its tasks stop, its connections drop, it says no goodbye."""
    backplane = node.backplane
    for task in backplane._tasks:
        task.cancel()
    for task in backplane._tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    backplane._tasks = []
    backplane._connected = False
    await backplane._disconnect()


@pytest.fixture(params=["redis", "nats"])
def url(request: pytest.FixtureRequest) -> str:
    return SHARED_REDIS if request.param == "redis" else SHARED_NATS


@pytest.fixture
async def nodes(url: str) -> AsyncIterator[Callable[..., object]]:
    """Start nodes of one app on the shared broker (``nodes(count, **options)``)."""
    prefix = "t" + secrets.token_hex(6)
    started: list[Node] = []

    async def make(count: int = 2, **options: float) -> list[Node]:
        batch = [await Node(url, prefix, **options).start() for _ in range(count)]
        started.extend(batch)
        return batch

    yield make
    for node in started:
        await node.backplane.stop()
    if url.startswith("nats:"):
        await drop_nats_buckets(url, prefix)
    else:
        await drop_redis_keys(url, prefix)


def room(path: str, name: str, text: str, origin: Backplane) -> Envelope:
    return Envelope(Target.ROOM, path, name, "", text, origin.node_id)


async def test_room_envelopes_reach_only_watching_nodes_and_never_come_back(nodes):
    a, b, c = await nodes(3)
    assert a.backplane.state == "ok"
    b.backplane.watch_room("/ws", "lobby")
    c.backplane.watch_room("/ws", "elsewhere")
    a.backplane.watch_room("/ws", "lobby")

    async def delivered() -> bool:
        a.backplane.publish(room("/ws", "lobby", "probe", a.backplane))
        return "probe" in b.texts()

    await eventually(delivered)
    a.backplane.publish(room("/ws", "lobby", "hello", a.backplane))
    a.backplane.publish(room("/other", "lobby", "other path", a.backplane))
    await eventually(lambda: "hello" in b.texts())
    assert a.received == []  # its own publications never come back
    assert c.received == []
    assert "other path" not in b.texts()
    b.backplane.unwatch_room("/ws", "lobby")
    b.received.clear()
    await eventually(lambda: b.backplane.stats()["rooms"] == 0)


async def test_room_names_are_never_patterns(nodes):
    a, b = await nodes(2)
    names = ["*", ">", "a.b", "a.*", "?", "[ab]", "a:b", "%3A", "x y"]
    for name in names:
        b.backplane.watch_room("/ws", name)

    async def all_delivered() -> bool:
        for name in names:
            a.backplane.publish(room("/ws", name, f"to {name}", a.backplane))
        return all(f"to {name}" in b.texts() for name in names)

    await eventually(all_delivered)
    a.backplane.publish(room("/ws", "a", "not watched", a.backplane))
    a.backplane.publish(room("/ws", "a.b", "marker", a.backplane))
    await eventually(lambda: "marker" in b.texts())
    assert "not watched" not in b.texts()
    for envelope in b.received:  # no room heard another's frames
        assert envelope.text in (f"to {envelope.target}", "marker")


async def test_has_client_follows_other_nodes_clients_and_direct_frames_reach_the_owner(nodes):
    a, b, c = await nodes(3)
    b.clients["alice"] = object()
    b.backplane.clients_changed("alice")  # as the hub does
    await eventually(lambda: a.backplane.has_client("alice") and c.backplane.has_client("alice"))
    assert not a.backplane.has_client("nobody")
    a.backplane.publish(Envelope(Target.CLIENT, "", "alice", "", "dm", a.backplane.node_id))
    await eventually(lambda: b.texts() == ["dm"])
    assert c.received == []  # direct frames go to the owner's channel only
    del b.clients["alice"]
    b.backplane.clients_changed("alice")
    await eventually(lambda: not a.backplane.has_client("alice"))


async def test_a_node_that_stops_is_forgotten_at_once(nodes):
    a, b = await nodes(2)
    b.clients["bob"] = object()
    b.backplane.clients_changed("bob")
    await eventually(lambda: a.backplane.has_client("bob"))
    await b.backplane.stop()
    await eventually(lambda: not a.backplane.has_client("bob"), timeout=3)


async def test_a_late_node_learns_every_client_already_connected(nodes):
    (a,) = await nodes(1)
    for i in range(7000):  # more than one announcement chunk
        a.clients[f"c{i}"] = object()
        a.backplane.clients_changed(f"c{i}")
    await eventually(lambda: a.backplane.stats()["published"] >= 3)
    (late,) = await nodes(1)
    await eventually(lambda: all(late.backplane.has_client(f"c{i}") for i in (0, 4999, 6999)))


async def test_broadcasts_reach_every_other_node_once(nodes):
    a, b, c = await nodes(3)
    a.backplane.publish(Envelope(Target.BROADCAST, "", "", "x", "news", a.backplane.node_id))
    await eventually(lambda: b.texts() == ["news"] and c.texts() == ["news"])
    assert a.received == []
    assert b.received[0].exclude == "x"


async def test_shared_hashes_are_seen_by_every_node(nodes):
    a, b = await nodes(2)
    await a.backplane.hash_set("members", "alice", '{"n":1}')
    await b.backplane.hash_set("members", "bob", '{"n":2}')
    await b.backplane.hash_set("other", "carol", "3")
    assert await a.backplane.hash_get_all("members") == {"alice": '{"n":1}', "bob": '{"n":2}'}
    await a.backplane.hash_delete("members", "bob")
    assert await b.backplane.hash_get_all("members") == {"alice": '{"n":1}'}
    assert await b.backplane.hash_get_all("missing") == {}
    await a.backplane.stop()  # a node that stops takes its fields with it
    assert await b.backplane.hash_get_all("members") == {}
    assert await b.backplane.hash_get_all("other") == {"carol": "3"}


@pytest.mark.parametrize("url", ["nats"], indirect=True)
async def test_a_nats_listing_whose_end_marker_never_comes_still_ends(nodes, monkeypatch):
    """The server's pending count can be off while fields are purged; then nats-py's watcher
    sends neither its end marker nor an entry with delta 0. The listing still ends, whole."""
    from nats.js.kv import KeyValue

    a, b = await nodes(2)
    await a.backplane.hash_set("members", "alice", "1")
    await b.backplane.hash_set("members", "bob", "2")
    real_watch = KeyValue.watch

    async def watch_whose_count_is_off(self: KeyValue, *args: object, **kwargs: object):
        watcher = await real_watch(self, *args, **kwargs)
        put = watcher._updates.put

        async def without_end(entry: KeyValue.Entry | None) -> None:
            if entry is not None:
                entry.delta = 1  # the count the server got wrong
                await put(entry)

        watcher._updates.put = without_end
        return watcher

    monkeypatch.setattr(KeyValue, "watch", watch_whose_count_is_off)
    members = await asyncio.wait_for(a.backplane.hash_get_all("members"), timeout=10)
    assert members == {"alice": "1", "bob": "2"}


async def test_fields_of_a_node_that_died_are_removed(nodes):
    a, b = await nodes(2, node_timeout=1.0)
    await a.backplane.hash_set("room", "alice", "1")
    await b.backplane.hash_set("room", "bob", "2")
    await crash(b)  # b dies without a word
    assert await eventually(
        lambda: a.backplane.hash_get_all("room"), timeout=5
    ) and await eventually(
        lambda: _equals(a.backplane.hash_get_all("room"), {"alice": "1"}), timeout=5
    )


async def _equals(result, expected) -> bool:
    return await result == expected


async def test_apps_with_different_prefixes_do_not_hear_each_other(url):
    one = await Node(url, "p" + secrets.token_hex(6)).start()
    two = await Node(url, "p" + secrets.token_hex(6)).start()
    three = await Node(url, two.backplane.prefix).start()
    try:
        one.backplane.publish(Envelope(Target.BROADCAST, "", "", "", "one", one.backplane.node_id))
        two.backplane.publish(Envelope(Target.BROADCAST, "", "", "", "two", two.backplane.node_id))
        await eventually(lambda: three.texts() == ["two"])
        assert one.received == [] and two.received == []
        assert "one" not in three.texts()
    finally:
        for node in (one, two, three):
            await node.backplane.stop()
        if url.startswith("nats:"):
            for node in (one, two):
                await drop_nats_buckets(url, node.backplane.prefix)


async def test_redis_subscribes_only_to_rooms_with_local_members_in_batches():
    prefix = "t" + secrets.token_hex(6)
    node = await Node(SHARED_REDIS, prefix).start()
    inspect = aioredis.Redis.from_url(SHARED_REDIS)
    try:
        for i in range(300):
            node.backplane.watch_room("/ws", f"r{i}")

        async def subscribed() -> list[bytes]:
            return sorted(await inspect.pubsub_channels(f"{prefix}:*"))

        await eventually(lambda: _count(subscribed(), 302))  # all, node, 300 rooms
        for i in range(300):
            node.backplane.unwatch_room("/ws", f"r{i}")
        await eventually(lambda: _count(subscribed(), 2))
        assert await subscribed() == sorted(
            [f"{prefix}:all".encode(), f"{prefix}:node:{node.backplane.node_id}".encode()]
        )
    finally:
        await node.backplane.stop()
        await inspect.aclose()


async def _count(result, expected: int) -> bool:
    return len(await result) == expected


async def test_publishing_without_a_broker_never_blocks_and_counts_every_loss(url):
    scheme = url.split("://")[0]
    node = Node(f"{scheme}://127.0.0.1:{free_port()}", "t", publish_queue=3, publish_timeout=0.3)
    await node.start()
    try:
        assert node.backplane.state == "degraded"
        for i in range(10):
            node.backplane.publish(Envelope(Target.BROADCAST, "", "", "", str(i), "n"))
        assert node.backplane.stats()["dropped"] >= 7  # the queue was full at once
        await eventually(lambda: node.backplane.stats()["dropped"] >= 10, timeout=5)
        assert node.backplane.stats()["queued"] == 0
    finally:
        await node.backplane.stop()


async def test_a_node_started_before_redis_joins_when_it_appears():
    broker = PrivateRedis()
    node = await Node(broker.url, "t", reconnect_max_delay=0.5).start()
    other = None
    try:
        assert node.backplane.state == "degraded"
        broker.start()
        await eventually(lambda: node.backplane.state == "ok", timeout=10)
        other = await Node(broker.url, "t").start()
        node.backplane.publish(Envelope(Target.BROADCAST, "", "", "", "late", "x"))
        await eventually(lambda: other.texts() == ["late"])
    finally:
        for each in (node, other):
            if each is not None:
                await each.backplane.stop()
        broker.close()


async def test_fields_left_by_an_app_that_died_whole_are_removed_by_the_next_node(url):
    prefix = "t" + secrets.token_hex(6)
    dead = await Node(url, prefix, node_timeout=0.5).start()
    await dead.backplane.hash_set("room", "ghost", "1")
    await crash(dead)  # the whole app dies: nobody is left to notice
    fresh = None
    try:
        if url.startswith("redis:"):
            raw = aioredis.Redis.from_url(url)
            await eventually(
                lambda: _missing(raw.exists(f"{prefix}:alive:{dead.backplane.node_id}"))
            )
        fresh = await Node(url, prefix, node_timeout=0.5).start()

        async def stored() -> int:
            if url.startswith("redis:"):
                return await raw.hlen(f"{prefix}:hash:room")
            return len(await fresh.backplane._entries(">"))

        await eventually(lambda: _is_zero(stored()), timeout=5)  # removed, not only hidden
        assert await fresh.backplane.hash_get_all("room") == {}
    finally:
        if fresh is not None:
            await fresh.backplane.stop()
        if url.startswith("redis:"):
            await raw.aclose()
            await drop_redis_keys(url, prefix)
        else:
            await drop_nats_buckets(url, prefix)


async def _missing(result) -> bool:
    return not await result


async def _is_zero(result) -> bool:
    return await result == 0


async def test_clients_are_announced_once_per_turn_of_the_loop(nodes, monkeypatch):
    (a,) = await nodes(1)
    sent: list[tuple[Op, list[str] | None]] = []

    def control(op: Op, channel: str, clients: list[str] | None = None, count: int = 0) -> None:
        if op in (Op.ADDED, Op.REMOVED):
            sent.append((op, clients))

    monkeypatch.setattr(a.backplane, "_control", control)

    async def end_of_turn() -> None:
        """Run the callbacks already scheduled (the announcement is one)."""
        done = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_soon(done.set_result, None)
        await done

    for client_id in ("c2", "c0", "c1", "gone"):  # as the hub does for each connection
        a.clients[client_id] = object()
        a.backplane.clients_changed(client_id)
    del a.clients["gone"]  # connected and left within one turn: never announced
    a.backplane.clients_changed("gone")
    assert sent == []
    await end_of_turn()
    assert sent == [(Op.ADDED, ["c0", "c1", "c2"])]
    del a.clients["c1"]
    a.backplane.clients_changed("c1")
    await end_of_turn()
    assert sent[1:] == [(Op.REMOVED, ["c1"])]
