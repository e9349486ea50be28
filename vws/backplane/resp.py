"""A minimal Redis connection for the hot path: pipelined PUBLISH and a SUBSCRIBE reader.

redis-py's PubSub builds a dict and runs several awaits per message; the backplane needs only
the payload, so it speaks RESP on a plain asyncio stream, with hiredis to parse replies.
redis-py still serves every other command (the shared hashes), where convenience matters more.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import unquote, urlsplit

import hiredis

CONNECT_TIMEOUT = 5.0


class RedisAddress:
    """Where a ``redis://[user:password@]host:port/db`` URL points."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 6379
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        path = parts.path.strip("/")
        self.db = int(path) if path.isdigit() else 0


def encode_command(*args: str | bytes | int) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        out.append(b"$%d\r\n%b\r\n" % (len(data), data))
    return b"".join(out)


class RespConnection:
    """One connection: write commands, read replies in order."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._parser = hiredis.Reader()

    @classmethod
    async def open(cls, address: RedisAddress) -> RespConnection:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(address.host, address.port, limit=1 << 20), CONNECT_TIMEOUT
        )
        connection = cls(reader, writer)
        try:
            if address.password is not None:
                auth = [address.username, address.password] if address.username else []
                connection.write(encode_command("AUTH", *(auth or [address.password])))
                await connection.expect_ok()
        except BaseException:
            connection.close()
            raise
        return connection

    def write(self, data: bytes) -> None:
        self._writer.write(data)

    async def drain(self) -> None:
        await self._writer.drain()

    async def read(self) -> Any:
        """The next reply (a ``hiredis.ReplyError`` for an error reply).

        Raises:
            ConnectionError: the server closed the connection.
        """
        parser = self._parser
        while True:
            reply = parser.gets()
            if reply is not False:
                return reply
            data = await self._reader.read(1 << 16)
            if not data:
                raise ConnectionError("the Redis server closed the connection")
            parser.feed(data)

    def replies(self) -> list[Any]:
        """The replies already received and parsed, without waiting."""
        out = []
        parser = self._parser
        while (reply := parser.gets()) is not False:
            out.append(reply)
        return out

    async def fill(self) -> None:
        """Wait for more bytes from the server.

        Raises:
            ConnectionError: the server closed the connection.
        """
        data = await self._reader.read(1 << 16)
        if not data:
            raise ConnectionError("the Redis server closed the connection")
        self._parser.feed(data)

    async def expect_ok(self) -> None:
        reply = await self.read()
        if isinstance(reply, hiredis.ReplyError):
            raise ConnectionError(f"Redis refused: {reply}")

    def close(self) -> None:
        self._writer.close()
