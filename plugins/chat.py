"""The demo chat served by the repository's routes.toml.

Handlers are ordinary functions named in routes.toml; nothing here registers itself.
"""

from __future__ import annotations

import os

import msgspec

from vws import Client, Deny


class ChatMessage(msgspec.Struct):
    """A message to a room, validated before ``on_chat`` sees it."""

    room: str
    text: str
    name: str = "anonymous"


def on_connect(client: Client) -> None:
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
    client.to_room(
        "chat", message.room, {"from": client.client_id, "name": message.name, "text": message.text}
    )
    return {"delivered": True}


def on_typing(client: Client, payload: object) -> None:
    """The seed's ``user-typing``: tell the rooms this client is in."""
    for room in client.rooms:
        client.to_room("user-typing", room, {"from": client.client_id, "typing": bool(payload)})


def on_direct(client: Client, payload: dict[str, str]) -> dict[str, bool]:
    sent = client.to(payload["to"], "direct", {"from": client.client_id, "text": payload["text"]})
    return {"sent": sent}


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
