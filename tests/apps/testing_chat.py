"""The app of the vws.testing tests: the docs' five-line example, and a goodbye on disconnect."""

from __future__ import annotations

from vws import Client


def say(client: Client, text: str) -> dict[str, bool]:
    client.broadcast("said", {"from": client.client_id, "text": text})
    return {"ok": True}


def on_disconnect(client: Client) -> None:
    client.broadcast("left", {"client_id": client.client_id})
