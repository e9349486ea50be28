"""The ceiling: the floor's protocol as a bare ASGI app, with no framework at all.

The floor (bench/targets/floor.py) is what our stack costs at the least *with* Litestar. This
is the same protocol, frames and rooms written straight against ASGI's ``receive`` and
``send``, so what remains is uvicorn, its websocket implementation, msgspec and a few
dictionary operations. No ASGI app served by this uvicorn can be much faster, which makes it
the yardstick for whether a target is reachable on this stack at all: a ratio the bare app
does not reach, an app that does more per frame cannot reach either.
"""

from __future__ import annotations

import contextlib
import secrets
from typing import Any

from bench.targets.floor import decode, encode, forget

Send = Any

#: room name → socket id → the socket's ASGI send
rooms: dict[str, dict[int, Send]] = {}
#: socket id → its ASGI send, every connected socket
sockets: dict[int, Send] = {}


async def send_all(targets: list[Send], text: str) -> None:
    message = {"type": "websocket.send", "text": text}
    for send in targets:
        with contextlib.suppress(Exception):  # a peer that went away meanwhile
            await send(message)


async def serve(receive: Any, send: Send) -> None:
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    key = id(send)
    client_id = secrets.token_urlsafe(16)
    joined: set[str] = set()
    sockets[key] = send
    hello = {"client_id": client_id, "session_id": client_id}
    await send(
        {
            "type": "websocket.send",
            "text": encode({"event": "connected", "payload": hello}).decode(),
        }
    )
    try:
        while True:
            message = await receive()
            if message["type"] != "websocket.receive":
                return
            frame = decode(message["text"])
            if frame.event == "echo":
                reply = {"event": "ack", "id": frame.id, "payload": frame.payload}
                await send({"type": "websocket.send", "text": encode(reply).decode()})
            elif frame.event == "publish":
                text = encode({"event": "msg", "payload": frame.payload}).decode()
                await send_all(list(rooms.get(frame.payload["room"], {}).values()), text)
            elif frame.event == "shout":
                text = encode({"event": "msg", "payload": frame.payload}).decode()
                await send_all([s for k, s in sockets.items() if k != key], text)
            elif frame.event == "joinRoom" and frame.room:
                rooms.setdefault(frame.room, {})[key] = send
                joined.add(frame.room)
                reply = {"event": "ack", "id": frame.id, "payload": {"room": frame.room}}
                await send({"type": "websocket.send", "text": encode(reply).decode()})
    finally:
        forget(rooms, sockets, key, joined)


async def app(scope: dict[str, Any], receive: Any, send: Send) -> None:
    if scope["type"] == "websocket":
        await serve(receive, send)
    elif scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
