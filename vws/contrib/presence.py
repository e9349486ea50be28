"""Who is in a room, kept in the backplane's shared hashes so that every node sees every member.

Each room's members are one shared hash (field: client id, value: the member as JSON), written
when a client joins and removed when it leaves or disconnects, by the node that holds the
client. Asking for the members reads the hash, so the answer includes clients of other nodes.

A client asks through an ordinary event that routes.toml maps to :func:`list_members`::

    [routes."/ws".events]
    presence = "vws.contrib.presence:list_members"

and handlers ask from Python with ``await presence.members(client, room)``. With
``notify = true`` the room hears ``presence:join`` and ``presence:leave`` frames. A member
carries its ``client.user`` (None when anonymous) beside its client id.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated, Any

import msgspec
from msgspec import Meta

from vws import Client, Deny, hookimpl

if TYPE_CHECKING:
    from vws.runtime.node import Server

JOIN_EVENT = "presence:join"
LEAVE_EVENT = "presence:leave"


class Settings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``[plugins.settings.presence]``."""

    #: Send presence:join / presence:leave frames to the room's members.
    notify: bool = False
    #: Extra member fields, each a dotted path into ``client.state`` (``user = "claims.sub"``).
    info: dict[str, str] = {}
    #: The most members one answer lists (``count`` always says how many there are).
    max_members: Annotated[int, Meta(ge=1)] = 1000


def room_key(path: str, room: str) -> str:
    """The shared hash holding a room's members (the length keeps ``path`` and ``room`` apart)."""
    return f"presence:{len(path)}:{path}:{room}"


def _lookup(state: dict[str, Any], dotted: str) -> Any:
    value: Any = state
    for part in dotted.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def member(client: Client, settings: Settings) -> dict[str, Any]:
    """What the other members are told about ``client``."""
    found: dict[str, Any] = {"client_id": client.client_id, "user": client.user}
    for name, dotted in settings.info.items():
        found[name] = _lookup(client.state, dotted)
    return found


def _settings(client: Client) -> Settings:
    return client.server.plugin_settings(sys.modules[__name__]) or Settings()


async def members(client: Client, room: str) -> list[dict[str, Any]]:
    """Every member of ``room`` on the client's path, on every node, ordered by client id."""
    fields = await client.server.backplane.hash_get_all(room_key(client.path, room))
    decoded = [msgspec.json.decode(value) for _, value in sorted(fields.items())]
    return [entry for entry in decoded if isinstance(entry, dict)]


async def list_members(client: Client, payload: Any) -> dict[str, Any]:
    """Handler: the members of a room the client is in (``payload`` is the room, or
    ``{"room": ROOM}``); the ack carries ``{"room", "count", "members"}``."""
    room = payload.get("room") if isinstance(payload, dict) else payload
    if not isinstance(room, str) or room not in client.rooms:
        raise Deny("join the room before asking who is in it")
    found = await members(client, room)
    limit = _settings(client).max_members
    return {"room": room, "count": len(found), "members": found[:limit]}


@hookimpl
async def vws_joined_room(client: Client, room: str, server: Server, settings: Settings) -> None:
    entry = member(client, settings)
    await server.backplane.hash_set(room_key(client.path, room), client.client_id, _json(entry))
    if settings.notify:
        client.to_room(JOIN_EVENT, room, {"room": room, "member": entry})


@hookimpl
async def vws_left_room(client: Client, room: str, server: Server, settings: Settings) -> None:
    await server.backplane.hash_delete(room_key(client.path, room), client.client_id)
    if settings.notify:
        client.to_room(LEAVE_EVENT, room, {"room": room, "member": member(client, settings)})


def _json(value: Any) -> str:
    return msgspec.json.encode(value).decode()
