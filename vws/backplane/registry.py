"""Which node holds each client of the other nodes, so that ``Client.to`` answers at once.

Every node announces its own clients on the broker: a full snapshot when it (re)connects or is
asked, deltas as clients come and go, and a heartbeat carrying its client count. A receiver
that finds the count out of step with what it holds (an announcement was lost: pub/sub is
at-most-once) asks that node for a snapshot; a node whose heartbeats stop is forgotten with
its clients. Plain bookkeeping with the clock passed in, so it is tested without a broker.
"""

from __future__ import annotations

from collections.abc import Iterable


class Peer:
    """What this node knows of another node."""

    __slots__ = ("asked_at", "clients", "last_seen")

    def __init__(self, now: float) -> None:
        self.clients: set[str] = set()
        self.last_seen = now
        #: When a snapshot was last asked of it (so a lagging node is asked once per beat).
        self.asked_at = float("-inf")


class Registry:
    """The remote clients of this node's app, by node."""

    def __init__(self) -> None:
        #: client id → id of the node holding it.
        self.owners: dict[str, str] = {}
        self.peers: dict[str, Peer] = {}

    def owner(self, client_id: str) -> str | None:
        return self.owners.get(client_id)

    def _peer(self, node: str, now: float) -> Peer:
        peer = self.peers.get(node)
        if peer is None:
            peer = self.peers[node] = Peer(now)
        peer.last_seen = max(peer.last_seen, now)
        return peer

    def seen(self, node: str, now: float) -> None:
        """``node`` is alive."""
        self._peer(node, now)

    def snapshot(self, node: str, clients: Iterable[str], now: float) -> None:
        """``node`` holds exactly ``clients``."""
        peer = self._peer(node, now)
        fresh = set(clients)
        owners = self.owners
        for gone in peer.clients - fresh:
            if owners.get(gone) == node:
                del owners[gone]
        for client_id in fresh:
            owners[client_id] = node
        peer.clients = fresh

    def delta(self, node: str, added: Iterable[str], removed: Iterable[str], now: float) -> None:
        """``node`` gained ``added`` and lost ``removed``."""
        peer = self._peer(node, now)
        owners = self.owners
        for client_id in removed:
            peer.clients.discard(client_id)
            if owners.get(client_id) == node:
                del owners[client_id]
        for client_id in added:
            peer.clients.add(client_id)
            owners[client_id] = node

    def heartbeat(self, node: str, count: int, now: float, every: float) -> bool:
        """``node`` is alive with ``count`` clients; True when a snapshot should be asked of
        it (it is new to us or out of step), at most once per ``every`` seconds."""
        known = node in self.peers
        peer = self._peer(node, now)
        if known and len(peer.clients) == count:
            return False
        if now - peer.asked_at < every:
            return False
        peer.asked_at = now
        return True

    def forget(self, node: str) -> None:
        """``node`` left (or died): its clients are no longer reachable."""
        peer = self.peers.pop(node, None)
        if peer is None:
            return
        owners = self.owners
        for client_id in peer.clients:
            if owners.get(client_id) == node:
                del owners[client_id]

    def expire(self, now: float, timeout: float) -> list[str]:
        """Forget the nodes not heard from for ``timeout`` seconds; their ids."""
        dead = [node for node, peer in self.peers.items() if now - peer.last_seen > timeout]
        for node in dead:
            self.forget(node)
        return dead
