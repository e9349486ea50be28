"""An async vws_emit plugin: frames must keep their order through an awaiting chain."""

from __future__ import annotations

import asyncio

from vws import Outgoing, hookimpl


@hookimpl
async def vws_emit(message: Outgoing) -> Outgoing | bool | None:
    await asyncio.sleep(0)
    if message.event == "secret":
        return False
    if message.event == "seq" and isinstance(message.payload, int):
        return message.replace(payload=message.payload * 10)
    return None
