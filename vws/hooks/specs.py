"""Every hook vws calls, in one place.

Implement a hook with ``@vws.hookimpl`` on a function of the same name in a plugin module; an
implementation may take any subset of the arguments, and may be ``async def``. Implementations
run one after another in pluggy's order (last registered first, ``tryfirst``/``trylast``
respected), each awaited before the next starts. No hook uses ``firstresult``.

Two kinds of hook, and what an exception does in each:

- refusal hooks (``vws_connect``, ``vws_join_room``, ``vws_message``, ``vws_startup``): raising
  :class:`~vws.Deny` refuses with its reason; any other exception refuses too, and is logged
  with the plugin's name.
- observers (every other hook): an exception is logged with the plugin's name and the next
  implementation runs; nothing is refused. ``vws_emit`` is an observer that may rewrite: a raise
  there drops that one frame.

Every hook also accepts ``settings``: this plugin's settings from
``[plugins.settings.NAME]``, converted to the ``Settings`` Struct the plugin module declares.
vws binds it when the plugin is loaded; callers never pass it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import pluggy

if TYPE_CHECKING:
    from vws.config import Config
    from vws.runtime.client import Client
    from vws.runtime.messages import Outgoing
    from vws.runtime.node import Server

hookspec = pluggy.HookspecMarker("vws")
#: Marks a plugin's hook implementations (re-exported as ``vws.hookimpl``).
hookimpl = pluggy.HookimplMarker("vws")

#: What a client was refused, in ``vws_refused``.
Action = Literal["connect", "join", "message"]


@hookspec
def vws_startup(config: Config, server: Server, settings: Any) -> None:
    """The server is starting, before it accepts a connection. Exceptions stop the start."""


@hookspec
def vws_shutdown(server: Server, settings: Any) -> None:
    """The server is stopping, after its connections were closed. Exceptions are logged."""


@hookspec
def vws_connect(client: Client, settings: Any) -> None:
    """A client passed its route's middleware; raise ``Deny`` to refuse it.

    Any other exception refuses too (close 1011), and is logged.
    """


@hookspec
def vws_disconnect(client: Client, code: int, settings: Any) -> None:
    """A registered client is gone (it has already left its rooms); exceptions are logged."""


@hookspec
def vws_join_room(client: Client, room: str, settings: Any) -> None:
    """A client asks to join a room; raise ``Deny`` to refuse (the client gets ``join_denied``)."""


@hookspec
def vws_joined_room(client: Client, room: str, settings: Any) -> None:
    """A client has joined a room (its ack is not sent yet); exceptions are logged.

    What the implementation queues for the client arrives before the ``joinRoom`` ack.
    """


@hookspec
def vws_leave_room(client: Client, room: str, settings: Any) -> None:
    """A client left a room: by asking, from a handler, or by disconnecting.

    Exceptions are logged.
    """


@hookspec
def vws_message(client: Client, event: str, payload: Any, settings: Any) -> None:
    """A well-formed frame arrived, before it is handled; raise ``Deny`` to refuse it."""


@hookspec
def vws_emit(message: Outgoing, settings: Any) -> Outgoing | bool | None:
    """A frame is about to be sent: return None to keep it, an ``Outgoing`` to rewrite it, False
    to drop it. Each implementation sees what the previous one returned."""


@hookspec
def vws_refused(
    client: Client, action: Action, target: str, code: int | str, reason: str, settings: Any
) -> None:
    """A client was refused: at ``connect`` (``target`` is the path, ``code`` the close code), a
    ``join`` (the room; ``join_denied`` or ``too_many_rooms``) or a ``message`` (the event;
    ``denied`` or ``rate_limited``). Exceptions are logged."""


#: Every hook's name, in the order of this module.
HOOK_NAMES = tuple(name for name in dict(globals()) if name.startswith("vws_"))
