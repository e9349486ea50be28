"""A plugin whose hooks raise, to show a raising hook never takes down a connection."""

from __future__ import annotations

from vws import Client, Outgoing, hookimpl


@hookimpl
def vws_connect(client: Client) -> None:
    if "crash" in client.query:
        raise RuntimeError("crash-in-connect")


@hookimpl
def vws_joined_room(client: Client, room: str) -> None:
    raise RuntimeError("crash-in-joined")


@hookimpl
def vws_left_room(client: Client, room: str) -> None:
    raise RuntimeError("crash-in-leave")


@hookimpl
def vws_emit(message: Outgoing) -> None:
    if message.event == "crash":
        raise RuntimeError("crash-in-emit")
