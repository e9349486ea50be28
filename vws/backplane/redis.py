"""The Redis backplane: ``redis://[user:password@]host:port/db``.

Channels (``PREFIX`` is ``[server] channel_prefix``): ``PREFIX:all``, ``PREFIX:node:ID`` and
``PREFIX:room:PATH:ROOM`` with ``%`` and ``:`` escaped in the path and room, so no two rooms
share a channel. Only SUBSCRIBE is used, never PSUBSCRIBE, so a room name is never a pattern.

Shared hashes live in ``PREFIX:hash:KEY``; each field's value carries the node that set it.
A node keeps ``PREFIX:alive:ID`` alive with its heartbeat, lists the hashes it wrote in
``PREFIX:owned:ID`` and itself in ``PREFIX:writers``; the fields of a node whose liveness key
has expired are removed when a surviving node notices it is gone, when any node reads them,
and when any node starts.
"""

from __future__ import annotations

import contextlib
import logging
from typing import cast

import redis.asyncio as aioredis

from vws.backplane.broker import BrokerBackplane, BrokerError
from vws.backplane.resp import RedisAddress, RespConnection, encode_command

logger = logging.getLogger("vws.backplane")

_SEP = "\x00"


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

    @property
    def _writers_key(self) -> str:
        """The set of nodes that may have fields in the shared hashes."""
        return f"{self.prefix}:writers"

    # -- transport

    async def _connect(self) -> None:
        self._pub = await RespConnection.open(self._address)
        self._sub = await RespConnection.open(self._address)
        self._client = aioredis.Redis.from_url(
            self.url, decode_responses=True, socket_connect_timeout=5.0, socket_timeout=5.0
        )

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
        for start in range(0, len(channels), 1000):
            self._sub.write(encode_command(command, *channels[start : start + 1000]))
        await self._sub.drain()

    async def _send(self, batch: list[tuple[str, bytes]]) -> None:
        connection = self._pub
        if connection is None:
            raise ConnectionError("not connected")
        connection.write(b"".join(encode_command("PUBLISH", ch, data) for ch, data in batch))
        await connection.drain()
        for _ in batch:
            await connection.read()

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
