"""What every broker backplane shares: the publish queue, subscriptions, reconnection and the
client registry. A subclass only moves bytes to and from its broker.

- **Publishing never waits.** :meth:`publish` encodes the envelope once and appends it to a
  bounded queue; one task sends the queue in batches. An envelope that finds the queue full,
  or waits longer than ``publish_timeout`` for the broker, is dropped, counted and logged.
- **Channels.** A node listens on its room channels (one per room with local members), on
  the app's ``all`` channel (broadcasts and control messages) and on its own node channel
  (messages to one of its clients, and snapshots asked of it). Subscription changes are
  applied in batches by one task, so a burst of joins costs one round trip.
- **Reconnection.** One task owns the connection: it connects, subscribes to every channel
  the node needs, announces the node, and waits for the connection to fail; then it tries
  again after a growing delay (up to ``reconnect_max_delay``). Local delivery never depends on
  it. The node also listens for its own heartbeats: when they stop coming back, the
  subscription is dead even if the socket looks alive, and it reconnects.
- **Own publications.** Every message names its origin node; a node drops what it sent itself,
  so nothing is delivered twice even where the broker echoes publications. Positioned
  envelopes (rooms with a history) are the exception: the broker gives them their position,
  so every node, the publishing one included, delivers them only as the broker sends them
  back, and in the broker's order.
- **Positioned publishes** wait in the same queue as the others, so they keep their order
  with them, and are dropped and counted the same way when the broker is out of reach.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from abc import abstractmethod
from collections import deque
from collections.abc import Collection
from typing import NamedTuple

from vws.backplane.base import Backplane, Envelope, Receiver, Retention, Target
from vws.backplane.registry import Registry
from vws.backplane.wire import Control, Op, decode, encode_control, encode_envelope

logger = logging.getLogger("vws.backplane")

#: Most messages sent to the broker in one batch.
BATCH = 512
#: Most client ids in one announcement (a snapshot larger than this goes as several).
CHUNK = 5000
#: How long :meth:`BrokerBackplane.start` waits for the broker before serving without it.
START_WAIT = 2.0
#: How long :meth:`BrokerBackplane.stop` lets queued messages go out.
STOP_WAIT = 1.0


class BrokerError(Exception):
    """The broker could not be reached or refused a command."""


class PositionedPublish(NamedTuple):
    """A ROOM envelope waiting in the publish queue for the broker to give it a position."""

    envelope: Envelope
    retention: Retention


#: What waits in the publish queue for one channel: the bytes to publish, or a positioned publish.
Outgoing = bytes | PositionedPublish


class BrokerBackplane(Backplane):
    """A backplane over a pub/sub broker; subclasses implement the transport methods."""

    scheme = ""

    def __init__(self, node_id: str, url: str) -> None:
        super().__init__(node_id)
        self.url = url
        self.registry = Registry()
        self._receive: Receiver | None = None
        self._local: Collection[str] = ()
        self._queue: deque[tuple[float, str, Outgoing]] = deque()
        self._wake = asyncio.Event()
        #: Set while the queue is empty and nothing is being sent.
        self._idle = asyncio.Event()
        self._up = asyncio.Event()
        self._broken = asyncio.Event()
        self._dirty = asyncio.Event()
        #: Replaced and set whenever a room may have become ready (see :meth:`room_ready`).
        self._readiness = asyncio.Event()
        self._subscription_lock = asyncio.Lock()
        #: The channels of the rooms with local members.
        self._rooms: set[str] = set()
        self._subscribed: set[str] = set()
        #: The clients the other nodes were last told this node holds.
        self._announced: set[str] = set()
        #: Clients that connected or left since the last announcement.
        self._changed: set[str] = set()
        #: (hash key, field) → value, for every shared-hash field this node set.
        self._mine: dict[tuple[str, str], str] = {}
        self._connected = False
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []
        self._own_beat_at = 0.0
        self._dropped_logged_at = float("-inf")
        self._dropped_since_log = 0
        #: Why the broker last refused a message (see :meth:`_send`), for the log.
        self.refusal = ""
        self.counters = {"published": 0, "received": 0, "dropped": 0, "reconnects": 0}

    # -- channel names and the transport, per broker

    @property
    def prefix(self) -> str:
        return self.options.channel_prefix

    @abstractmethod
    def room_channel(self, path: str, room: str) -> str:
        """The channel of one room: never a pattern, whatever the room's name."""

    @abstractmethod
    def node_channel(self, node: str) -> str:
        """The channel of one node."""

    @property
    @abstractmethod
    def all_channel(self) -> str:
        """The channel every node listens on."""

    @abstractmethod
    async def _connect(self) -> None:
        """Open the connections (raise on failure)."""

    @abstractmethod
    async def _disconnect(self) -> None:
        """Close the connections, whatever state they are in; never raises."""

    @abstractmethod
    async def _subscribe(self, channels: list[str]) -> None: ...

    @abstractmethod
    async def _unsubscribe(self, channels: list[str]) -> None: ...

    @abstractmethod
    async def _send(self, batch: list[tuple[str, Outgoing]]) -> int:
        """Publish each ``(channel, data)`` in order; a :class:`PositionedPublish` goes to the
        room's history and reaches every node watching the room (this one too) in position
        order.

        Returns the number of messages the broker refused (dropped, counted by the caller);
        raises when the connection failed.
        """

    def _room_is_ready(self, channel: str) -> bool:
        """Whether the broker confirmed that this node receives the room's positioned frames
        (``channel`` is the room's, and the room is watched)."""
        return False

    def _readiness_changed(self) -> None:
        """Wake :meth:`room_ready` waiters: some room may have become ready."""
        self._readiness.set()
        self._readiness = asyncio.Event()

    @abstractmethod
    async def _listen(self) -> None:
        """Pass every message received to :meth:`_on_message` until the connection fails."""

    async def _joined(self) -> None:
        """Called after each (re)connection: refresh what the broker keeps about this node."""

    async def _heartbeat(self) -> None:
        """Called every heartbeat while connected (a broker may refresh a liveness key)."""

    async def _forget_nodes(self, nodes: list[str]) -> None:
        """Nodes left or died: remove what they left in the shared hashes (a node whose
        liveness the broker still vouches for is kept)."""

    async def _writers(self) -> set[str]:
        """The nodes that may have fields in the shared hashes."""
        return set()

    async def _leaving(self) -> None:
        """Called by :meth:`stop` while still connected: remove this node's shared state."""

    @abstractmethod
    async def _hash_set(self, key: str, field: str, value: str) -> None: ...

    @abstractmethod
    async def _hash_delete(self, key: str, field: str) -> None: ...

    @abstractmethod
    async def _drop_own_fields(self) -> None:
        """Remove every shared-hash field this node set."""

    # -- shared hashes, with a copy of this node's own fields

    async def hash_set(self, key: str, field: str, value: str) -> None:
        self._mine[(key, field)] = value
        await self._hash_set(key, field, value)

    async def hash_delete(self, key: str, field: str) -> None:
        self._mine.pop((key, field), None)
        await self._hash_delete(key, field)

    async def _restore_fields(self) -> None:
        """Write this node's fields again after a reconnection: the others may have taken it
        for dead and removed them, and changes made while the broker was away never got
        there."""
        await self._drop_own_fields()
        for (key, field), value in list(self._mine.items()):
            await self._hash_set(key, field, value)

    # -- the Backplane interface

    @property
    def state(self) -> str:
        return "ok" if self._connected else "degraded"

    def stats(self) -> dict[str, int]:
        return {**self.counters, "queued": len(self._queue), "rooms": len(self._rooms)}

    def has_client(self, client_id: str) -> bool:
        return client_id in self.registry.owners

    async def start(self, receive: Receiver, local_clients: Collection[str]) -> None:
        self._receive = receive
        self._local = local_clients
        loop = asyncio.get_running_loop()
        self._own_beat_at = loop.time()
        self._tasks = [
            loop.create_task(self._connection_loop()),
            loop.create_task(self._publisher()),
            loop.create_task(self._subscriber()),
            loop.create_task(self._ticker()),
        ]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._up.wait(), START_WAIT)
        if not self._connected:
            logger.warning(
                "backplane %s not reachable yet: serving local clients, retrying in the background",
                self.url,
            )

    async def stop(self) -> None:
        if self._connected:
            self._control(Op.BYE, self.all_channel)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._drained(), STOP_WAIT)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._leaving(), STOP_WAIT)
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=STOP_WAIT)
        self._tasks = []
        self._connected = False
        await self._disconnect()
        self._receive = None

    def publish(self, envelope: Envelope) -> None:
        kind = envelope.kind
        if kind is Target.ROOM:
            channel = self.room_channel(envelope.path, envelope.target)
        elif kind is Target.CLIENT:
            owner = self.registry.owners.get(envelope.target)
            if owner is None:
                return  # gone meanwhile: like a local client that has just disconnected
            channel = self.node_channel(owner)
        else:
            channel = self.all_channel
        self._enqueue(channel, encode_envelope(envelope))

    def publish_positioned(self, envelope: Envelope, retention: Retention) -> None:
        channel = self.room_channel(envelope.path, envelope.target)
        self._enqueue(channel, PositionedPublish(envelope, retention))

    async def room_ready(self, path: str, room: str) -> None:
        """Wait (up to ``publish_timeout``) for the broker to confirm the room's subscription.

        Raises:
            BrokerError: the broker is out of reach, or did not confirm in time, or the room is
                not watched.
        """
        channel = self.room_channel(path, room)
        if channel not in self._rooms:
            raise BrokerError(f"backplane {self.url}: room {room!r} of {path} is not watched")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.options.publish_timeout
        while not self._room_is_ready(channel):
            if not self._connected:
                raise BrokerError(f"backplane {self.url} is not connected")
            if channel not in self._rooms:
                raise BrokerError(f"backplane {self.url}: room {room!r} of {path} left meanwhile")
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise BrokerError(
                    f"backplane {self.url}: the broker did not confirm room {room!r} of {path} "
                    f"within {self.options.publish_timeout:g}s"
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._readiness.wait(), min(remaining, 0.25))

    def watch_room(self, path: str, room: str) -> None:
        self._rooms.add(self.room_channel(path, room))
        self._dirty.set()

    def unwatch_room(self, path: str, room: str) -> None:
        self._rooms.discard(self.room_channel(path, room))
        self._dirty.set()

    # -- publishing

    def _enqueue(self, channel: str, data: Outgoing, *, control: bool = False) -> None:
        queue = self._queue
        if len(queue) >= self.options.publish_queue and not control:
            self._drop(1, "the publish queue is full")
            return
        queue.append((asyncio.get_running_loop().time(), channel, data))
        self._idle.clear()
        self._wake.set()

    def _control(
        self, op: Op, channel: str, clients: list[str] | None = None, count: int = 0
    ) -> None:
        # Control messages pass a full queue: a lost heartbeat would make nodes forget a live one.
        control = Control(op, self.node_id, clients or [], count)
        self._enqueue(channel, encode_control(control), control=True)

    def _drop(self, count: int, why: str) -> None:
        """Count lost envelopes and log them, at most once a second."""
        self.counters["dropped"] += count
        self._dropped_since_log += count
        now = asyncio.get_running_loop().time()
        if now - self._dropped_logged_at >= 1.0:
            logger.warning(
                "backplane %s: %d message(s) not published (%s); %d in all",
                self.url,
                self._dropped_since_log,
                why,
                self.counters["dropped"],
            )
            self._dropped_logged_at = now
            self._dropped_since_log = 0

    def _expire_queue(self, now: float) -> None:
        queue, timeout, expired = self._queue, self.options.publish_timeout, 0
        while queue and now - queue[0][0] > timeout:
            queue.popleft()
            expired += 1
        if expired:
            self._drop(expired, f"the broker was out of reach for {timeout:g}s")

    async def _drained(self) -> None:
        await self._idle.wait()

    async def _publisher(self) -> None:
        loop = asyncio.get_running_loop()
        queue = self._queue
        while True:
            if not queue:
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            now = loop.time()
            self._expire_queue(now)
            if not queue:
                continue
            if not self._connected:
                wait = self.options.publish_timeout - (now - queue[0][0])
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._up.wait(), max(wait, 0.01))
                continue
            batch = [queue.popleft()[1:] for _ in range(min(len(queue), BATCH))]
            try:
                refused = await asyncio.wait_for(self._send(batch), self.options.publish_timeout)
            except (Exception, TimeoutError) as exc:
                self._drop(len(batch), f"publishing failed: {exc!r}")
                self._lost()
            else:
                self.counters["published"] += len(batch) - refused
                if refused:
                    self._drop(refused, f"the broker refused them: {self.refusal}")

    # -- the connection

    def _stopping_now(self) -> bool:
        """``_stopping`` as it is after an await: ``stop`` may have set it meanwhile (a call
        keeps the type checker from carrying the loop condition's answer across the await)."""
        return self._stopping

    def _lost(self) -> None:
        if self._connected:
            self._connected = False
            self._up.clear()
            logger.warning("backplane %s: connection lost; reconnecting", self.url)
        self._broken.set()

    async def _connection_loop(self) -> None:
        delay = 0.1
        first = True
        while not self._stopping:
            self._broken.clear()
            try:
                await self._connect()
                async with self._subscription_lock:
                    channels = [self.all_channel, self.node_channel(self.node_id), *self._rooms]
                    await self._subscribe(channels)
                    self._subscribed = set(channels)
                listening = asyncio.get_running_loop().create_task(self._listen())
            except Exception as exc:
                logger.warning(
                    "backplane %s unreachable (%s); next attempt in %.1fs", self.url, exc, delay
                )
            else:
                await self._on_connected(first)
                first = False
                delay = 0.1
                broken = asyncio.get_running_loop().create_task(self._broken.wait())
                try:
                    await asyncio.wait({listening, broken}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for task in (listening, broken):
                        task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await listening
                self._lost()
            self._connected = False
            self._up.clear()
            await self._disconnect()
            if self._stopping_now():
                return
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, self.options.reconnect_max_delay)

    async def _on_connected(self, first: bool) -> None:
        if not first:
            self.counters["reconnects"] += 1
        try:
            await self._joined()
            if self._mine or not first:
                await self._restore_fields()
        except Exception:
            logger.exception("backplane %s: refreshing this node's state failed", self.url)
        self._own_beat_at = asyncio.get_running_loop().time()
        self._connected = True
        self._up.set()
        logger.info("backplane %s connected (node %s)", self.url, self.node_id)
        self._announced = set(self._local)
        self._changed.clear()  # the snapshot says it all
        self._send_snapshot(self.all_channel)
        self._control(Op.HELLO, self.all_channel)
        self._control(Op.HEARTBEAT, self.all_channel, count=len(self._announced))
        self._dirty.set()

    async def _subscriber(self) -> None:
        """Bring the broker's subscriptions in line with the rooms that have local members."""
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            if not self._connected:
                continue
            async with self._subscription_lock:
                want = {self.all_channel, self.node_channel(self.node_id), *self._rooms}
                extra = sorted(self._subscribed - want)
                missing = sorted(want - self._subscribed)
                try:
                    if missing:
                        await self._subscribe(missing)
                        self._subscribed.update(missing)
                    if extra:
                        await self._unsubscribe(extra)
                        self._subscribed.difference_update(extra)
                except Exception as exc:
                    logger.warning("backplane %s: subscribing failed (%s)", self.url, exc)
                    self._lost()

    # -- announcing this node and hearing the others

    def _send_snapshot(self, channel: str) -> None:
        clients = sorted(self._announced)
        self._control(Op.SNAPSHOT, channel, clients[:CHUNK])
        for start in range(CHUNK, len(clients), CHUNK):
            self._control(Op.ADDED, channel, clients[start : start + CHUNK])

    def clients_changed(self, client_id: str) -> None:
        """Announce, at the end of this turn of the loop, who connected and who left.

        Announcing once per turn rather than once per client keeps a storm of connections
        to a few messages; announcing in the same turn keeps ``Client.to`` on other nodes one
        broker round trip behind a connection, no more.
        """
        if not self._changed:
            asyncio.get_running_loop().call_soon(self._announce)
        self._changed.add(client_id)

    def _announce(self) -> None:
        changed, self._changed = self._changed, set()
        local, announced = self._local, self._announced
        added = sorted(c for c in changed if c in local and c not in announced)
        removed = sorted(c for c in changed if c not in local and c in announced)
        announced.update(added)
        announced.difference_update(removed)
        for start in range(0, len(removed), CHUNK):
            self._control(Op.REMOVED, self.all_channel, removed[start : start + CHUNK])
        for start in range(0, len(added), CHUNK):
            self._control(Op.ADDED, self.all_channel, added[start : start + CHUNK])

    async def _ticker(self) -> None:
        loop = asyncio.get_running_loop()
        beat_every = self.options.node_timeout / 4
        beats = 0
        while True:
            await asyncio.sleep(beat_every)
            now = loop.time()
            dead = self.registry.expire(now, self.options.node_timeout)
            if dead:
                logger.warning("backplane %s: node(s) %s stopped answering", self.url, dead)
            if not self._connected:
                continue
            if now - self._own_beat_at > 2.5 * beat_every:
                logger.warning("backplane %s: own heartbeats stopped coming back", self.url)
                self._lost()
                continue
            self._control(Op.HEARTBEAT, self.all_channel, count=len(self._announced))
            beats += 1
            try:
                await self._heartbeat()
                if beats % 4 == 0:  # once per node_timeout: also nodes this one never heard
                    heard = {self.node_id, *self.registry.peers}
                    dead = sorted(set(dead) | (await self._writers() - heard))
                if dead:
                    await self._forget_nodes(dead)
            except Exception as exc:
                logger.warning("backplane %s: heartbeat failed (%s)", self.url, exc)

    def _on_message(self, data: bytes) -> None:
        try:
            message = decode(data)
        except ValueError as exc:
            logger.warning("backplane %s: ignoring a message vws cannot read (%s)", self.url, exc)
            return
        if type(message) is Envelope:
            receive = self._receive
            if receive is not None and (message.origin != self.node_id or message.positioned):
                self.counters["received"] += 1
                receive(message)
            return
        assert isinstance(message, Control)
        node = message.node
        now = asyncio.get_running_loop().time()
        registry = self.registry
        op = message.op
        if node == self.node_id:
            if op is Op.HEARTBEAT:
                self._own_beat_at = now
            return
        if op is Op.HEARTBEAT:
            if registry.heartbeat(node, message.count, now, self.options.node_timeout / 4):
                self._control(Op.SYNC, self.node_channel(node))
        elif op is Op.ADDED:
            registry.delta(node, message.clients, (), now)
        elif op is Op.REMOVED:
            registry.delta(node, (), message.clients, now)
        elif op is Op.SNAPSHOT:
            registry.snapshot(node, message.clients, now)
        elif op is Op.HELLO or op is Op.SYNC:
            registry.seen(node, now)
            self._send_snapshot(self.node_channel(node))
        elif op is Op.BYE:
            registry.forget(node)
