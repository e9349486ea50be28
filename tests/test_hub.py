"""Unit tests for vws.runtime.hub.Hub: local registry, fan-out, and nodes sharing a memory bus."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest

from vws.backplane import Envelope, MemoryBackplane, Target
from vws.runtime.hub import Hub
from vws.runtime.outbox import Outbox


async def _never_sends(text: str) -> None:
    raise AssertionError("the hub never writes to a socket")


class Inbox(Outbox):
    """An outbox that records what the hub puts in it."""

    def __init__(self) -> None:
        super().__init__(_never_sends, limit=1000, drop_oldest=False, on_slow=lambda: None)
        self.received: list[str] = []

    def put(self, text: str) -> None:
        self.received.append(text)


class RecordingBackplane(MemoryBackplane):
    """A memory backplane that records the hub's calls."""

    def __init__(self, node_id: str = "node", bus: str = "") -> None:
        super().__init__(node_id, bus)
        self.calls: list[tuple[str, str, str]] = []
        self.published: list[Envelope] = []
        #: Client ids the hub said connected or left, with whether it holds them afterwards.
        self.changed: list[tuple[str, bool]] = []
        self.hub: Hub | None = None

    def clients_changed(self, client_id: str) -> None:
        assert self.hub is not None
        self.changed.append((client_id, client_id in self.hub.clients))

    def watch_room(self, path: str, room: str) -> None:
        self.calls.append(("watch", path, room))
        super().watch_room(path, room)

    def unwatch_room(self, path: str, room: str) -> None:
        self.calls.append(("unwatch", path, room))
        super().unwatch_room(path, room)

    def publish(self, envelope: Envelope) -> None:
        self.published.append(envelope)
        super().publish(envelope)


def room(path: str, name: str, text: str) -> Envelope:
    return Envelope(Target.ROOM, path, name, "", text)


def to_client(client_id: str, text: str) -> Envelope:
    return Envelope(Target.CLIENT, "", client_id, "", text)


def broadcast(text: str, exclude: str = "", path: str = "") -> Envelope:
    return Envelope(Target.BROADCAST, path, "", exclude, text)


class Node:
    """A hub with a few registered clients."""

    def __init__(self, backplane: RecordingBackplane | None = None) -> None:
        self.backplane = backplane or RecordingBackplane()
        self.hub = self.backplane.hub = Hub(self.backplane)
        self.inboxes: dict[str, Inbox] = {}

    def connect(self, client_id: str, path: str = "/ws") -> Inbox:
        inbox = Inbox()
        self.inboxes[client_id] = inbox
        self.hub.register(client_id, path, inbox)
        return inbox

    def join(self, client_id: str, path: str, name: str) -> bool:
        return self.hub.join(client_id, path, name, self.inboxes[client_id])

    def received(self) -> dict[str, list[str]]:
        return {cid: inbox.received for cid, inbox in self.inboxes.items() if inbox.received}


def test_register_tracks_clients_by_id_and_path() -> None:
    node = Node()
    a = node.connect("a", "/ws")
    b = node.connect("b", "/admin")
    assert node.hub.clients == {"a": a, "b": b}
    assert node.hub.paths == {"/ws": {"a": a}, "/admin": {"b": b}}
    assert node.hub.node_id == "node"


def test_room_delivery_reaches_only_members_on_that_path() -> None:
    node = Node()
    for cid in ("a", "b", "c"):
        node.connect(cid, "/ws")
    node.connect("d", "/other")
    node.join("a", "/ws", "lobby")
    node.join("c", "/ws", "lobby")
    node.join("b", "/ws", "kitchen")
    node.join("d", "/other", "lobby")  # same name on another path: another room
    node.hub.deliver(room("/ws", "lobby", "hello"))
    assert node.received() == {"a": ["hello"], "c": ["hello"]}


def test_joining_twice_delivers_once() -> None:
    node = Node()
    node.connect("a")
    assert node.join("a", "/ws", "lobby") is True
    assert node.join("a", "/ws", "lobby") is False
    node.hub.deliver(room("/ws", "lobby", "x"))
    assert node.received() == {"a": ["x"]}


def test_room_without_members_delivers_nothing() -> None:
    node = Node()
    node.connect("a")
    node.hub.deliver(room("/ws", "empty", "x"))
    assert node.received() == {}


def test_client_delivery_reaches_one_client_on_any_path() -> None:
    node = Node()
    node.connect("a", "/ws")
    node.connect("b", "/admin")
    node.hub.deliver(to_client("b", "for b"))
    assert node.received() == {"b": ["for b"]}
    node.hub.deliver(to_client("nobody", "lost"))
    assert node.received() == {"b": ["for b"]}


def test_broadcast_reaches_every_path_except_the_sender() -> None:
    node = Node()
    node.connect("a", "/ws")
    node.connect("b", "/ws")
    node.connect("c", "/admin")
    node.hub.deliver(broadcast("all", exclude="a"))
    assert node.received() == {"b": ["all"], "c": ["all"]}


def test_server_wide_broadcast_skips_route_scoped_paths() -> None:
    node = Node()
    node.connect("a", "/ws")
    node.connect("b", "/other")
    node.connect("p", "/private")
    node.hub.route_scoped = frozenset({"/private"})
    node.hub.deliver(broadcast("server-wide", exclude="a"))
    assert node.received() == {"b": ["server-wide"]}


def test_route_scoped_broadcast_reaches_only_its_path() -> None:
    node = Node()
    node.connect("a", "/ws")
    node.connect("p1", "/private")
    node.connect("p2", "/private")
    node.connect("p3", "/private")
    node.hub.route_scoped = frozenset({"/private"})
    node.hub.deliver(broadcast("inside", exclude="p1", path="/private"))
    assert node.received() == {"p2": ["inside"], "p3": ["inside"]}


def test_delivery_keeps_order_per_receiver() -> None:
    node = Node()
    node.connect("a")
    node.connect("b")
    node.join("b", "/ws", "r")
    node.hub.deliver(room("/ws", "r", "1"))
    node.hub.deliver(to_client("b", "2"))
    node.hub.deliver(broadcast("3", exclude="a"))
    node.hub.deliver(room("/ws", "r", "4"))
    assert node.inboxes["b"].received == ["1", "2", "3", "4"]
    assert node.inboxes["a"].received == []


def test_watch_on_first_join_and_unwatch_on_last_leave() -> None:
    node = Node()
    calls = node.backplane.calls
    for cid in ("a", "b"):
        node.connect(cid)
    node.join("a", "/ws", "lobby")
    assert calls == [("watch", "/ws", "lobby")]
    node.join("b", "/ws", "lobby")
    node.join("a", "/ws", "lobby")
    assert calls == [("watch", "/ws", "lobby")]
    assert node.hub.leave("a", "/ws", "lobby") is True
    assert calls == [("watch", "/ws", "lobby")]
    assert node.hub.leave("a", "/ws", "lobby") is False
    assert node.hub.leave("b", "/ws", "lobby") is True
    assert calls == [("watch", "/ws", "lobby"), ("unwatch", "/ws", "lobby")]
    assert node.hub.leave("b", "/ws", "lobby") is False
    assert len(calls) == 2
    node.join("b", "/ws", "lobby")  # the room is new again
    assert calls[-1] == ("watch", "/ws", "lobby")


def test_leaving_a_room_never_joined_does_not_unwatch() -> None:
    node = Node()
    node.connect("a")
    assert node.hub.leave("a", "/ws", "nowhere") is False
    assert node.backplane.calls == []


def test_unregister_leaves_all_rooms() -> None:
    node = Node()
    node.connect("a", "/ws")
    node.connect("b", "/ws")
    node.join("a", "/ws", "lobby")
    node.join("a", "/ws", "solo")
    node.join("b", "/ws", "lobby")
    node.backplane.calls.clear()
    node.hub.unregister("a", "/ws", {"lobby", "solo"})
    assert node.backplane.calls == [("unwatch", "/ws", "solo")]
    assert "a" not in node.hub.clients
    assert "a" not in node.hub.paths["/ws"]
    assert ("/ws", "solo") not in node.hub.rooms
    assert list(node.hub.rooms.members("/ws", "lobby")) == [node.inboxes["b"]]
    node.hub.deliver(room("/ws", "lobby", "r"))
    node.hub.deliver(to_client("a", "direct"))
    node.hub.deliver(broadcast("all"))
    assert node.received() == {"b": ["r", "all"]}


def test_unregister_of_the_last_client_of_a_path_forgets_the_path() -> None:
    node = Node()
    node.connect("a", "/ws")
    node.connect("b", "/admin")
    node.hub.unregister("a", "/ws", set())
    assert node.hub.paths == {"/admin": {"b": node.inboxes["b"]}}
    assert node.hub.clients == {"b": node.inboxes["b"]}


def test_publish_delivers_locally_and_hands_the_envelope_on() -> None:
    node = Node()
    node.connect("a")
    node.connect("b")
    envelope = broadcast("x", exclude="a")
    node.hub.publish(envelope)
    assert node.received() == {"b": ["x"]}
    assert node.backplane.published == [envelope]


# --- two nodes on one memory bus -----------------------------------------------------------


@pytest.fixture
def bus() -> Iterator[str]:
    yield f"bus-{uuid.uuid4().hex}"


class Cluster:
    def __init__(self, bus: str) -> None:
        self.one = Node(RecordingBackplane("node-1", bus))
        self.two = Node(RecordingBackplane("node-2", bus))

    async def start(self) -> None:
        for node in (self.one, self.two):
            await node.backplane.start(node.hub.deliver, node.hub.clients)

    async def stop(self) -> None:
        for node in (self.one, self.two):
            await node.backplane.stop()


def test_room_envelopes_cross_nodes_without_echo(bus: str) -> None:
    async def main() -> None:
        cluster = Cluster(bus)
        await cluster.start()
        one, two = cluster.one, cluster.two
        one.connect("a")
        one.connect("a2")
        two.connect("b")
        two.connect("b2")
        one.join("a", "/ws", "lobby")
        two.join("b", "/ws", "lobby")
        two.join("b2", "/other", "lobby")  # another path: another room
        one.hub.publish(Envelope(Target.ROOM, "/ws", "lobby", "", "from-1", "node-1"))
        two.hub.publish(Envelope(Target.ROOM, "/ws", "lobby", "", "from-2", "node-2"))
        assert one.received() == {"a": ["from-1", "from-2"]}
        assert two.received() == {"b": ["from-1", "from-2"]}
        await cluster.stop()

    asyncio.run(main())


def test_room_envelopes_skip_nodes_without_members(bus: str) -> None:
    async def main() -> None:
        cluster = Cluster(bus)
        await cluster.start()
        one, two = cluster.one, cluster.two
        one.connect("a")
        two.connect("b")
        one.join("a", "/ws", "lobby")
        two.join("b", "/ws", "lobby")
        two.hub.leave("b", "/ws", "lobby")
        one.hub.publish(room("/ws", "lobby", "after-leave"))
        assert one.received() == {"a": ["after-leave"]}
        assert two.received() == {}
        await cluster.stop()

    asyncio.run(main())


def test_broadcast_and_client_envelopes_cross_nodes_without_echo(bus: str) -> None:
    async def main() -> None:
        cluster = Cluster(bus)
        await cluster.start()
        one, two = cluster.one, cluster.two
        one.connect("a", "/ws")
        one.connect("a2", "/ws")
        two.connect("b", "/ws")
        two.connect("p", "/private")
        two.hub.route_scoped = frozenset({"/private"})
        one.hub.publish(broadcast("hi", exclude="a"))
        assert one.received() == {"a2": ["hi"]}
        assert two.received() == {"b": ["hi"]}
        two.hub.publish(to_client("a", "direct"))
        assert one.inboxes["a"].received == ["direct"]
        assert two.received() == {"b": ["hi"]}
        assert one.backplane.has_client("b") is True
        assert one.backplane.has_client("a") is False  # local, not on another node
        assert one.backplane.has_client("nobody") is False
        await cluster.stop()

    asyncio.run(main())


def test_route_scoped_broadcast_crosses_nodes_only_to_that_path(bus: str) -> None:
    async def main() -> None:
        cluster = Cluster(bus)
        await cluster.start()
        one, two = cluster.one, cluster.two
        one.connect("p1", "/private")
        two.connect("p2", "/private")
        two.connect("w", "/ws")
        one.hub.publish(broadcast("secret", exclude="p1", path="/private"))
        assert one.received() == {}
        assert two.received() == {"p2": ["secret"]}
        await cluster.stop()

    asyncio.run(main())


def test_a_stopped_node_receives_nothing(bus: str) -> None:
    async def main() -> None:
        cluster = Cluster(bus)
        await cluster.start()
        one, two = cluster.one, cluster.two
        one.connect("a")
        two.connect("b")
        await two.backplane.stop()
        one.hub.publish(broadcast("x"))
        assert one.received() == {"a": ["x"]}
        assert two.received() == {}
        await one.backplane.stop()

    asyncio.run(main())


def test_private_memory_backplanes_do_not_share() -> None:
    async def main() -> None:
        one = Node(RecordingBackplane("solo-1"))
        two = Node(RecordingBackplane("solo-2"))
        for node in (one, two):
            await node.backplane.start(node.hub.deliver, node.hub.clients)
        one.connect("a")
        two.connect("b")
        one.hub.publish(broadcast("x"))
        assert two.received() == {}
        for node in (one, two):
            await node.backplane.stop()

    asyncio.run(main())


def test_the_backplane_hears_of_each_client_after_it_comes_and_after_it_goes() -> None:
    node = Node()
    node.connect("a")
    node.join("a", "/ws", "lobby")
    node.hub.unregister("a", "/ws", {"lobby"})
    node.hub.unregister("a", "/ws", set())  # twice: told once
    assert node.backplane.changed == [("a", True), ("a", False)]
