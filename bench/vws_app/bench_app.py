"""The bench's handlers: the same three events the other targets implement."""

from __future__ import annotations

from typing import Any

from vws import Client


def echo(client: Client, payload: Any) -> Any:
    """Answer with the payload (the client sends an id, so it comes back as the ack)."""
    return payload


def publish(client: Client, payload: dict[str, Any]) -> None:
    """Send the payload to every member of ``payload["room"]``."""
    client.to_room("msg", payload["room"], payload)


def shout(client: Client, payload: Any) -> None:
    """Send the payload to every other client."""
    client.broadcast("msg", payload)


def echo_emit(client: Client, payload: Any) -> None:
    """Answer with an ``echo`` frame sent by ``emit``, so the reply passes the vws_emit hooks."""
    client.emit("echo", payload)
