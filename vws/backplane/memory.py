"""The in-memory backplane: nodes in one process sharing a bus.

``memory://`` (the default) gives each server its own bus, which makes it a single node.
``memory://NAME`` puts every server of the process that names the same bus on it, which is how
the cross-node fan-out logic is tested without a broker. Delivery is synchronous, so ordering
per sender holds across nodes too.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Container

from vws.backplane.base import Backplane, Envelope, Receiver, Target

_buses: dict[str, dict[str, MemoryBackplane]] = defaultdict(dict)
_hashes: dict[str, dict[str, dict[str, str]]] = defaultdict(lambda: defaultdict(dict))


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

    def has_client(self, client_id: str) -> bool:
        return any(client_id in peer._local for peer in self._peers())
