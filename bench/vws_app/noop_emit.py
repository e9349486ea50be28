"""A plugin whose ``vws_emit`` does nothing: what the hook chain costs per outgoing frame."""

from __future__ import annotations

from vws import Outgoing, hookimpl


@hookimpl
def vws_emit(message: Outgoing) -> None:
    return None
