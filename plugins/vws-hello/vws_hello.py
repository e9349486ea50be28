"""vws-hello: greets a client in every room it joins.

Installing the package enables it (entry point ``hello`` in group ``vws``); configure it with
``[plugins.settings.hello]`` and turn it off with ``[plugins] block = ["hello"]``.
"""

from __future__ import annotations

import msgspec

from vws import Client, hookimpl

__version__ = "0.1.0"


class Settings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``[plugins.settings.hello]``."""

    greeting: str = "hello"


@hookimpl
def vws_joined_room(client: Client, room: str, settings: Settings) -> None:
    """The greeting reaches the client before its join is acknowledged."""
    client.emit("hello", {"room": room, "greeting": settings.greeting})
