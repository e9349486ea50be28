"""Handlers of the hardening tests: each misbehaves the way a real handler might."""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any

from vws import Client, Deny

logger = logging.getLogger("hardening")


def echo(client: Client, payload: Any) -> Any:
    return payload


def lone_surrogate(client: Client, payload: Any) -> str:
    return "bad \ud800 text"


def emit_lone_surrogate(client: Client, payload: Any) -> None:
    client.emit("note", "bad \ud800 text")


def holds_itself(client: Client, payload: Any) -> list[Any]:
    looped: list[Any] = []
    looped.append(looped)
    return looped


def exits(client: Client, payload: Any) -> None:
    sys.exit("missing env var")


def interrupts(client: Client, payload: Any) -> None:
    raise KeyboardInterrupt


async def cancels(client: Client, payload: Any) -> None:
    raise asyncio.CancelledError


async def hang(client: Client, payload: Any) -> None:
    """Never returns by itself; says in the log when it is cancelled."""
    await client.join("waiting")
    try:
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        logger.warning("hang cancelled for %s", client.client_id)
        raise


async def close_long(client: Client, payload: Any) -> None:
    await client.close(4000, payload)


def refuse_long(client: Client) -> None:
    raise Deny("é" * 100, code=4403)


def exits_at_connect(client: Client) -> None:
    sys.exit("missing env var")


async def join(client: Client, payload: Any) -> bool:
    return await client.join(payload)


def shout(client: Client, payload: Any) -> None:
    """Send to the room named by the payload, ``times`` times."""
    for _ in range(payload["times"]):
        client.to_room("shout", payload["room"], None)
