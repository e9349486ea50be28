"""A plugin whose ``vws_deliver`` lets every frame through: what asking per receiver costs."""

from __future__ import annotations

from vws import Client, Outgoing, hookimpl


@hookimpl
def vws_deliver(client: Client, message: Outgoing) -> None:
    return None
