"""A vws_emit plugin for the publish API tests: marks what the API sent, drops ``drop-me``."""

from __future__ import annotations

from vws import Outgoing, hookimpl


@hookimpl
def vws_emit(message: Outgoing) -> Outgoing | bool | None:
    if message.event == "drop-me":
        return False
    if message.sender is None and isinstance(message.payload, dict):
        return message.replace(payload={**message.payload, "via": "api", "kind": message.kind})
    return None
