"""A thin test client over the ``websockets`` package, speaking the vws protocol."""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any

import websockets

TIMEOUT = 10.0
_ids = itertools.count(1)


class Peer:
    """One connected client; ``id`` is its client id from the ``connected`` frame."""

    def __init__(self, ws: websockets.ClientConnection, hello: dict[str, Any]) -> None:
        self.ws = ws
        self.hello = hello
        self.id: str = hello["payload"]["client_id"]

    @classmethod
    async def connect(cls, url: str, **options: Any) -> Peer:
        ws = await websockets.connect(url, open_timeout=TIMEOUT, **options)
        hello = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
        assert hello["event"] == "connected", hello
        return cls(ws, hello)

    async def __aenter__(self) -> Peer:
        return self

    async def __aexit__(self, *_: Any) -> None:
        await self.ws.close()

    async def send(self, frame: Any) -> None:
        await self.ws.send(frame if isinstance(frame, str | bytes) else json.dumps(frame))

    async def recv(self, timeout: float = TIMEOUT) -> dict[str, Any]:
        return json.loads(await asyncio.wait_for(self.ws.recv(), timeout))

    async def request(self, event: str, payload: Any = None, **extra: Any) -> dict[str, Any]:
        """Send a frame with a fresh id and return the ack or error that answers it.

        Frames that arrive before the answer are kept in ``self.before``.
        """
        frame_id = next(_ids)
        await self.send({"event": event, "payload": payload, "id": frame_id, **extra})
        self.before: list[dict[str, Any]] = []
        while True:
            frame = await self.recv()
            if frame.get("id") == frame_id:
                return frame
            self.before.append(frame)

    async def call(self, event: str, payload: Any = None, **extra: Any) -> Any:
        """Like :meth:`request`, but the reply must be an ack; returns its payload."""
        reply = await self.request(event, payload, **extra)
        assert reply["event"] == "ack", reply
        return reply["payload"]

    async def closed(self, timeout: float = TIMEOUT) -> tuple[int | None, list[dict[str, Any]]]:
        """Read until the server closes; the close code and the frames read on the way."""
        frames = []
        try:
            while True:
                frames.append(await self.recv(timeout))
        except websockets.ConnectionClosed as closed:
            return (closed.rcvd.code if closed.rcvd else None), frames

    async def nothing_pending(self) -> None:
        """Prove no frame is queued ahead of a fresh echo (the server answers in order)."""
        reply = await self.request("echo", "marker")
        assert self.before == [], self.before
        assert reply["payload"] == "marker"


async def refused(url: str, **options: Any) -> websockets.frames.Close:
    """The close frame of a connection the server refuses right after the handshake."""
    async with websockets.connect(url, open_timeout=TIMEOUT, **options) as ws:
        try:
            frame = await asyncio.wait_for(ws.recv(), TIMEOUT)
        except websockets.ConnectionClosed as closed:
            assert closed.rcvd is not None, "the server sent no close frame"
            return closed.rcvd
    raise AssertionError(f"the server did not refuse the connection: it sent {frame!r}")
