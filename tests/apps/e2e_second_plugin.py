"""A second vws_emit plugin, to show the order in which rewrites chain."""

from __future__ import annotations

from vws import Outgoing, hookimpl


@hookimpl
def vws_emit(message: Outgoing) -> Outgoing | None:
    if message.event == "shout":
        return message.replace(payload=f"{message.payload}-second")
    return None
