"""The floor: a hand-written Litestar websocket handler with a dict of rooms.

It speaks the subset of the vws wire protocol the scenarios use (``connected``, ``echo`` with an
ack, ``joinRoom``, ``publish`` to a room, ``shout`` to everyone else), with msgspec, on the same
uvicorn settings as ``vws run``. It has no routing table, hooks, send queues or slow-consumer
policy: it is what vws costs at the least, and vws should lose little against it.
"""

from __future__ import annotations

import contextlib
import secrets
from typing import Any

import msgspec
from litestar import Litestar, WebSocket, websocket
from litestar.exceptions import WebSocketDisconnect


class Frame(msgspec.Struct):
    event: str
    payload: Any = None
    room: str | None = None
    id: int | str | None = None


decode = msgspec.json.Decoder(Frame).decode
encode = msgspec.json.Encoder().encode

#: room name → socket id → socket
rooms: dict[str, dict[int, WebSocket]] = {}
#: socket id → socket, every connected socket
sockets: dict[int, WebSocket] = {}


def forget(
    rooms: dict[str, dict[int, Any]], sockets: dict[int, Any], key: int, joined: set[str]
) -> None:
    """Take a socket that went away out of ``sockets`` and of the ``joined`` rooms."""
    sockets.pop(key, None)
    for room in joined:
        members = rooms.get(room)
        if members is not None:
            members.pop(key, None)
            if not members:
                del rooms[room]


async def send_all(targets: list[WebSocket], text: str) -> None:
    for target in targets:
        with contextlib.suppress(Exception):  # a peer that went away meanwhile
            await target.send_text(text)


@websocket("/ws")
async def handler(socket: WebSocket) -> None:
    await socket.accept()
    key = id(socket)
    client_id = secrets.token_urlsafe(16)
    joined: set[str] = set()
    sockets[key] = socket
    hello = {"client_id": client_id, "session_id": client_id}
    await socket.send_text(encode({"event": "connected", "payload": hello}).decode())
    try:
        while True:
            frame = decode(await socket.receive_text())
            if frame.event == "echo":
                reply = {"event": "ack", "id": frame.id, "payload": frame.payload}
                await socket.send_text(encode(reply).decode())
            elif frame.event == "publish":
                text = encode({"event": "msg", "payload": frame.payload}).decode()
                await send_all(list(rooms.get(frame.payload["room"], {}).values()), text)
            elif frame.event == "shout":
                text = encode({"event": "msg", "payload": frame.payload}).decode()
                await send_all([s for k, s in sockets.items() if k != key], text)
            elif frame.event == "joinRoom" and frame.room:
                rooms.setdefault(frame.room, {})[key] = socket
                joined.add(frame.room)
                reply = {"event": "ack", "id": frame.id, "payload": {"room": frame.room}}
                await socket.send_text(encode(reply).decode())
    except WebSocketDisconnect:
        pass
    finally:
        forget(rooms, sockets, key, joined)


app = Litestar(route_handlers=[handler])
