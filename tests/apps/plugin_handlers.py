"""Handlers that use the bundled plugins' Python APIs."""

from __future__ import annotations

from typing import Any

from vws import Client
from vws.contrib import presence


async def who(client: Client, room: str) -> list[Any]:
    """The presence plugin asked from Python: the user of every member of ``room``."""
    return [member.get("user") for member in await presence.members(client, room)]


def state(client: Client, _: Any) -> dict[str, Any]:
    return client.state
