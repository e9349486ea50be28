"""The demo chat served by the repository's routes.toml (its page is web/index.html).

Handlers are ordinary functions named in routes.toml; nothing here registers itself. A client
picks its name with ``?name=...`` when it connects; the presence plugin shows it to the rooms.

What it shows besides: everything another client sees about a sender (its id, its name) comes
from what the server knows, never from the frame, so nobody can post as somebody else; the
admin route needs a token that only the environment sets, compared in constant time; and
``/admins`` is a separate broadcast domain that ``/ws`` clients cannot reach.
"""

from __future__ import annotations

import hmac
import os

import msgspec

from vws import Client, Deny

#: Longest display name kept; longer ones are cut.
MAX_NAME = 32


class ChatMessage(msgspec.Struct):
    """A message to a room, validated before ``on_chat`` sees it."""

    room: str
    text: str


def _name(client: Client) -> str:
    return client.state.get("name", "anonymous")


def on_connect(client: Client) -> None:
    """Keep the display name from the query string (``?name=Ann``) in ``client.state``, where
    presence finds it; the client's frames are read only after this returns."""
    name = " ".join(client.query.get("name", "").split())[:MAX_NAME]
    client.state["name"] = name or "anonymous"
    _chatters.add(client.client_id)
    client.emit("welcome", {"client_id": client.client_id, "hint": "join a room with joinRoom"})


def on_disconnect(client: Client) -> None:
    _chatters.discard(client.client_id)
    client.broadcast("user-left", {"client_id": client.client_id})


def on_message(client: Client, payload: object) -> dict[str, bool]:
    """Vania's example: a plain message goes to everybody else."""
    client.broadcast("message", {"from": client.client_id, "payload": payload})
    return {"ok": True}


def on_chat(client: Client, message: ChatMessage) -> dict[str, bool]:
    if message.room not in client.rooms:
        raise Deny(f"join {message.room!r} before writing to it")
    # The name is the one kept at connect: a "name" in the frame is ignored.
    frame = {"from": client.client_id, "name": _name(client), "room": message.room}
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


#: The chat's own clients (of /ws), so that a direct message cannot reach an admin. This node's
#: only: the demo runs on one node (a scaled-out app would keep this in its shared store).
_chatters: set[str] = set()


def on_direct(client: Client, message: DirectMessage) -> dict[str, bool]:
    if message.to not in _chatters:
        return {"sent": False}
    frame = {"from": client.client_id, "name": _name(client), "text": message.text}
    return {"sent": client.to(message.to, "direct", frame)}


def require_admin_token(client: Client) -> None:
    """Middleware for /admins: the token comes from the query string or a Bearer header.

    There is no default token: without ``VWS_DEMO_ADMIN_TOKEN`` in the environment the route
    refuses everyone. ``hmac.compare_digest`` takes as long for a wrong first character as for
    a wrong last one, so the time of a refusal tells nothing about the token.
    """
    expected = os.environ.get("VWS_DEMO_ADMIN_TOKEN", "")
    if not expected:
        raise Deny("the admin route is off: set VWS_DEMO_ADMIN_TOKEN to turn it on")
    token = client.query.get("token") or client.headers.get("authorization", "").removeprefix(
        "Bearer "
    )
    if not hmac.compare_digest(token.encode(), expected.encode()):
        raise Deny("a valid admin token is required")
    client.state["role"] = "admin"


def on_admin_message(client: Client, payload: object) -> None:
    """Tell the other admins: /admins is its own broadcast domain (routes.toml)."""
    client.broadcast("admin-message", {"from": client.client_id, "payload": payload})
