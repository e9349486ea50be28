"""A vws_emit plugin that answers with something that is not a frame."""

from __future__ import annotations

from vws import Outgoing, hookimpl


@hookimpl
def vws_emit(message: Outgoing) -> object:
    return True if message.event == "odd" else None
