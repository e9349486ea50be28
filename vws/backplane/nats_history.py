"""Room histories on NATS JetStream: one stream per app, one subject per room.

The stream ``PREFIX_hist`` captures ``PREFIX.hist.PATH.ROOM`` (path and room tokenised as the
room subjects are). Each message is a positioned envelope as :mod:`vws.backplane.wire` encodes
it, with headers ``Vws-Offset``, ``Vws-Epoch`` and ``Vws-Prev`` (the stream sequence of the
room's previous frame, 0 for none).

- **One authority.** A node gives a frame the offset after the room's last message and
  publishes it with ``Nats-Expected-Last-Subject-Sequence`` set to that message's sequence:
  JetStream refuses it (10071) when another node got there first, and the node reads the last
  message again and retries. So a room's offsets are contiguous whichever nodes publish, and
  its stream order is its offset order. A room with no message left, or whose last one is
  older than its ttl, starts again in a new epoch; a deleted stream is made again by the next
  publish, so every room starts a new epoch. Reading such a room (a join) begins its epoch
  with a mark: a message with offset 0 and no data, which nodes skip.
- **Delivery from the stream.** A refused JetStream publish still reaches core subscribers of
  its subject, so no node subscribes to history subjects: each node has one push consumer on
  ``PREFIX.hist.>`` and keeps the frames of the rooms it watches. One consumer per node, not
  per room, because nats-server 2.9 filters a consumer by one subject and a node does not know,
  when a room is watched, whether it keeps a history. Consumer sequences tell a gap (the
  client dropped frames); the consumer is then made again from the last frame delivered, and a
  stream that was deleted and made again (another creation time) is read from its start, so a
  node's frames stay complete and in order.
- **Limits.** One stream serves rooms of every retention, so it keeps as many messages per
  subject as the largest size (this only grows) and has no age limit; each room's own size
  and ttl are applied on reading and publishing (a room whose last frame is older than its
  ttl starts a new epoch). So the frames of a room with a ttl that is never used again stay
  in the stream (at most its size), unlike on Redis, where its keys expire. Times are the
  server's; a node's clock is only compared with them for ttl.
- **The stream is made when a node connects** (or finds it deleted), not at the first frame,
  so every node's consumer exists before frames flow; after a deletion, a node's consumer
  reads the new stream from its start once it finds it (at its next heartbeat).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from typing import Any

import msgspec
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StreamConfig
from nats.js.errors import APIError, NoStreamResponseError, NotFoundError

from vws.backplane.base import (
    Envelope,
    Position,
    Recovery,
    Retention,
    new_epoch,
    positioned_text,
    recover,
)
from vws.backplane.wire import decode, encode_envelope

logger = logging.getLogger("vws.backplane")

#: JetStream's error code for a publish whose expected last subject sequence is not the last.
WRONG_LAST_SEQUENCE = 10071
#: JetStream's error code for a stream that does not exist.
STREAM_NOT_FOUND = 10059
#: Attempts at one positioned publish while other nodes keep getting there first.
ATTEMPTS = 200
#: The header with a message's offset in its room (0: the mark that begins a history).
OFFSET = "Vws-Offset"
#: Seconds after which the server removes a consumer whose node went away without a word.
INACTIVE = 30.0


class Tail(msgspec.Struct, frozen=True, array_like=True):
    """A room's last message: its stream sequence, position and server time (0 seq: none)."""

    seq: int
    offset: int
    epoch: str
    at: float


NO_TAIL = Tail(0, 0, "", 0.0)


class NatsHistory:
    """The app's history stream as one node uses it, over the node's current connection."""

    def __init__(
        self, prefix: str, deliver: Callable[[str, bytes], None], changed: Callable[[], None]
    ) -> None:
        self.prefix = prefix
        self.stream = f"{prefix}_hist"
        self.subjects = f"{prefix}.hist.>"
        #: Called with (subject, data) for every frame the consumer delivers, in stream order.
        self._deliver = deliver
        #: Called when the consumer was (re)made: rooms may have become ready.
        self._changed = changed
        self._repair: asyncio.Task[None] | None = None
        self._nc: NatsClient | None = None
        self._js: JetStreamContext | None = None
        #: Messages per subject the stream is known to keep.
        self._limits: int | None = None
        #: The stream's creation time as the consumer last found it (None: no consumer).
        self._created: Any = None
        self._consumer: str | None = None
        self._feed: Any = None  # the core subscription of the consumer's deliver subject
        self._generation = 0
        self._stream_seq = 0
        self._consumer_seq = 0
        #: Set when the consumer saw a gap: it is made again at the next :meth:`check`.
        self._gap = False

    def subject(self, path_token: str, room_token: str) -> str:
        return f"{self.prefix}.hist.{path_token}.{room_token}"

    # -- the connection

    async def open(self, nc: NatsClient) -> None:
        """Use a new connection: find the stream and consume it from its current end."""
        self._nc, self._js = nc, nc.jetstream()
        self._consumer = self._feed = self._created = self._limits = None
        self._gap = False
        await self.check(from_end=True)

    def close(self) -> None:
        """The connection is gone, and its subscriptions with it."""
        self._nc = self._js = None
        self._consumer = self._feed = self._created = None
        self._generation += 1

    async def leave(self) -> None:
        """The node stops: remove its consumer now rather than when the server notices."""
        consumer = self._consumer
        await self._drop_feed()
        if consumer is not None and self._js is not None:
            with contextlib.suppress(Exception):
                await self._js.delete_consumer(self.stream, consumer)

    @property
    def ready(self) -> bool:
        """Whether every frame published from now on reaches this node: the consumer exists."""
        return self._js is not None and self._consumer is not None

    def _jetstream(self) -> JetStreamContext:
        if self._js is None:
            raise ConnectionError("not connected")
        return self._js

    async def check(self, *, from_end: bool = False) -> None:
        """Keep the consumer attached to the stream (called at each heartbeat): make a stream
        that is missing, read a stream made again from its start, and make a consumer that is
        gone or saw a gap again from the last frame delivered.

        The stream is made as soon as a node needs it, not at the first frame: so every
        node's consumer is there before frames flow, and none is missed.
        """
        js = self._jetstream()
        info = await self._stream(js, 1)
        self._limits = info.config.max_msgs_per_subject
        if self._consumer is not None and info.created == self._created and not self._gap:
            with contextlib.suppress(NotFoundError):
                await js.consumer_info(self.stream, self._consumer)
                return
        if info.created != self._created:  # another stream: all of it is new to this node
            start = info.state.last_seq + 1 if from_end else 1
        else:
            start = self._stream_seq + 1
        await self._attach(info.created, start)

    async def _stream(self, js: JetStreamContext, size: int) -> Any:
        """The stream's info, the stream made first if it is missing."""
        try:
            return await js.stream_info(self.stream)
        except NotFoundError:
            pass
        config = StreamConfig(
            name=self.stream, subjects=[self.subjects], max_msgs_per_subject=size, max_age=0
        )
        with contextlib.suppress(APIError):  # another node made it meanwhile
            return await js.add_stream(config)
        return await js.stream_info(self.stream)

    async def _drop_feed(self) -> None:
        self._generation += 1
        feed, self._feed, self._consumer = self._feed, None, None
        if feed is not None:
            with contextlib.suppress(Exception):
                await feed.unsubscribe()

    async def _attach(self, created: Any, start: int) -> None:
        nc, js = self._nc, self._jetstream()
        assert nc is not None
        await self._drop_feed()
        generation = self._generation
        inbox = nc.new_inbox()

        async def on_frame(msg: Msg) -> None:
            if generation == self._generation:
                self._on_frame(msg)

        # Set before the consumer exists: it may deliver before its creation is acknowledged.
        self._stream_seq, self._consumer_seq, self._gap = start - 1, 0, False
        feed = await nc.subscribe(inbox, cb=on_frame)
        config = ConsumerConfig(
            deliver_subject=inbox,
            filter_subject=self.subjects,
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=max(start, 1),
            ack_policy=AckPolicy.NONE,
            max_deliver=1,
            mem_storage=True,
            num_replicas=1,
            inactive_threshold=INACTIVE,
        )
        try:
            consumer = await js.add_consumer(self.stream, config=config)
        except BaseException:
            with contextlib.suppress(Exception):
                await feed.unsubscribe()
            raise
        self._feed, self._consumer, self._created = feed, consumer.name, created
        self._changed()

    def _on_frame(self, msg: Msg) -> None:
        if not msg.data and (msg.headers or {}).get(OFFSET) != "0":
            return  # a status message (none is asked for: no heartbeat, no flow control)
        sequence = msg.metadata.sequence
        if sequence.consumer != self._consumer_seq + 1:
            # Frames were lost on the way (a slow client drops them): deliver nothing more
            # from this consumer, and make one again from the last frame delivered.
            self._gap = True
            self._generation += 1
            self._repair = asyncio.get_running_loop().create_task(self._reattach())
            return
        self._consumer_seq, self._stream_seq = sequence.consumer, sequence.stream
        if msg.data:  # not the mark that begins a room's history
            self._deliver(msg.subject, msg.data)

    async def _reattach(self) -> None:
        try:
            await self.check()
        except Exception as exc:  # the next heartbeat tries again
            logger.warning(
                "backplane: reading the history stream %s again failed (%s)", self.stream, exc
            )

    # -- writing

    async def publish(
        self, subject: str, envelope: Envelope, retention: Retention, known: dict[str, Tail]
    ) -> None:
        """Give the frame the room's next position and publish it to the stream.

        ``known`` holds the rooms' last messages as this batch of publishes left them: the
        next frame of a room follows its own acknowledgement without reading the room again.
        A frame that loses the race to another node reads the room's last message again, and
        tries again after a short random wait, so that nodes publishing into one room take
        turns.

        Raises:
            Exception: the broker is out of reach, or refused the frame.
        """
        js = self._jetstream()
        await self._hold(retention)
        tail = known.get(subject) or await self._tail(subject)
        for attempt in range(ATTEMPTS):
            offset, epoch = tail.offset + 1, tail.epoch
            if not _continues(tail, retention):
                offset, epoch = 1, new_epoch()
            text = positioned_text(envelope.text, envelope.target, offset, epoch)
            data = encode_envelope(msgspec.structs.replace(envelope, text=text, positioned=True))
            try:
                ack = await js.publish(subject, data, headers=_headers(tail, offset, epoch))
            except NoStreamResponseError:  # deleted: every room starts again, in a new epoch
                known.clear()
                await self._grow(retention)
                tail = NO_TAIL
                continue
            except APIError as exc:
                if exc.err_code != WRONG_LAST_SEQUENCE:
                    raise
                await asyncio.sleep(random.uniform(0, 0.001 * min(attempt + 1, 10)))
                tail = await self._tail(subject)  # another node published first
                continue
            known[subject] = Tail(ack.seq, offset, epoch, time.time())
            return
        raise RuntimeError(f"no position for a frame of {envelope.target!r} in {ATTEMPTS} tries")

    async def _hold(self, retention: Retention) -> None:
        """Make sure the stream exists and keeps ``retention.size`` frames a room; asks the
        server only when this node does not know it already does."""
        if self._limits is None or self._limits < retention.size:
            await self._grow(retention)

    async def _grow(self, retention: Retention) -> None:
        """Make the stream, or let it keep ``retention.size`` frames a room (never fewer than
        it kept: other rooms may need them)."""
        js = self._jetstream()
        info = await self._stream(js, retention.size)
        config = info.config
        if config.max_msgs_per_subject < retention.size:
            config.max_msgs_per_subject = retention.size
            await js.update_stream(config)
        self._limits = config.max_msgs_per_subject
        if self._consumer is None or info.created != self._created:
            await self.check()

    async def _tail(self, subject: str) -> Tail:
        try:
            msg = await self._jetstream().get_last_msg(self.stream, subject)
        except NotFoundError:
            return NO_TAIL
        return _tail_of(msg)

    async def _begun(self, subject: str, retention: Retention) -> Tail:
        """The room's last message, a mark (offset 0, a new epoch, no data) published first
        when the room has none, or only one older than its ttl: a client that joins before
        the first frame then stands at a named position, and a history lost while it is away
        is told, not taken for one it saw from the start."""
        js = self._jetstream()
        await self._hold(retention)
        for _ in range(ATTEMPTS):
            tail = await self._tail(subject)
            if _continues(tail, retention):
                return tail
            epoch = new_epoch()
            try:
                ack = await js.publish(subject, b"", headers=_headers(tail, 0, epoch))
            except NoStreamResponseError:  # deleted: made again, then marked
                await self._grow(retention)
                continue
            except APIError as exc:
                if exc.err_code != WRONG_LAST_SEQUENCE:
                    raise
                continue  # a frame or another node's mark came first: read the room again
            return Tail(ack.seq, 0, epoch, time.time())
        raise RuntimeError(f"no position for {subject!r} in {ATTEMPTS} tries")

    # -- reading

    async def history(
        self, subject: str, room: str, since: Position | None, retention: Retention
    ) -> Recovery:
        """See :meth:`vws.backplane.base.Backplane.history`: the room's last message gives its
        position; the frames after ``since`` are read back from it, each naming the sequence
        of the one before, so only the frames asked for are read."""
        js = self._jetstream()
        tail = await self._begun(subject, retention)
        now = time.time()
        current = Position(tail.offset, tail.epoch)
        if since is None:
            return Recovery([], current, False)
        # A shortcut only, so that no frame is read for a resume that cannot be recovered:
        # recover() gives the answer either way.
        wanted = current.offset - since.offset
        epoch = current.epoch if since.offset == 0 and not since.epoch else since.epoch
        if wanted <= 0 or wanted > retention.size or epoch != current.epoch:
            return recover([], current, since)
        frames: list[tuple[int, str]] = []
        seq = tail.seq
        while seq and len(frames) < wanted:
            try:
                msg = await js.get_msg(self.stream, seq=seq)
            except NotFoundError:
                break  # aged out or pushed out: the history no longer holds it
            kept = _tail_of(msg)
            if msg.subject != subject or kept.epoch != current.epoch or not kept.offset:
                break
            if retention.ttl and now - kept.at > retention.ttl:
                break
            envelope = decode(msg.data or b"")
            assert isinstance(envelope, Envelope)
            frames.append((kept.offset, envelope.text))
            seq = int((msg.headers or {}).get("Vws-Prev", 0))
        frames.reverse()
        return recover(frames, current, since)


def _continues(tail: Tail, retention: Retention) -> bool:
    """Whether the room's next message goes on from ``tail`` in its epoch: there is a last
    message, and it is younger than the room's ttl."""
    return bool(tail.seq) and not (retention.ttl and time.time() - tail.at > retention.ttl)


def _headers(tail: Tail, offset: int, epoch: str) -> dict[str, str]:
    """The headers of the message after ``tail``: JetStream refuses it if ``tail`` is no
    longer the room's last."""
    last = str(tail.seq)
    return {
        "Nats-Expected-Last-Subject-Sequence": last,
        OFFSET: str(offset),
        "Vws-Epoch": epoch,
        "Vws-Prev": last,
    }


def _tail_of(msg: Any) -> Tail:
    headers = msg.headers or {}
    at = msg.time.timestamp() if msg.time is not None else 0.0
    return Tail(msg.seq or 0, int(headers.get(OFFSET, 0)), headers.get("Vws-Epoch", ""), at)
