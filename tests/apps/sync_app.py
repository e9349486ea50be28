"""Handlers of the sync-handler tests."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from vws import Client


def echo(client: Client, payload: Any) -> Any:
    return payload


def blocking(client: Client, seconds: float) -> str:
    """A plain def that blocks, as a database driver or requests would."""
    client.emit("started", threading.current_thread().name)
    time.sleep(seconds)
    return "done"


async def not_sync(client: Client, payload: Any) -> None:
    await asyncio.sleep(0)
