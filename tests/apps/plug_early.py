"""A plugin that sends and joins in vws_connect, before the client is registered."""

from __future__ import annotations

from vws import Client, hookimpl


@hookimpl
async def vws_connect(client: Client) -> None:
    if "early_emit" in client.query:
        client.emit("hello")
    if "early_join" in client.query:
        await client.join("lobby")
