"""The demo chat served by the repository's routes.toml (its page is web/index.html).

Handlers are ordinary functions named in routes.toml; nothing here registers itself. A client
picks its name with ``?name=...`` when it connects; the presence plugin shows it to the rooms.
"""

from __future__ import annotations

import os

import msgspec

from vws import Client, Deny

#: Longest display name kept; longer ones are cut.
MAX_NAME = 32


class ChatMessage(msgspec.Struct):
    """A message to a room, validated before ``on_chat`` sees it."""

    room: str
    text: str
    name: str = "anonymous"


def _name(client: Client) -> str:
    return client.state.get("name", "anonymous")


def on_connect(client: Client) -> None:
    """Keep the display name from the query string (``?name=Ann``) in ``client.state``, where
    presence finds it; the client's frames are read only after this returns."""
    name = " ".join(client.query.get("name", "").split())[:MAX_NAME]
    client.state["name"] = name or "anonymous"
    client.emit("welcome", {"client_id": client.client_id, "hint": "join a room with joinRoom"})


def on_disconnect(client: Client) -> None:
    client.broadcast("user-left", {"client_id": client.client_id})


def on_message(client: Client, payload: object) -> dict[str, bool]:
    """Vania's example: a plain message goes to everybody else."""
    client.broadcast("message", {"from": client.client_id, "payload": payload})
    return {"ok": True}


def on_chat(client: Client, message: ChatMessage) -> dict[str, bool]:
    if message.room not in client.rooms:
        raise Deny(f"join {message.room!r} before writing to it")
    frame = {"from": client.client_id, "name": message.name, "room": message.room}
    client.to_room("chat", message.room, {**frame, "text": message.text})
    return {"delivered": True}


def on_typing(client: Client, payload: object) -> None:
    """The seed's ``user-typing``: tell the rooms this client is in. A payload
    ``{"room": R, "typing": bool}`` tells only that room; any other payload, every room."""
    rooms: set[str] | frozenset[str] = client.rooms
    typing = payload
    if isinstance(payload, dict):
        room, typing = payload.get("room"), payload.get("typing")
        if room not in client.rooms:
            raise Deny("join the room before typing in it")
        rooms = {room}
    for room in rooms:
        client.to_room(
            "user-typing",
            room,
            {"from": client.client_id, "name": _name(client), "room": room, "typing": bool(typing)},
        )


class DirectMessage(msgspec.Struct):
    """A message to one client, by its id."""

    to: str
    text: str


def on_direct(client: Client, message: DirectMessage) -> dict[str, bool]:
    frame = {"from": client.client_id, "name": _name(client), "text": message.text}
    return {"sent": client.to(message.to, "direct", frame)}


def require_admin_token(client: Client) -> None:
    """Middleware for /admins: the token comes from the query string or a Bearer header."""
    expected = os.environ.get("VWS_DEMO_ADMIN_TOKEN", "letmein")
    token = client.query.get("token") or client.headers.get("authorization", "").removeprefix(
        "Bearer "
    )
    if token != expected:
        raise Deny("a valid admin token is required")
    client.state["role"] = "admin"


def on_admin_message(client: Client, payload: object) -> None:
    client.broadcast("admin-message", {"from": client.client_id, "payload": payload})
