"""A plugin with settings of its own, to show they are validated and reach every hook."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from msgspec import Meta

from vws import Client, Deny, hookimpl


class Settings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    tag: str = "probe"
    copies: Annotated[int, Meta(ge=1, le=5)] = 1


@hookimpl
def vws_startup(server: Any, settings: Settings) -> None:
    print(f"probe: startup tag={settings.tag} node={server.node_id}", flush=True)


@hookimpl
async def vws_join_room(client: Client, room: str) -> None:
    if room.startswith("probe-closed"):
        raise Deny(f"{room} is closed by the probe")


@hookimpl
def vws_joined_room(client: Client, room: str, settings: Settings) -> None:
    for _ in range(settings.copies):
        client.emit("probe:joined", {"room": room, "tag": settings.tag})


@hookimpl
def vws_refused(
    client: Client, action: str, target: str, code: Any, reason: str, settings: Settings
) -> None:
    print(f"probe: refused {action} {target} {code} {reason!r} tag={settings.tag}", flush=True)
