"""The end-to-end tests' plugin: one implementation of every hook, each with a visible effect."""

from __future__ import annotations

import asyncio
from typing import Any

from vws import Client, Deny, Outgoing, RateLimited, hookimpl


@hookimpl
def vws_startup(config: Any) -> None:
    print("e2e plugin: startup", flush=True)


@hookimpl
def vws_shutdown() -> None:
    print("e2e plugin: shutdown", flush=True)


@hookimpl
async def vws_connect(client: Client) -> None:
    await asyncio.sleep(0)
    if "plugin_deny" in client.query:
        raise Deny("the plugin says no", code=4403)
    client.state["plugin"] = "connected"


@hookimpl
def vws_disconnect(client: Client, code: int) -> None:
    print(f"e2e plugin: disconnect {client.client_id} {code}", flush=True)


@hookimpl
async def vws_join_room(client: Client, room: str) -> None:
    await asyncio.sleep(0)
    if room.startswith("forbidden-"):
        raise Deny(f"{room} is closed")


@hookimpl
def vws_left_room(client: Client, room: str) -> None:
    client.to_room("left", room, {"id": client.client_id, "room": room})


@hookimpl
def vws_message(client: Client, event: str, payload: Any) -> None:
    if event == "blocked":
        raise Deny("blocked by plugin")
    if event == "limited":
        raise RateLimited()
    if event == "plugin_crash":
        raise RuntimeError("plugin internals")


@hookimpl
def vws_emit(message: Outgoing) -> Outgoing | bool | None:
    if message.event == "secret":
        return False
    if message.event == "shout":
        return message.replace(payload=str(message.payload).upper())
    return None
