"""A plugin, with its handlers, that decides per receiver and hears why clients leave.

``hide`` keeps every later frame from one client (``vws_deliver``); ``sticky-*`` rooms refuse a
leave the client asks for (``vws_leave_room``); every leave is broadcast on the path with its
reason (``vws_left_room``); ``stamp`` frames are rewritten with the sending node's id and the
sender's identity (``vws_emit`` with ``server``).
"""

from __future__ import annotations

import logging
from typing import Any
from weakref import WeakKeyDictionary

from vws import Client, Deny, Outgoing, Server, hookimpl

_hidden: WeakKeyDictionary[Server, set[str]] = WeakKeyDictionary()


def _of(server: Server) -> set[str]:
    return _hidden.setdefault(server, set())


def identify(client: Client) -> None:
    """Middleware: ``?user=NAME`` is who the client is."""
    client.user = client.query.get("user") or None


def hide(client: Client, payload: dict[str, Any]) -> None:
    _of(client.server).add(payload["id"])


def show(client: Client, payload: dict[str, Any]) -> None:
    _of(client.server).discard(payload["id"])


async def kick(client: Client, payload: dict[str, Any]) -> bool:
    return await client.server.kick(payload["id"], payload["room"])


def node(client: Client, _: Any) -> str:
    return client.server.node_id


@hookimpl
def vws_deliver(client: Client, message: Outgoing, server: Server, logger: logging.Logger) -> bool:
    if message.event == "trace":
        logger.info("trace for %s from %s", client.user, message.user)
    return client.client_id not in _of(server)


@hookimpl
def vws_emit(message: Outgoing, server: Server) -> Outgoing | None:
    if message.event != "stamp":
        return None
    return message.replace(payload={"node": server.node_id, "user": message.user})


@hookimpl
def vws_leave_room(client: Client, room: str) -> None:
    if room.startswith("sticky-"):
        raise Deny(f"{room} keeps its members")


@hookimpl
def vws_left_room(client: Client, room: str, reason: str, server: Server) -> None:
    server.broadcast(client.path, "left", {"id": client.client_id, "room": room, "reason": reason})
