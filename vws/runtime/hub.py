"""This node's clients and rooms, and local delivery of encoded frames.

The hub knows clients only by id, path and outbox, so it stays plain bookkeeping: it decides
who receives an envelope and puts the already-encoded text in their outboxes. It tells the
backplane when a room gains its first or loses its last local member.
"""

from __future__ import annotations

from collections.abc import Callable

from vws.backplane import Backplane, Envelope, Target
from vws.runtime.outbox import Outbox
from vws.runtime.rooms import Rooms

#: Whether one receiver gets a frame (the ``vws_deliver`` hooks); None lets everybody have it.
Accept = Callable[[Outbox], bool]


class Hub:
    """Local registry and fan-out of one node."""

    def __init__(self, backplane: Backplane) -> None:
        self.backplane = backplane
        self.node_id = backplane.node_id
        #: client id → outbox, for every registered client of this node.
        self.clients: dict[str, Outbox] = {}
        #: path → client id → outbox.
        self.paths: dict[str, dict[str, Outbox]] = {}
        self.rooms: Rooms[Outbox] = Rooms()
        #: Paths whose broadcasts stay inside the path (``broadcast = "route"``).
        self.route_scoped: frozenset[str] = frozenset()

    def register(self, client_id: str, path: str, outbox: Outbox) -> None:
        self.clients[client_id] = outbox
        self.paths.setdefault(path, {})[client_id] = outbox
        self.backplane.clients_changed(client_id)

    def unregister(self, client_id: str, path: str, rooms: set[str]) -> None:
        """Forget a client and take it out of ``rooms`` (its rooms on ``path``)."""
        if self.clients.pop(client_id, None) is not None:
            self.backplane.clients_changed(client_id)
        on_path = self.paths.get(path)
        if on_path is not None:
            on_path.pop(client_id, None)
            if not on_path:
                del self.paths[path]
        for room in rooms:
            self.leave(client_id, path, room)

    def join(self, client_id: str, path: str, room: str, outbox: Outbox) -> bool:
        """Add a client to a room; False when it was a member already."""
        fresh_room = (path, room) not in self.rooms
        added = self.rooms.add(path, room, client_id, outbox)
        if fresh_room:
            self.backplane.watch_room(path, room)
        return added

    def leave(self, client_id: str, path: str, room: str) -> bool:
        """Take a client out of a room; False when it was not a member."""
        left = self.rooms.discard(path, room, client_id)
        if left and (path, room) not in self.rooms:
            self.backplane.unwatch_room(path, room)
        return left

    def publish(self, envelope: Envelope, accept: Accept | None = None) -> None:
        """Deliver to this node's clients and hand the envelope to the other nodes."""
        self.deliver(envelope, accept)
        self.backplane.publish(envelope)

    def receivers(self, kind: str, path: str, target: str | None) -> int:
        """How many of this node's clients a send of ``kind`` reaches (for ``max_fanout``)."""
        if kind == "room":
            return len(self.rooms.members(path, target or ""))
        if kind == "broadcast":
            if path in self.route_scoped:
                return len(self.paths.get(path, ()))
            scoped = self.route_scoped
            return sum(len(group) for p, group in self.paths.items() if p not in scoped)
        return 1

    def deliver(self, envelope: Envelope, accept: Accept | None = None) -> None:
        """Put the envelope's frame in the outbox of each local client it is for, and that
        ``accept`` lets have it. The loops are written out twice so that the plain one, with
        nobody filtering, pays nothing for the filter."""
        text = envelope.text
        kind = envelope.kind
        if kind is Target.ROOM:
            members = self.rooms.members(envelope.path, envelope.target)
            if accept is None:
                for outbox in members:
                    outbox.put(text)
            else:
                for outbox in list(members):
                    if accept(outbox):
                        outbox.put(text)
        elif kind is Target.CLIENT:
            receiver = self.clients.get(envelope.target)
            if receiver is not None and (accept is None or accept(receiver)):
                receiver.put(text)
        else:
            exclude = envelope.exclude
            if envelope.path:
                groups = [self.paths.get(envelope.path, {})]
            else:
                scoped = self.route_scoped
                groups = [group for path, group in self.paths.items() if path not in scoped]
            for group in groups:
                if accept is None:
                    for client_id, outbox in group.items():
                        if client_id != exclude:
                            outbox.put(text)
                else:
                    for client_id, outbox in list(group.items()):
                        if client_id != exclude and accept(outbox):
                            outbox.put(text)
