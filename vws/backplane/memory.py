"""The in-memory backplane: nodes in one process sharing a bus.

``memory://`` (the default) gives each server its own bus, which makes it a single node.
``memory://NAME`` puts every server of the process that names the same bus on it, which is how
the cross-node fan-out logic is tested without a broker. Delivery is synchronous, so ordering
per sender holds across nodes too.
"""

from __future__ import annotations

import time
from collections import OrderedDict, defaultdict, deque
from collections.abc import Collection, Container

import msgspec

from vws.backplane.base import (
    Backplane,
    Envelope,
    Position,
    Receiver,
    Recovery,
    Retention,
    Target,
    new_epoch,
    positioned_text,
    recover,
)

_buses: dict[str, dict[str, MemoryBackplane]] = defaultdict(dict)
_hashes: dict[str, dict[str, dict[str, str]]] = defaultdict(lambda: defaultdict(dict))


class RoomHistory:
    """One room's kept frames and position, in the memory of the process."""

    __slots__ = ("epoch", "frames", "offset", "written")

    def __init__(self, size: int) -> None:
        self.epoch = new_epoch()
        self.offset = 0
        #: (offset, positioned text, time.monotonic() when kept), oldest first.
        self.frames: deque[tuple[int, str, float]] = deque(maxlen=size)
        self.written = time.monotonic()

    def fresh(self, retention: Retention, now: float) -> list[tuple[int, str]]:
        """The frames younger than ``retention.ttl`` (older ones are forgotten on the way)."""
        frames = self.frames
        if retention.ttl:
            while frames and frames[0][2] < now - retention.ttl:
                frames.popleft()
        return [(offset, text) for offset, text, _ in frames]


class Histories:
    """Every room history of one bus, least recently written first, so that rooms idle past
    their ttl are dropped from the front as new frames are kept: memory stays bounded by the
    rooms in use, each by its ``size``."""

    def __init__(self) -> None:
        self.rooms: OrderedDict[tuple[str, str], tuple[RoomHistory, float]] = OrderedDict()

    def get(self, key: tuple[str, str], retention: Retention, now: float) -> RoomHistory | None:
        found = self.rooms.get(key)
        if found is None:
            return None
        history, ttl = found
        if ttl and history.written < now - ttl:  # idle past its ttl: the history is lost
            del self.rooms[key]
            return None
        return history

    def start(self, key: tuple[str, str], retention: Retention, now: float) -> RoomHistory:
        """The room's history, begun (empty, in a new epoch) if it has none: a client that
        joins before the first frame then stands at offset 0 of a named epoch, so a history
        lost while it is away is told, not taken for one it saw from the start."""
        history = self.get(key, retention, now)
        if history is None:
            history = RoomHistory(retention.size)
            history.written = now
            self.rooms[key] = (history, retention.ttl)
            self._sweep(now)
        return history

    def keep(self, key: tuple[str, str], text: str, retention: Retention) -> str:
        """Give the frame the room's next position and keep it; its positioned text."""
        now = time.monotonic()
        history = self.start(key, retention, now)
        if history.frames.maxlen != retention.size:  # a reload changed it: the history stays
            replacement = RoomHistory(retention.size)
            replacement.epoch, replacement.offset = history.epoch, history.offset
            replacement.frames.extend(history.frames)
            history = replacement
        history.offset += 1
        positioned = positioned_text(text, key[1], history.offset, history.epoch)
        history.frames.append((history.offset, positioned, now))
        history.written = now
        self.rooms[key] = (history, retention.ttl)
        self.rooms.move_to_end(key)
        self._sweep(now)
        return positioned

    def _sweep(self, now: float) -> None:
        while self.rooms:
            key, (history, ttl) = next(iter(self.rooms.items()))
            if not ttl or history.written >= now - ttl:
                return
            del self.rooms[key]


_histories: dict[str, Histories] = defaultdict(Histories)


class MemoryBackplane(Backplane):
    def __init__(self, node_id: str, bus: str = "") -> None:
        super().__init__(node_id)
        self._bus_name = bus or f"private:{node_id}"
        self._receive: Receiver | None = None
        self._rooms: dict[tuple[str, str], int] = {}
        self._local: Container[str] = ()

    async def start(self, receive: Receiver, local_clients: Collection[str]) -> None:
        self._receive = receive
        self._local = local_clients
        _buses[self._bus_name][self.node_id] = self

    async def stop(self) -> None:
        peers = _buses.get(self._bus_name, {})
        peers.pop(self.node_id, None)
        if not peers:
            _buses.pop(self._bus_name, None)
            _hashes.pop(self._bus_name, None)
            _histories.pop(self._bus_name, None)
        self._receive = None

    def _peers(self) -> list[MemoryBackplane]:
        return [p for n, p in _buses.get(self._bus_name, {}).items() if n != self.node_id]

    def publish(self, envelope: Envelope) -> None:
        for peer in self._peers():
            if peer._receive is None:
                continue
            if envelope.kind is Target.ROOM and (envelope.path, envelope.target) not in peer._rooms:
                continue  # like a broker: only nodes watching the room receive it
            peer._receive(envelope)

    def watch_room(self, path: str, room: str) -> None:
        self._rooms[(path, room)] = 1

    def unwatch_room(self, path: str, room: str) -> None:
        self._rooms.pop((path, room), None)

    async def hash_set(self, key: str, field: str, value: str) -> None:
        _hashes[self._bus_name][key][field] = value

    async def hash_delete(self, key: str, field: str) -> None:
        table = _hashes[self._bus_name].get(key)
        if table is not None:
            table.pop(field, None)
            if not table:
                del _hashes[self._bus_name][key]

    async def hash_get_all(self, key: str) -> dict[str, str]:
        return dict(_hashes[self._bus_name].get(key, {}))

    def publish_positioned(self, envelope: Envelope, retention: Retention) -> None:
        key = (envelope.path, envelope.target)
        text = _histories[self._bus_name].keep(key, envelope.text, retention)
        positioned = msgspec.structs.replace(envelope, text=text, positioned=True)
        if self._receive is not None:
            self._receive(positioned)
        self.publish(positioned)

    async def room_ready(self, path: str, room: str) -> None:
        return None  # delivery is synchronous: a watched room is ready at once

    async def history(
        self, path: str, room: str, since: Position | None, retention: Retention
    ) -> Recovery:
        now = time.monotonic()
        history = _histories[self._bus_name].start((path, room), retention, now)
        current, frames = Position(history.offset, history.epoch), history.fresh(retention, now)
        if since is None:
            return Recovery([], current, False)
        return recover(frames, current, since)

    def has_client(self, client_id: str) -> bool:
        return any(client_id in peer._local for peer in self._peers())
