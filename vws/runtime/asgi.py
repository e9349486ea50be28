"""A connection's socket as ASGI gives it: ``receive()`` and ``send()`` of message dicts.

``vws run`` does not use it (vws's own protocol, :mod:`vws.edge.transport`, hands messages
to the connection as it parses them). It is the socket of ``vws.testing``'s in-process clients
and of an app that mounts vws under another ASGI server or framework.

ASGI tells of a client leaving only through ``receive()``, which the reader does not call while
a handler runs; so while the connection is busy, :meth:`AsgiSocket.watch` reads ahead: the
messages it gets are handled later, in order, and a disconnect among them stops the handler
at once.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING, Any

from vws.protocol import CLOSE_TOO_BIG

if TYPE_CHECKING:
    from collections.abc import Coroutine

    from vws.runtime.connection import Connection, Receive, Send

#: Messages read ahead while a handler is busy; past this the server's own buffers hold the rest.
READ_AHEAD = 64


class AsgiSocket:
    """:class:`vws.runtime.connection.Socket` over ASGI ``receive`` and ``send``."""

    def __init__(self, receive: Receive, send: Send) -> None:
        self.receive = receive
        self.send = send
        self._ahead: deque[dict[str, Any]] = deque()
        self._peek: asyncio.Task[dict[str, Any]] | None = None
        self._connection: Connection | None = None

    async def accept(self) -> None:
        await self.send({"type": "websocket.accept"})

    async def refuse(self, status: int) -> None:
        # A close before the accept: ASGI servers answer it with HTTP 403.
        await self.send({"type": "websocket.close", "code": 1008})

    def send_text(self, text: str) -> Coroutine[Any, Any, None]:
        return self.send({"type": "websocket.send", "text": text})

    async def close(self, code: int, reason: str) -> None:
        await self.send({"type": "websocket.close", "code": code, "reason": reason})

    async def serve(self, connection: Connection) -> None:
        self._connection = connection
        receive, ahead = self.receive, self._ahead
        try:
            while True:
                if ahead:
                    message = ahead.popleft()
                elif self._peek is not None:
                    await asyncio.wait((self._peek,))  # its callback files what it read in ahead
                    continue
                else:
                    message = await receive()
                kind = message["type"]
                if kind == "websocket.receive":
                    text = message.get("text")
                    if text is None:
                        connection.binary()
                    elif connection.too_big(text):
                        await connection.close(CLOSE_TOO_BIG, "message too big")
                    else:
                        await connection.handle(text)
                        if connection.stopping:
                            return
                elif kind == "websocket.disconnect":
                    connection.close_code = message.get("code", 1005)
                    return
        finally:
            if self._peek is not None:
                self._peek.cancel()

    def watch(self, connection: Connection) -> None:
        if self._peek is None and len(self._ahead) < READ_AHEAD and not connection.client.closing:
            self._peek = asyncio.get_running_loop().create_task(self._receive())
            self._peek.add_done_callback(self._peeked)

    async def _receive(self) -> dict[str, Any]:
        return await self.receive()

    def _peeked(self, task: asyncio.Task[dict[str, Any]]) -> None:
        self._peek = None
        connection = self._connection
        if task.cancelled() or connection is None:
            return
        error = task.exception()
        message: dict[str, Any] = (
            {"type": "websocket.disconnect", "code": 1006} if error else task.result()
        )
        self._ahead.append(message)
        if message["type"] == "websocket.disconnect":
            connection.departed(message.get("code", 1005))
        elif connection.deadline:
            self.watch(connection)  # keep watching while the handler is busy
