"""Handlers for the scale-out tests: which node a client is on, and the shared hashes."""

from __future__ import annotations

from typing import Any

from vws import Client


def node(client: Client, _: Any) -> str:
    return client.server.node_id


def stats(client: Client, _: Any) -> dict[str, Any]:
    backplane = client.server.backplane
    return {"state": backplane.state, **backplane.stats()}


def to_room_many(client: Client, p: dict[str, Any]) -> int:
    """Send ``count`` numbered frames to a room at once."""
    for i in range(p["count"]):
        client.to_room(p["event"], p["room"], {"i": i, "tag": p.get("tag")})
    return p["count"]
