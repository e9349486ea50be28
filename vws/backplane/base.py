"""The backplane interface: how fan-out reaches clients connected to other nodes.

Each node delivers to its own clients directly and hands the same pre-encoded frame to its
backplane, which carries it to every other node exactly once. A backplane never delivers a
node's own publications back to it, so nothing arrives twice. Nodes tell the backplane which
rooms have local members, so a broker-based backplane subscribes only to those.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Collection
from enum import IntEnum
from typing import Annotated

from msgspec import Meta, Struct


class Target(IntEnum):
    ROOM = 0
    CLIENT = 1
    BROADCAST = 2


class Envelope(Struct, frozen=True, array_like=True):
    """One frame on its way to other nodes, encoded once at the sender.

    ``path`` is the room's path for ``ROOM``, and for ``BROADCAST`` the one route a
    route-scoped broadcast stays in ("" for a server-wide broadcast). ``target`` is the room
    name or the client id. ``exclude`` is a client id that must not receive it (the sender of
    a broadcast). ``origin`` is the publishing node. ``user`` is the sender's identity
    (``client.user``; "" for none), for the receiving node's ``vws_deliver`` hooks.
    """

    kind: Target
    path: str
    target: str
    exclude: str
    text: str
    origin: str = ""
    user: str = ""


Receiver = Callable[[Envelope], None]


class BackplaneOptions(Struct, frozen=True, kw_only=True):
    """How a broker backplane behaves; the ``[server]`` settings of the same names."""

    #: Starts every channel, subject and key, so several vws apps can share one broker.
    channel_prefix: Annotated[str, Meta(pattern=r"^[A-Za-z0-9_-]{1,64}$")] = "vws"
    #: Envelopes waiting for the broker; past it new ones are dropped and counted.
    publish_queue: Annotated[int, Meta(ge=1)] = 10000
    #: Seconds an envelope may wait for the broker before it is dropped and counted.
    publish_timeout: Annotated[float, Meta(gt=0)] = 5.0
    #: Seconds without a heartbeat after which a node counts as gone (its clients and shared
    #: hash fields with it); nodes send a heartbeat every quarter of it.
    node_timeout: Annotated[float, Meta(gt=0)] = 10.0
    #: Longest wait between two attempts to reach the broker (seconds; the wait doubles from
    #: a tenth of a second up to it).
    reconnect_max_delay: Annotated[float, Meta(gt=0)] = 2.0


class Backplane(ABC):
    """Carries envelopes between the nodes of one vws app."""

    def __init__(self, node_id: str) -> None:
        self.node_id = node_id
        self.options = BackplaneOptions()

    def configure(self, options: BackplaneOptions) -> None:
        """Take the ``[server]`` settings; called before :meth:`start`."""
        self.options = options

    @abstractmethod
    async def start(self, receive: Receiver, local_clients: Collection[str]) -> None:
        """Begin delivering other nodes' envelopes to ``receive`` (called on the event loop).

        ``local_clients`` holds the ids of this node's clients, for :meth:`has_client`.
        """

    @abstractmethod
    async def stop(self) -> None:
        """Stop receiving and release the connection."""

    @abstractmethod
    def publish(self, envelope: Envelope) -> None:
        """Send to the other nodes; never blocks the caller."""

    @abstractmethod
    def watch_room(self, path: str, room: str) -> None:
        """A room gained its first local member: receive its envelopes from now on."""

    @abstractmethod
    def unwatch_room(self, path: str, room: str) -> None:
        """A room lost its last local member."""

    # Shared state: small hashes every node reads and writes, for what must agree across nodes
    # (presence member lists). Each field is owned by the node that set it, so that the fields
    # of a node that died can be found and removed.

    @abstractmethod
    async def hash_set(self, key: str, field: str, value: str) -> None:
        """Set ``field`` of the shared hash ``key`` (owned by this node)."""

    @abstractmethod
    async def hash_delete(self, key: str, field: str) -> None:
        """Remove ``field`` from the shared hash ``key``."""

    @abstractmethod
    async def hash_get_all(self, key: str) -> dict[str, str]:
        """Every field of the shared hash ``key`` (empty when it does not exist)."""

    def has_client(self, client_id: str) -> bool:
        """Whether another node holds this client; False when it cannot be known cheaply."""
        return False

    def clients_changed(self, client_id: str) -> None:
        """A client of this node connected or went away (the hub calls this, after the change).

        A backplane that tells other nodes whom this node holds announces the difference;
        the others need do nothing.
        """
        return None

    @property
    def state(self) -> str:
        """``ok`` or ``degraded`` (the broker is out of reach; local delivery still works)."""
        return "ok"

    def stats(self) -> dict[str, int]:
        """Counters for ``GET /_vws/health``: envelopes published, received, dropped..."""
        return {}
