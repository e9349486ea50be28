"""python-socketio with its Redis manager (``AsyncRedisManager``), as its docs set it up for
several processes; the same events as bench/targets/socketio_app.py. The Redis URL comes from
``BENCH_REDIS_URL``."""

from __future__ import annotations

import os
from typing import Any

import socketio

manager = socketio.AsyncRedisManager(os.environ["BENCH_REDIS_URL"])
sio = socketio.AsyncServer(async_mode="asgi", client_manager=manager)


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


app = socketio.ASGIApp(sio)
