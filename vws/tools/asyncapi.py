"""An AsyncAPI 3.0 description of a server, built from its dispatch table.

One channel per path; on it, one message per declared event (its payload's JSON Schema comes
from msgspec's schema of the declared type, or is open when the event has no schema), the room
events, and the frames the server itself sends (``connected``, ``ack``, ``error``). Frames a
handler sends with ``emit`` and friends are the application's own and cannot be known here.
"""

from __future__ import annotations

import json
import re
from typing import Any

import msgspec

from vws.protocol import (
    ERROR_CODES,
    JOIN_EVENTS,
    LEAVE_EVENTS,
    MAX_EVENT_LENGTH,
    MAX_ROOM_LENGTH,
)
from vws.routing import DispatchTable

_ID = re.compile(r"[^A-Za-z0-9._-]+")
_FRAME_ID = {"type": ["integer", "string"], "description": "asks for an ack; echoed in replies"}


def _identifier(text: str) -> str:
    """An id AsyncAPI accepts as a key (letters, digits, ``.``, ``-``, ``_``)."""
    return _ID.sub("_", text).strip("_") or "root"


def _frame(event: str, payload: Any, *, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    properties: dict[str, Any] = {"event": {"const": event}, "payload": payload, "id": _FRAME_ID}
    properties.update(extra or {})
    return {"type": "object", "required": ["event"], "properties": properties}


def _message(name: str, summary: str, payload: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "title": name, "summary": summary, "payload": payload}


def _server_messages() -> dict[str, dict[str, Any]]:
    ids = {
        "type": "object",
        "required": ["client_id", "session_id"],
        "properties": {"client_id": {"type": "string"}, "session_id": {"type": "string"}},
    }
    error = {
        "type": "object",
        "required": ["code", "message"],
        "properties": {
            "code": {"type": "string", "enum": sorted(ERROR_CODES)},
            "message": {"type": "string"},
        },
    }
    return {
        "connected": _message("connected", "First frame after connect: the client's id.",
                              _frame("connected", ids)),
        "ack": _message("ack", "Answers a frame that carried an id, after its other replies.",
                        _frame("ack", {}, extra={"id": _FRAME_ID})),
        "error": _message("error", "A frame was refused; the connection stays open.",
                          _frame("error", error)),
    }  # fmt: skip


def _room_messages() -> dict[str, dict[str, Any]]:
    room = {"type": "string", "minLength": 1, "maxLength": MAX_ROOM_LENGTH}
    messages = {}
    for name in sorted(JOIN_EVENTS | LEAVE_EVENTS):
        verb = "Join" if name in JOIN_EVENTS else "Leave"
        messages[name] = _message(
            name, f"{verb} a room of this path; acknowledged with {{room}}.",
            {**_frame(name, {}, extra={"room": room}), "required": ["event", "room"]},
        )  # fmt: skip
    return messages


def build(table: DispatchTable, *, title: str = "vws application") -> dict[str, Any]:
    """The AsyncAPI 3.0 document of ``table``, as JSON-ready data."""
    settings = table.config.server
    schema_types = {
        event.schema
        for route in table.routes.values()
        for event in route.events.values()
        if event.schema is not None
    }
    ordered = sorted(schema_types, key=repr)
    schemas, components = msgspec.json.schema_components(
        ordered, ref_template="#/components/schemas/{name}"
    )
    schema_of = dict(zip(ordered, schemas, strict=True))
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    server_sent = _server_messages()
    for path, route in table.routes.items():
        channel_id = _identifier(path)
        messages: dict[str, Any] = {}
        received: list[str] = []
        for name, event in route.events.items():
            payload = schema_of[event.schema] if event.schema is not None else {}
            summary = f"Handled by {event.handler.reference}."
            messages[_identifier(name)] = _message(name, summary, _frame(name, payload))
            received.append(_identifier(name))
        for name, message in _room_messages().items():
            messages[_identifier(name)] = message
            received.append(_identifier(name))
        messages.update(server_sent)
        channels[channel_id] = {
            "address": path,
            "title": path,
            "description": f"WebSocket path {path} (broadcast scope: {route.broadcast}).",
            "messages": messages,
        }
        ref = {"$ref": f"#/channels/{channel_id}"}
        operations[f"{channel_id}.receive"] = {
            "action": "receive",
            "channel": ref,
            "summary": f"Frames clients send on {path}.",
            "messages": [{"$ref": f"#/channels/{channel_id}/messages/{m}"} for m in received],
        }
        operations[f"{channel_id}.send"] = {
            "action": "send",
            "channel": ref,
            "summary": f"Frames the server sends on {path} besides the application's own.",
            "messages": [{"$ref": f"#/channels/{channel_id}/messages/{m}"} for m in server_sent],
        }
    document: dict[str, Any] = {
        "asyncapi": "3.0.0",
        "info": {
            "title": title,
            "version": "1.0.0",
            "description": (
                "Generated by `vws asyncapi` from routes.toml. Every frame is a JSON text frame "
                f'{{"event": ..., "payload": ...}}; event names are 1 to {MAX_EVENT_LENGTH} '
                "characters."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {
            "vws": {"host": f"{settings.host}:{settings.port}", "protocol": "ws"},
        },
        "channels": channels,
        "operations": operations,
    }
    if components:
        document["components"] = {"schemas": components}
    return document


def to_json(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2) + "\n"


def to_yaml(document: Any) -> str:
    """YAML for JSON-like data: block style, every string quoted as JSON (which YAML reads)."""
    lines: list[str] = []

    def scalar(value: Any) -> str:
        return json.dumps(value)

    def emit(value: Any, indent: int) -> None:
        pad = "  " * indent
        if isinstance(value, dict):
            for key, item in value.items():
                if isinstance(item, dict | list) and item:
                    lines.append(f"{pad}{scalar(key)}:")
                    emit(item, indent + 1)
                else:
                    lines.append(f"{pad}{scalar(key)}: {_inline(item)}")
        else:
            for item in value:
                if isinstance(item, dict | list) and item:
                    lines.append(f"{pad}-")
                    emit(item, indent + 1)
                else:
                    lines.append(f"{pad}- {_inline(item)}")

    def _inline(value: Any) -> str:
        if isinstance(value, dict):
            return "{}"
        if isinstance(value, list):
            return "[]"
        return scalar(value)

    emit(document, 0)
    return "\n".join(lines) + "\n"
