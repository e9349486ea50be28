"""Handlers and tasks of the background-task tests."""

from __future__ import annotations

import threading
from typing import Any

import vws
from vws import Client

ticks = 0


async def tick(server: vws.Server) -> None:
    """Every run: one frame to the room "clock" on /ws."""
    global ticks
    ticks += 1
    server.to_room("/ws", "clock", "tick", {"n": ticks})


def tick_from_a_thread(server: vws.Server) -> None:
    """A plain def task: vws runs it in a worker thread, so this send crosses threads."""
    server.to_room("/ws", "clock", "thread-tick", {"thread": threading.current_thread().name})


def fails(server: vws.Server) -> None:
    raise RuntimeError("the feed is down")


def join(client: Client, payload: Any) -> None:
    return None


async def members(client: Client, room: str) -> list[str]:
    return vws.server().members(client.path, room)
