"""The Redis backplane: ``redis://[user:password@]host:port/db``.

Channels (``PREFIX`` is ``[server] channel_prefix``): ``PREFIX:all``, ``PREFIX:node:ID`` and
``PREFIX:room:PATH:ROOM`` with ``%`` and ``:`` escaped in the path and room, so no two rooms
share a channel. Only SUBSCRIBE is used, never PSUBSCRIBE, so a room name is never a pattern.

Shared hashes live in ``PREFIX:hash:KEY``; each field's value carries the node that set it.
A node keeps ``PREFIX:alive:ID`` alive with its heartbeat, lists the hashes it wrote in
``PREFIX:owned:ID`` and itself in ``PREFIX:writers``; the fields of a node whose liveness key
has expired are removed when a surviving node notices it is gone, when any node reads them,
and when any node starts.

Room histories (rooms with recovery) are kept by Redis itself, see
:mod:`vws.backplane.redis_history`: a positioned publish is one EVALSHA, pipelined with the
plain publishes in the same batches, so recovery costs no extra round trip per frame.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections import Counter
from typing import Any, cast

import hiredis
import redis.asyncio as aioredis

from vws.backplane import redis_history
from vws.backplane.base import Position, Recovery, Retention, new_epoch, recover
from vws.backplane.broker import BrokerBackplane, BrokerError, Outgoing, PositionedPublish
from vws.backplane.resp import RedisAddress, RespConnection, encode_command
from vws.backplane.wire import positioned_parts

logger = logging.getLogger("vws.backplane")

_SEP = "\x00"
#: Most rooms whose EVALSHA start is kept encoded (see ``_positioned_command``).
COMMAND_STARTS = 10000


def _escape(text: str) -> str:
    return text.replace("%", "%25").replace(":", "%3A")


class RedisBackplane(BrokerBackplane):
    scheme = "redis"

    def __init__(self, node_id: str, url: str) -> None:
        super().__init__(node_id, url)
        self._address = RedisAddress(url)
        self._pub: RespConnection | None = None
        self._sub: RespConnection | None = None
        self._client: aioredis.Redis | None = None
        self._read_history: Any = None  # redis-py's Script (untyped), for the current client
        #: Room channels whose subscription Redis confirmed on the current connection.
        self._live: set[str] = set()
        #: Subscription changes sent and not yet confirmed, per channel.
        self._pending: Counter[str] = Counter()
        #: (room channel, retention) → the encoded start of its positioned publishes.
        self._command_starts: dict[tuple[str, Retention], bytes] = {}

    # -- names

    def room_channel(self, path: str, room: str) -> str:
        return f"{self.prefix}:room:{_escape(path)}:{_escape(room)}"

    def node_channel(self, node: str) -> str:
        return f"{self.prefix}:node:{node}"

    @property
    def all_channel(self) -> str:
        return f"{self.prefix}:all"

    def _alive_key(self, node: str) -> str:
        return f"{self.prefix}:alive:{node}"

    def _owned_key(self, node: str) -> str:
        return f"{self.prefix}:owned:{node}"

    def _hash_key(self, key: str) -> str:
        return f"{self.prefix}:hash:{key}"

    def _history_keys(self, path: str, room: str) -> tuple[str, str]:
        """The room's position hash and its stream of frames."""
        base = f"{self.prefix}:hist:{_escape(path)}:{_escape(room)}"
        return f"{base}:pos", f"{base}:frames"

    @property
    def _writers_key(self) -> str:
        """The set of nodes that may have fields in the shared hashes."""
        return f"{self.prefix}:writers"

    # -- transport

    async def _connect(self) -> None:
        self._live.clear()
        self._pending.clear()
        self._pub = await RespConnection.open(self._address)
        self._sub = await RespConnection.open(self._address)
        # The publishing connection runs the history script, which touches keys: it must use
        # the URL's database (pub/sub alone ignores it), and find the script loaded.
        if self._address.db:
            self._pub.write(encode_command("SELECT", self._address.db))
            await self._pub.expect_ok()
        await self._load_script(self._pub)
        self._client = aioredis.Redis.from_url(
            self.url, decode_responses=True, socket_connect_timeout=5.0, socket_timeout=5.0
        )
        self._read_history = self._client.register_script(redis_history.READ)

    @staticmethod
    async def _load_script(connection: RespConnection) -> None:
        connection.write(encode_command("SCRIPT", "LOAD", redis_history.PUBLISH))
        await connection.drain()
        reply = await connection.read()
        if isinstance(reply, hiredis.ReplyError):
            raise ConnectionError(f"Redis refused the history script: {reply}")

    async def _disconnect(self) -> None:
        for connection in (self._pub, self._sub):
            if connection is not None:
                connection.close()
        self._pub = self._sub = None
        client, self._client = self._client, None  # its pooled connections may be dead too
        if client is not None:
            with contextlib.suppress(Exception):
                await client.aclose()

    async def _subscribe(self, channels: list[str]) -> None:
        await self._command_sub("SUBSCRIBE", channels)

    async def _unsubscribe(self, channels: list[str]) -> None:
        await self._command_sub("UNSUBSCRIBE", channels)

    async def _command_sub(self, command: str, channels: list[str]) -> None:
        """Subscription changes go in batches; their confirmations are read by the listener."""
        if self._sub is None:
            raise ConnectionError("not connected")
        live, pending = self._live, self._pending
        for channel in channels:  # live again only once this change is confirmed
            live.discard(channel)
            pending[channel] += 1
        for start in range(0, len(channels), 1000):
            self._sub.write(encode_command(command, *channels[start : start + 1000]))
        await self._sub.drain()

    async def _send(self, batch: list[tuple[str, Outgoing]]) -> int:
        connection = self._pub
        if connection is None:
            raise ConnectionError("not connected")
        commands = [
            encode_command("PUBLISH", ch, data)
            if type(data) is bytes
            else self._positioned_command(ch, cast("PositionedPublish", data))
            for ch, data in batch
        ]
        connection.write(b"".join(commands))
        await connection.drain()
        refused, unknown = 0, []
        for command in commands:
            reply = await connection.read()
            if type(reply) is hiredis.ReplyError:
                if str(reply).startswith("NOSCRIPT"):
                    unknown.append(command)
                else:
                    refused += 1
                    self.refusal = str(reply)
        if unknown:  # the script cache was flushed: load it again, send those again in order
            await self._load_script(connection)
            connection.write(b"".join(unknown))
            await connection.drain()
            for _ in unknown:
                reply = await connection.read()
                if type(reply) is hiredis.ReplyError:
                    refused += 1
                    self.refusal = str(reply)
        return refused

    def _positioned_command(self, channel: str, publish: PositionedPublish) -> bytes:
        """The EVALSHA that positions, keeps and publishes one frame (see
        :data:`~vws.backplane.redis_history.PUBLISH`); what is the same for every frame of a
        room is encoded once."""
        envelope, retention = publish
        key = (channel, retention)
        start = self._command_starts.get(key)
        if start is None:
            if len(self._command_starts) >= COMMAND_STARTS:
                self._command_starts.clear()
            pos, frames = self._history_keys(envelope.path, envelope.target)
            start = self._command_starts[key] = encode_command(
                "EVALSHA", redis_history.PUBLISH_SHA, 2, pos, frames,
                json.dumps(envelope.target), channel, retention.size, int(retention.ttl * 1000),
            ).partition(b"\r\n")[2]  # fmt: skip
        head, tail = positioned_parts(envelope)
        rest = encode_command(new_epoch(), envelope.text, head, tail).partition(b"\r\n")[2]
        return b"*13\r\n" + start + rest  # one command: 9 arguments in start, 4 in rest

    async def _listen(self) -> None:
        connection = self._sub
        if connection is None:
            raise ConnectionError("not connected")
        on_message = self._on_message
        while True:
            await connection.fill()
            for reply in connection.replies():
                if reply[0] == b"message":
                    on_message(reply[2])
                elif reply[0] in (b"subscribe", b"unsubscribe"):
                    self._confirmed(reply[0] == b"subscribe", reply[1].decode())

    def _confirmed(self, subscribed: bool, channel: str) -> None:
        """Redis confirmed a subscription change: a channel whose every change is confirmed,
        the last a SUBSCRIBE, hears everything published from now on."""
        pending = self._pending
        pending[channel] -= 1
        if pending[channel] > 0:
            return
        del pending[channel]
        if subscribed:
            self._live.add(channel)
            self._readiness_changed()
        else:
            self._live.discard(channel)

    def _room_is_ready(self, channel: str) -> bool:
        return channel in self._live and channel in self._rooms

    # -- room histories

    async def history(
        self, path: str, room: str, since: Position | None, retention: Retention
    ) -> Recovery:
        """The room's position and, asked ``since`` a position, what came after it, read in one
        script so that they agree.

        Raises:
            BrokerError: Redis is out of reach or refused the script.
        """
        if self._read_history is None or self._client is None:
            raise BrokerError(f"backplane {self.url} is not connected")
        after = "" if since is None else str(since.offset)
        try:
            reply = await self._read_history(
                keys=self._history_keys(path, room),
                args=[after, new_epoch(), int(retention.ttl * 1000)],
                client=self._client,
            )
        except (aioredis.RedisError, OSError) as exc:
            raise BrokerError(f"backplane {self.url}: {exc}") from exc
        current, frames = redis_history.read_reply(reply, retention)
        if since is None:
            return Recovery([], current, False)
        return recover(frames, current, since)

    # -- this node's state on the broker

    def _redis(self) -> aioredis.Redis:  # decode_responses=True: every reply is str
        if self._client is None:
            raise BrokerError(f"backplane {self.url} is not connected")
        return self._client

    async def _heartbeat(self) -> None:
        ttl = int(self.options.node_timeout * 1000)
        await self._redis().set(self._alive_key(self.node_id), "1", px=ttl)

    async def _joined(self) -> None:
        await self._heartbeat()
        await self._forget_nodes(sorted(await self._writers() - {self.node_id}))

    async def _writers(self) -> set[str]:
        return cast("set[str]", await self._redis().smembers(self._writers_key))

    async def _forget_nodes(self, nodes: list[str]) -> None:
        client = self._redis()
        for node in nodes:
            if not await client.exists(self._alive_key(node)):
                await self._purge(node)

    async def _leaving(self) -> None:
        await self._purge(self.node_id)
        await self._redis().delete(self._alive_key(self.node_id))

    async def _purge(self, node: str) -> None:
        """Remove every shared-hash field ``node`` set."""
        client = self._redis()
        owned = self._owned_key(node)
        for key in cast("set[str]", await client.smembers(owned)):
            values = cast("dict[str, str]", await client.hgetall(key))
            fields = [f for f, v in values.items() if v.partition(_SEP)[0] == node]
            if fields:
                await client.hdel(key, *fields)
        await client.delete(owned)
        await client.srem(self._writers_key, node)
        if node != self.node_id:
            logger.info("backplane %s: removed the shared state of node %s", self.url, node)

    # -- shared hashes

    async def _drop_own_fields(self) -> None:
        await self._purge(self.node_id)

    async def _hash_set(self, key: str, field: str, value: str) -> None:
        try:
            async with self._redis().pipeline(transaction=False) as pipe:
                pipe.hset(self._hash_key(key), field, f"{self.node_id}{_SEP}{value}")
                pipe.sadd(self._owned_key(self.node_id), self._hash_key(key))
                pipe.sadd(self._writers_key, self.node_id)
                await pipe.execute()
        except aioredis.RedisError as exc:
            raise BrokerError(f"backplane {self.url}: {exc}") from exc

    async def _hash_delete(self, key: str, field: str) -> None:
        try:
            await self._redis().hdel(self._hash_key(key), field)
        except aioredis.RedisError as exc:
            raise BrokerError(f"backplane {self.url}: {exc}") from exc

    async def hash_get_all(self, key: str) -> dict[str, str]:
        client = self._redis()
        name = self._hash_key(key)
        try:
            raw = cast("dict[str, str]", await client.hgetall(name))
            owners = {f: v.partition(_SEP) for f, v in raw.items()}
            others = sorted({node for node, _, _ in owners.values()} - {self.node_id})
            dead: set[str] = set()
            if others:
                alive = await client.mget([self._alive_key(node) for node in others])
                dead = {node for node, flag in zip(others, alive, strict=True) if flag is None}
            stale = [f for f, (node, _, _) in owners.items() if node in dead]
            if stale:
                await client.hdel(name, *stale)
        except aioredis.RedisError as exc:
            raise BrokerError(f"backplane {self.url}: {exc}") from exc
        return {f: value for f, (node, _, value) in owners.items() if node not in dead}
