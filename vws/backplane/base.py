"""The backplane interface: how fan-out reaches clients connected to other nodes.

Each node delivers to its own clients directly and hands the same pre-encoded frame to its
backplane, which carries it to every other node exactly once. A backplane never delivers a
node's own publications back to it, so nothing arrives twice. Nodes tell the backplane which
rooms have local members, so a broker-based backplane subscribes only to those.

The one exception is a frame of a room with a history (:meth:`Backplane.publish_positioned`):
its position comes from the broker, so every node, the sending one included, delivers it as
the broker hands it back, in position order, and never directly.
"""

from __future__ import annotations

import json
import secrets
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
    #: A frame of a room with recovery: its text carries its position, and it reaches every
    #: node watching the room in position order, its own node included.
    positioned: bool = False


Receiver = Callable[[Envelope], None]


class Retention(Struct, frozen=True):
    """How much of a room's history is kept: its last ``size`` frames, none older than ``ttl``
    seconds (0: no age limit). A room whose last frame is older than ``ttl`` has lost its
    history, and starts a new epoch."""

    size: int
    ttl: float = 0.0


class Position(Struct, frozen=True):
    """Where a room's history stands: the offset of its last frame (0 before the first) in the
    epoch, a name that changes whenever the room's history is lost."""

    offset: int
    epoch: str


class Recovery(Struct, frozen=True):
    """What a client resuming a room from a :class:`Position` missed.

    ``recovered`` is True when ``frames`` are every frame after that position, oldest first:
    the epoch is the room's and no frame after the offset has left the history. Otherwise
    ``frames`` is empty. ``position`` is the room's position after ``frames``: where the
    client stands once they are delivered, or, not recovered, the room's current position.
    """

    frames: list[str]
    position: Position
    recovered: bool


def new_epoch() -> str:
    """A fresh epoch name: unguessable, so two histories never share one."""
    return secrets.token_urlsafe(8)


def positioned_text(text: str, room: str, offset: int, epoch: str) -> str:
    """A frame's text (``{"event": ..., "payload": ...}``) with its room and position added.

    The text is a JSON object, so its closing brace is replaced by the new fields: this costs
    a string join, not a second encoding. Broker scripts build the same text the same way.
    """
    return f'{text[:-1]},"room":{json.dumps(room)},"offset":{offset},"epoch":"{epoch}"}}'


def recover(frames: list[tuple[int, str]], current: Position, since: Position) -> Recovery:
    """The answer for a client resuming from ``since``, given the room's kept ``frames``
    (offset and positioned text, oldest first) and its ``current`` position.

    A ``since`` of offset 0 with an empty epoch asks for the whole history: it is recovered
    when the history still holds the first frame of its epoch (or there was none yet).
    """
    epoch = current.epoch if since.offset == 0 and not since.epoch else since.epoch
    lost = Recovery([], current, False)
    if epoch != current.epoch or since.offset > current.offset:
        return lost  # another history, or a position this one never reached
    missed = [(offset, text) for offset, text in frames if offset > since.offset]
    expected = current.offset - since.offset
    if len(missed) != expected or (missed and missed[0][0] != since.offset + 1):
        return lost  # some of what came after has left the history
    return Recovery([text for _, text in missed], current, True)


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

    # Recovery: the rooms routes.toml gives a history (history_size, history_ttl). The broker
    # assigns each of their frames a position, so that positions agree whichever node a client
    # reconnects to, keeps the frames, and delivers them to every node in position order.

    def publish_positioned(self, envelope: Envelope, retention: Retention) -> None:
        """Give a ROOM envelope, whose text has no position yet, the room's next position; keep
        it in the room's history; and deliver it (its text made :func:`positioned_text`, its
        ``positioned`` set) to every node watching the room, this one included, through the
        receiver :meth:`start` was given, in position order. Never blocks the caller.

        A history that is lost (the broker flushed, its keys or stream deleted, or the room
        idle past ``retention.ttl``) starts again at offset 1 in a new epoch, never silently
        where it stood.
        """
        raise NotImplementedError(f"{type(self).__name__} keeps no room history")

    async def room_ready(self, path: str, room: str) -> None:
        """Return once every positioned frame of this watched room published from now on will
        reach this node (the broker confirmed the subscription). A resuming join waits for it
        before it reads the history, so no frame can fall between the two."""
        raise NotImplementedError(f"{type(self).__name__} keeps no room history")

    async def history(
        self, path: str, room: str, since: Position | None, retention: Retention
    ) -> Recovery:
        """What a client resuming ``room`` from ``since`` missed (see :func:`recover`); with
        ``since`` None, no frames and the room's current position.

        A room with no history (none yet, or lost) has one begun: offset 0 in a new epoch. So
        a client that joins before the first frame stands at a named position, and a history
        lost while it is away changes the epoch it resumes from, never a silent gap.
        """
        raise NotImplementedError(f"{type(self).__name__} keeps no room history")

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
