"""Handlers for tests/test_first_hour.py: payloads annotated with a class, with and without a
schema in routes.toml."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from vws import Client


class ChatMessage(msgspec.Struct):
    text: str


@dataclass
class Point:
    x: int
    y: int


def on_chat(client: Client, payload: ChatMessage) -> str:
    return payload.text


def on_point(client: Client, payload: Point) -> int:
    return payload.x


def on_raw(client: Client, payload: dict[str, Any]) -> Any:
    return payload


def on_loose(client, payload):  # type: ignore[no-untyped-def]
    return payload
