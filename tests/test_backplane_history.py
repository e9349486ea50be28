"""#17: room histories and positions on the real brokers (Redis, NATS JetStream).

Two backplanes in one process are two nodes of one app. Each test uses a channel prefix of its
own (and, for the Redis flush, a database of its own), so tests never see each other.
"""

from __future__ import annotations

import contextlib
import json
import secrets
from collections.abc import AsyncIterator, Callable
from typing import Any

import msgspec
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

from vws.backplane import (
    BackplaneOptions,
    Envelope,
    Position,
    Retention,
    Target,
    create,
)
from vws.backplane.base import positioned_text
from vws.backplane.broker import BrokerBackplane, BrokerError
from vws.backplane.wire import decode, positioned_parts

pytestmark = pytest.mark.anyio

KEEP = Retention(size=1000)
#: A database of the shared Redis that only the flush test uses (never flush database 0).
FLUSHED_DB = 11
FLUSHED_URL = f"redis://127.0.0.1:6379/{FLUSHED_DB}"


class Node:
    """A backplane with a receiver, as a Server gives it."""

    def __init__(self, url: str, prefix: str, **options: float) -> None:
        self.backplane: BrokerBackplane = create(url, secrets.token_hex(4))  # type: ignore[assignment]
        self.backplane.configure(BackplaneOptions(channel_prefix=prefix, **options))
        self.received: list[Envelope] = []

    async def start(self) -> Node:
        await self.backplane.start(self.received.append, {})
        return self

    async def join(self, path: str, room: str) -> None:
        self.backplane.watch_room(path, room)
        await self.backplane.room_ready(path, room)

    def say(self, room: str, n: int, retention: Retention = KEEP, path: str = "/ws") -> None:
        text = json.dumps({"event": "say", "payload": n}, separators=(",", ":"))
        envelope = Envelope(Target.ROOM, path, room, "", text, self.backplane.node_id)
        self.backplane.publish_positioned(envelope, retention)

    def frames(self, room: str) -> list[dict[str, Any]]:
        """What this node received of ``room``, positioned, each text decoded."""
        out = []
        for envelope in self.received:
            if envelope.target == room:
                assert envelope.positioned
                out.append(json.loads(envelope.text))
        return out


def offsets(frames: list[dict[str, Any]]) -> list[int]:
    return [frame["offset"] for frame in frames]


async def drop_nats_history(url: str, prefix: str) -> None:
    """Delete this test's own history stream (and buckets) from the shared NATS server."""
    import nats

    connection = await nats.connect(url)
    try:
        js = connection.jetstream()
        with contextlib.suppress(Exception):  # never made: the test published no positioned frame
            await js.delete_stream(f"{prefix}_hist")
    finally:
        await connection.close()
    await drop_nats_buckets(url, prefix)


@pytest.fixture(params=["redis", "nats"])
def url(request: pytest.FixtureRequest) -> str:
    return SHARED_REDIS if request.param == "redis" else SHARED_NATS


@pytest.fixture
async def nodes(url: str) -> AsyncIterator[Callable[..., Any]]:
    """Start nodes of one app (``nodes(count, url=..., **options)``) and clean up after them."""
    prefix = "h" + secrets.token_hex(6)
    started: list[Node] = []

    async def make(count: int = 2, at: str = url, **options: float) -> list[Node]:
        batch = [await Node(at, prefix, **options).start() for _ in range(count)]
        started.extend(batch)
        return batch

    yield make
    for node in started:
        await node.backplane.stop()
    for each in {node.backplane.url for node in started} | {url}:
        if each.startswith("nats:"):
            await drop_nats_history(each, prefix)
        else:
            await drop_redis_keys(each, prefix)


def test_a_positioned_envelope_is_the_envelope_with_the_text_between_its_parts():
    envelope = Envelope(Target.ROOM, "/ws", "r", "x", "{}", "node", "alice")
    head, tail = positioned_parts(envelope)
    text = positioned_text('{"event":"e"}', "r", 1, "ep") + "é" * 70000  # a str32 in msgpack
    decoded = decode(head + msgspec.msgpack.encode(text) + tail)
    assert decoded == msgspec.structs.replace(envelope, text=text, positioned=True)


async def test_two_nodes_share_positions_and_each_gets_every_frame_in_order(nodes):
    a, b = await nodes(2)
    await a.join("/ws", "r")
    await b.join("/ws", "r")
    for n in range(300):  # interleaved: each node publishes every other frame
        (a if n % 2 else b).say("r", n)
    for node in (a, b):  # own frames included: they come back positioned, from the broker
        await eventually(lambda node=node: len(node.frames("r")) >= 300, timeout=20)
        frames = node.frames("r")
        assert offsets(frames) == list(range(1, 301))
        assert len({frame["epoch"] for frame in frames}) == 1
        assert sorted(frame["payload"] for frame in frames) == list(range(300))
        assert all(frame["room"] == "r" for frame in frames)
    assert a.frames("r") == b.frames("r")  # one order, the broker's
    for node in (a, b):  # each node's own frames keep the order it published them in
        mine = [f["payload"] for f in node.frames("r") if f["payload"] % 2 == (node is a)]
        assert mine == sorted(mine)


async def test_history_since_a_position_holds_exactly_what_was_missed(nodes):
    a, b = await nodes(2)
    await a.join("/ws", "r")
    begun = await b.backplane.history("/ws", "r", None, KEEP)  # a join before the first frame
    assert begun.position.offset == 0 and begun.position.epoch and not begun.frames
    assert (await b.backplane.history("/ws", "r", Position(0, ""), KEEP)).recovered
    for n in range(10):
        a.say("r", n)
    await eventually(lambda: len(a.frames("r")) == 10)
    epoch = a.frames("r")[0]["epoch"]
    assert epoch == begun.position.epoch  # the epoch the join began goes on
    texts = [envelope.text for envelope in a.received]

    resumed = await b.backplane.history("/ws", "r", Position(4, epoch), KEEP)
    assert resumed.recovered and resumed.frames == texts[4:]
    assert resumed.position == Position(10, epoch)
    whole = await b.backplane.history("/ws", "r", Position(0, ""), KEEP)
    assert whole.recovered and whole.frames == texts
    caught_up = await b.backplane.history("/ws", "r", Position(10, epoch), KEEP)
    assert caught_up.recovered and caught_up.frames == []
    first = await b.backplane.history("/ws", "r", None, KEEP)
    assert (first.frames, first.position, first.recovered) == ([], Position(10, epoch), False)
    for since in (Position(11, epoch), Position(3, "another")):  # never reached; another history
        lost = await b.backplane.history("/ws", "r", since, KEEP)
        assert (lost.frames, lost.position, lost.recovered) == ([], Position(10, epoch), False)
    other_path = await b.backplane.history("/other", "r", Position(4, epoch), KEEP)
    assert not other_path.recovered and begun_anew(other_path.position, epoch)


def begun_anew(position: Position, old_epoch: str) -> bool:
    """Whether ``position`` is a history begun by the read: offset 0 in an epoch of its own."""
    return position.offset == 0 and position.epoch not in ("", old_epoch)


async def test_size_pushes_old_frames_out(nodes):
    a, b = await nodes(2)
    short = Retention(size=3)
    await a.join("/ws", "r")
    for n in range(5):
        a.say("r", n, short)
    await eventually(lambda: len(a.frames("r")) == 5)
    epoch = a.frames("r")[0]["epoch"]
    assert not (await b.backplane.history("/ws", "r", Position(1, epoch), short)).recovered
    kept = await b.backplane.history("/ws", "r", Position(2, epoch), short)
    assert kept.recovered and [json.loads(t)["offset"] for t in kept.frames] == [3, 4, 5]
    smaller = Retention(size=2)  # a reload lowered the size: only the last 2 count at once
    assert not (await b.backplane.history("/ws", "r", Position(2, epoch), smaller)).recovered
    assert (await b.backplane.history("/ws", "r", Position(3, epoch), smaller)).recovered


async def test_ttl_ages_frames_out_and_an_idle_room_starts_a_new_epoch(nodes):
    a, b = await nodes(2)
    brief = Retention(size=100, ttl=0.5)
    await a.join("/ws", "r")
    a.say("r", 0, brief)
    await eventually(lambda: len(a.frames("r")) == 1)
    epoch = a.frames("r")[0]["epoch"]

    async def first_aged_out() -> bool:  # the room stays active while its first frame ages
        a.say("r", 1, brief)
        whole = await b.backplane.history("/ws", "r", Position(0, ""), brief)
        return not whole.recovered and whole.position.epoch == epoch

    await eventually(first_aged_out, every=0.1)
    current = (await b.backplane.history("/ws", "r", None, brief)).position
    last = await b.backplane.history("/ws", "r", Position(current.offset - 1, epoch), brief)
    assert last.recovered and len(last.frames) == 1

    async def forgotten() -> bool:  # nothing published for longer than the ttl
        idle = await b.backplane.history("/ws", "r", Position(current.offset, epoch), brief)
        return not idle.recovered and begun_anew(idle.position, epoch)

    await eventually(forgotten)
    a.received.clear()
    a.say("r", 2, brief)
    await eventually(lambda: len(a.frames("r")) == 1)
    fresh = a.frames("r")[0]
    assert fresh["offset"] == 1 and fresh["epoch"] != epoch


async def lose_history(node: Node) -> None:
    """The broker loses every history: Redis database FLUSHED_DB flushed (no one else's keys),
    or this test's NATS stream deleted."""
    if node.backplane.url.startswith("redis:"):
        raw = aioredis.Redis.from_url(FLUSHED_URL)
        await raw.flushdb()
        await raw.aclose()
    else:
        js = node.backplane._nc.jetstream()  # type: ignore[attr-defined]
        await js.delete_stream(f"{node.backplane.prefix}_hist")


async def test_a_lost_history_starts_again_at_offset_1_in_a_new_epoch(nodes, url):
    a, b = await nodes(2, at=FLUSHED_URL if url.startswith("redis:") else url)
    await a.join("/ws", "r")
    await b.join("/ws", "r")
    for n in range(3):
        a.say("r", n)
    await eventually(lambda: len(b.frames("r")) == 3)
    epoch = b.frames("r")[0]["epoch"]
    await lose_history(a)
    lost = await b.backplane.history("/ws", "r", Position(3, epoch), KEEP)
    assert not lost.recovered and begun_anew(lost.position, epoch)
    b.say("r", 3)
    await eventually(lambda: len(a.frames("r")) == 4 and len(b.frames("r")) == 4, timeout=20)
    for node in (a, b):
        fresh = node.frames("r")[3]
        assert fresh["offset"] == 1 and fresh["epoch"] != epoch and fresh["payload"] == 3
    new_epoch = a.frames("r")[3]["epoch"]
    assert not (await a.backplane.history("/ws", "r", Position(3, epoch), KEEP)).recovered
    resumed = await a.backplane.history("/ws", "r", Position(0, ""), KEEP)
    assert resumed.recovered and resumed.position == Position(1, new_epoch)


async def test_a_join_before_the_first_frame_is_told_of_a_history_lost_while_away(nodes, url):
    """A client joins an empty room and leaves; frames come, the broker loses them, more
    come. Resuming from where it joined is not recovered: the new frames are not all it
    missed."""
    a, b = await nodes(2, at=FLUSHED_URL if url.startswith("redis:") else url)
    await a.join("/ws", "r")
    joined = (await b.backplane.history("/ws", "r", None, KEEP)).position
    for n in range(3):
        a.say("r", n)
    await eventually(lambda: len(a.frames("r")) == 3)
    await lose_history(a)
    a.received.clear()
    for n in range(2):
        a.say("r", n)
    await eventually(lambda: len(a.frames("r")) == 2, timeout=20)
    resumed = await b.backplane.history("/ws", "r", joined, KEEP)
    assert (resumed.recovered, resumed.frames) == (False, [])
    assert resumed.position == Position(2, a.frames("r")[0]["epoch"])


async def test_a_frame_published_once_a_room_is_ready_reaches_the_node(nodes):
    a, b = await nodes(2)
    for room in ("x", "y", "a.b", "*", "a:b"):  # each at once after its subscription is live
        b.backplane.watch_room("/ws", room)
        await b.backplane.room_ready("/ws", room)
        a.say(room, 1)
        await eventually(lambda room=room: len(b.frames(room)) == 1)
        assert b.frames(room)[0]["room"] == room
    with pytest.raises(BrokerError, match="not watched"):
        await b.backplane.room_ready("/ws", "never joined")


async def test_without_a_broker_room_ready_and_history_fail_and_publishes_are_counted(url):
    scheme = url.split("://")[0]
    node = Node(f"{scheme}://127.0.0.1:{free_port()}", "h", publish_timeout=0.3)
    await node.start()
    try:
        node.backplane.watch_room("/ws", "r")
        with pytest.raises(BrokerError, match="not connected"):
            await node.backplane.room_ready("/ws", "r")
        with pytest.raises(BrokerError):
            await node.backplane.history("/ws", "r", Position(0, ""), KEEP)
        node.say("r", 1)
        await eventually(lambda: node.backplane.stats()["dropped"] == 1, timeout=5)
        assert node.received == []
    finally:
        await node.backplane.stop()


async def test_plain_publishes_still_skip_their_own_node(nodes):
    a, b = await nodes(2)
    await a.join("/ws", "r")
    await b.join("/ws", "r")

    def plain(text: str) -> None:
        a.backplane.publish(Envelope(Target.ROOM, "/ws", "r", "", text, a.backplane.node_id))

    async def subscribed() -> bool:  # room_ready is about positioned frames only
        plain('{"probe":1}')
        return bool(b.received)

    await eventually(subscribed)
    plain('{"plain":1}')
    a.say("r", 1)

    def heard() -> list[Envelope]:
        return [envelope for envelope in b.received if "probe" not in envelope.text]

    await eventually(lambda: len(heard()) == 2 and len(a.received) == 1)
    assert a.received[0].positioned and json.loads(a.received[0].text)["offset"] == 1
    assert sorted(envelope.positioned for envelope in heard()) == [False, True]


async def test_redis_loads_its_script_again_after_a_script_flush():
    broker = PrivateRedis().start()
    node = await Node(broker.url, "h").start()
    raw = aioredis.Redis.from_url(broker.url)
    try:
        await node.join("/ws", "r")
        node.say("r", 0)
        await eventually(lambda: len(node.frames("r")) == 1)
        await raw.script_flush()
        node.say("r", 1)
        node.say("r", 2)
        await eventually(lambda: len(node.frames("r")) == 3)
        assert offsets(node.frames("r")) == [1, 2, 3]
        assert node.backplane.stats()["dropped"] == 0
    finally:
        await raw.aclose()
        await node.backplane.stop()
        broker.close()


async def test_a_node_that_joins_later_hears_only_new_frames_and_reads_the_rest(nodes):
    (a,) = await nodes(1)
    await a.join("/ws", "r")
    for n in range(3):
        a.say("r", n)
    await eventually(lambda: len(a.frames("r")) == 3)
    (late,) = await nodes(1)
    await late.join("/ws", "r")
    a.say("r", 3)
    await eventually(lambda: len(late.frames("r")) == 1)
    assert offsets(late.frames("r")) == [4]
    earlier = await late.backplane.history("/ws", "r", Position(0, ""), KEEP)
    assert earlier.recovered and [json.loads(t)["offset"] for t in earlier.frames] == [1, 2, 3, 4]


async def test_rooms_of_different_retentions_keep_each_their_own(nodes):
    a, b = await nodes(2)
    small, large, forever = Retention(size=2, ttl=60), Retention(size=8, ttl=120), Retention(5)
    for room, retention in (("s", small), ("l", large), ("f", forever)):
        await a.join("/ws", room)
        for n in range(10):
            a.say(room, n, retention)
    await eventually(lambda: all(len(a.frames(room)) == 10 for room in "slf"))
    for room, retention, kept in (("s", small, 2), ("l", large, 8), ("f", forever, 5)):
        epoch = a.frames(room)[0]["epoch"]
        assert not (
            await b.backplane.history("/ws", room, Position(9 - kept, epoch), retention)
        ).recovered
        found = await b.backplane.history("/ws", room, Position(10 - kept, epoch), retention)
        assert found.recovered and len(found.frames) == kept


async def test_every_frame_reaches_every_node_however_few_the_history_keeps(nodes):
    a, b = await nodes(2)  # a new app: the first frames make its history (the NATS stream)
    tiny = Retention(size=2)
    await a.join("/ws", "r")
    await b.join("/ws", "r")
    for n in range(50):
        a.say("r", n, tiny)
    await eventually(lambda: len(b.frames("r")) == 50)
    assert offsets(b.frames("r")) == list(range(1, 51))
