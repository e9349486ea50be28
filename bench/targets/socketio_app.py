"""python-socketio on ASGI: the events the scenarios use, written as its docs suggest."""

from __future__ import annotations

from typing import Any

import socketio


def build(client_manager: socketio.AsyncManager | None = None) -> socketio.ASGIApp:
    """The benchmark's python-socketio app; ``client_manager`` spreads it over processes."""
    options = {"client_manager": client_manager} if client_manager is not None else {}
    sio = socketio.AsyncServer(async_mode="asgi", **options)

    @sio.on("echo")
    async def echo(sid: str, data: Any) -> Any:
        return data

    @sio.on("join")
    async def join(sid: str, room: str) -> dict[str, str]:
        await sio.enter_room(sid, room)
        return {"room": room}

    @sio.on("publish")
    async def publish(sid: str, data: dict[str, Any]) -> None:
        await sio.emit("msg", data, room=data["room"])

    @sio.on("shout")
    async def shout(sid: str, data: Any) -> None:
        await sio.emit("msg", data, skip_sid=sid)

    return socketio.ASGIApp(sio)


app = build()
