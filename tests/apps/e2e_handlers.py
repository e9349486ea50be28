"""Handlers of the end-to-end test app (served from a routes.toml written by each test)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, TypedDict

import msgspec

from vws import Client, Deny


class Point(msgspec.Struct):
    x: int
    y: int


def on_connect(client: Client) -> None:
    if "greet" in client.query:
        client.emit("hello", {"path": client.path, "state": client.state})


def on_disconnect(client: Client) -> None:
    if "announce" in client.query:
        client.broadcast("gone", {"id": client.client_id})


def echo(client: Client, payload: Any) -> Any:
    return payload


async def echo_async(client: Client, payload: Any) -> Any:
    await asyncio.sleep(0)
    return payload


def emit(client: Client, p: dict[str, Any]) -> None:
    client.emit(p["event"], p.get("payload"))


def to_room(client: Client, p: dict[str, Any]) -> None:
    client.to_room(p["event"], p["room"], p.get("payload"))


def to(client: Client, p: dict[str, Any]) -> bool:
    return client.to(p["id"], p["event"], p.get("payload"))


def broadcast(client: Client, p: dict[str, Any]) -> None:
    client.broadcast(p["event"], p.get("payload"))


def burst(client: Client, p: dict[str, Any]) -> int:
    """Queue ``count`` frames at once, to the sender or to a room."""
    for i in range(p["count"]):
        if "room" in p:
            client.to_room("seq", p["room"], i)
        else:
            client.emit("seq", i)
    return p["count"]


async def join(client: Client, room: str) -> bool:
    return await client.join(room)


async def leave(client: Client, room: str) -> bool:
    return await client.leave(room)


def rooms(client: Client, _: Any) -> list[str]:
    return sorted(client.rooms)


def boom(client: Client, _: Any) -> None:
    raise RuntimeError("secret-internal-detail")


def deny(client: Client, _: Any) -> None:
    raise Deny("not today")


async def close(client: Client, p: dict[str, Any]) -> None:
    client.emit("bye")
    await client.close(p.get("code", 1000), p.get("reason", ""))


def whoami(client: Client, _: Any) -> dict[str, Any]:
    return {
        "id": client.client_id,
        "path": client.path,
        "x_test": client.headers.get("X-Test"),
        "query": client.query,
        "state": client.state,
    }


def bad_return(client: Client, _: Any) -> object:
    return object()


def blob(client: Client, p: dict[str, Any]) -> bool:
    """Send a large frame to a room; answer whether client ``watch`` is still connected."""
    client.to_room("blob", p["room"], {"i": p.get("i", 0), "pad": "x" * p["size"]})
    return client.to(p["watch"], "probe") if "watch" in p else True


def typed(client: Client, point: Point) -> dict[str, Any]:
    return {"type": type(point).__name__, "sum": point.x + point.y}


def first_middleware(client: Client) -> None:
    client.state["seen"] = ["first"]


async def require_token(client: Client) -> None:
    await asyncio.sleep(0)
    token = client.query.get("token")
    if token == "forbidden":
        raise Deny("you may not", code=4403)
    if token != "good":
        raise Deny("bad token")
    client.state["seen"].append("require_token")


class Size(TypedDict):
    width: int
    height: int


@dataclass
class Move:
    dx: int
    dy: int = 0


def describe(client: Client, value: Any) -> dict[str, Any]:
    """Say what the handler received, for the typed-events tests."""
    if isinstance(value, Move):
        return {"type": "Move", "value": [value.dx, value.dy]}
    return {"type": type(value).__name__, "value": value}


Numbers = list[int]
