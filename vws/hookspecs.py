"""Every hook vws calls, in one place.

Implement a hook with ``@vws.hookimpl`` on a function of the same name in a plugin module; an
implementation may take any subset of the arguments, and may be ``async def``. Implementations
run one after another in pluggy's order (last registered first, ``tryfirst``/``trylast``
respected), each awaited before the next starts. No hook uses ``firstresult``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from vws.client import Client
    from vws.config import Config
    from vws.fanout import Outgoing

hookspec = pluggy.HookspecMarker("vws")


@hookspec
def vws_startup(config: Config) -> None:
    """The server is starting, before it accepts a connection. Exceptions stop the start."""


@hookspec
def vws_shutdown() -> None:
    """The server is stopping, after its connections were closed. Exceptions are logged."""


@hookspec
def vws_connect(client: Client) -> None:
    """A client passed its route's middleware; raise ``Deny`` to refuse it.

    Any other exception refuses too (close 1011), and is logged.
    """


@hookspec
def vws_disconnect(client: Client, code: int) -> None:
    """A registered client is gone (it has already left its rooms); exceptions are logged."""


@hookspec
def vws_join_room(client: Client, room: str) -> None:
    """A client asks to join a room; raise ``Deny`` to refuse (the client gets ``join_denied``)."""


@hookspec
def vws_leave_room(client: Client, room: str) -> None:
    """A client left a room: by asking, from a handler, or by disconnecting.

    Exceptions are logged.
    """


@hookspec
def vws_message(client: Client, event: str, payload: Any) -> None:
    """A well-formed frame arrived, before it is handled; raise ``Deny`` to refuse it."""


@hookspec
def vws_emit(message: Outgoing) -> Outgoing | bool | None:
    """A frame is about to be sent: return None to keep it, an ``Outgoing`` to rewrite it, False
    to drop it. Each implementation sees what the previous one returned."""
