"""Every hook vws calls, in one place.

Implement a hook with ``@vws.hookimpl`` on a function of the same name in a plugin module; an
implementation may take any subset of the arguments, and may be ``async def`` (except
``vws_deliver``, which runs once per receiver and must be a plain ``def``). Implementations
run one after another in pluggy's order (last registered first, ``tryfirst``/``trylast``
respected), each awaited before the next starts. No hook uses ``firstresult``, and wrappers
(``wrapper=True``, ``hookwrapper=True``) are refused at load: vws calls each implementation
itself.

Hooks come in pairs where something is asked and then done: ``vws_join_room`` (may refuse) and
``vws_joined_room``; ``vws_leave_room`` (may refuse a leave the client asked for) and
``vws_left_room`` (every leave, with its reason).

Two kinds of hook, and what an exception does in each:

- refusal hooks (``vws_connect``, ``vws_join_room``, ``vws_leave_room``, ``vws_message``,
  ``vws_startup``): raising :class:`~vws.Deny` refuses with its reason; any other exception
  refuses too, and is logged with the plugin's name.
- observers (every other hook): an exception is logged with the plugin's name and the next
  implementation runs; nothing is refused. ``vws_emit`` and ``vws_deliver`` are observers that
  may rewrite or withhold: a raise there drops that one frame (for that one receiver).

Three arguments every hook accepts besides its own, bound by vws (callers never pass them):

- ``server``: the running :class:`~vws.Server` (sending, rooms, members, kicking);
- ``settings``: this plugin's ``[plugins.settings.NAME]``, converted to the ``Settings`` Struct
  the plugin module declares;
- ``logger``: this plugin's own logger (``vws.plugin.NAME``), whose lines carry a ``plugin``
  field.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import pluggy

if TYPE_CHECKING:
    import logging

    from vws.config import Config
    from vws.runtime.client import Client
    from vws.runtime.messages import Outgoing
    from vws.runtime.node import Server

hookspec = pluggy.HookspecMarker("vws")
#: Marks a plugin's hook implementations (re-exported as ``vws.hookimpl``).
hookimpl = pluggy.HookimplMarker("vws")

#: What a client was refused, in ``vws_refused``.
Action = Literal["connect", "join", "leave", "message"]
#: Why a client left a room, in ``vws_left_room``: it sent ``leftRoom`` (``asked``), a handler or
#: plugin called ``client.leave`` (``handler``), it disconnected (``disconnect``), or
#: ``server.kick`` took it out (``kicked``).
LeaveReason = Literal["asked", "handler", "disconnect", "kicked"]


@hookspec
def vws_startup(config: Config, server: Server, settings: Any, logger: logging.Logger) -> None:
    """The server is starting, before it accepts a connection. Exceptions stop the start."""


@hookspec
def vws_shutdown(server: Server, settings: Any, logger: logging.Logger) -> None:
    """The server is stopping, after its connections were closed. Exceptions are logged."""


@hookspec
def vws_connect(client: Client, server: Server, settings: Any, logger: logging.Logger) -> None:
    """A client passed its route's middleware; raise ``Deny`` to refuse it.

    Any other exception refuses too (close 1011), and is logged.
    """


@hookspec
def vws_disconnect(
    client: Client, code: int, server: Server, settings: Any, logger: logging.Logger
) -> None:
    """A registered client is gone (``vws_left_room`` has run for each of its rooms);
    exceptions are logged."""


@hookspec
def vws_join_room(
    client: Client, room: str, server: Server, settings: Any, logger: logging.Logger
) -> None:
    """A client asks to join a room; raise ``Deny`` to refuse (the client gets ``join_denied``)."""


@hookspec
def vws_joined_room(
    client: Client, room: str, server: Server, settings: Any, logger: logging.Logger
) -> None:
    """A client has joined a room (its ack is not sent yet); exceptions are logged.

    What the implementation queues for the client arrives before the ``joinRoom`` ack.
    """


@hookspec
def vws_leave_room(
    client: Client, room: str, server: Server, settings: Any, logger: logging.Logger
) -> None:
    """A client asks to leave a room (a ``leftRoom`` frame); raise ``Deny`` to refuse (the client
    gets ``leave_denied`` and stays in the room).

    Only a leave the client asks for can be refused: a handler's ``client.leave``, a kick and a
    disconnect are not, and are reported to ``vws_left_room`` with their reason.
    """


@hookspec
def vws_left_room(
    client: Client,
    room: str,
    reason: LeaveReason,
    server: Server,
    settings: Any,
    logger: logging.Logger,
) -> None:
    """A client left a room, for ``reason``; exceptions are logged."""


@hookspec
def vws_message(
    client: Client,
    event: str,
    payload: Any,
    server: Server,
    settings: Any,
    logger: logging.Logger,
) -> None:
    """A well-formed frame arrived, before it is handled; raise ``Deny`` to refuse it."""


@hookspec
def vws_emit(
    message: Outgoing, server: Server, settings: Any, logger: logging.Logger
) -> Outgoing | bool | None:
    """A frame is about to be sent, once per send whoever receives it: return None to keep it,
    an ``Outgoing`` to rewrite it, False to drop it. Each implementation sees what the previous
    one returned."""


@hookspec
def vws_deliver(
    client: Client, message: Outgoing, server: Server, settings: Any, logger: logging.Logger
) -> bool | None:
    """A frame is about to reach one receiver on this node: return False to keep it from this
    client, None or True to let it through.

    Called for each receiver of every frame (room, broadcast, ``to``, ``emit``, publish-API
    frames, history and recovery replays, which have ``replay`` set) after ``vws_emit`` had its
    say and after the frame was encoded, so the encoding is still shared. Frames from other
    nodes are seen here too (``sender`` is None; ``user`` says who sent it). It runs inside the
    fan-out loop, so it must be a plain ``def`` and quick; nobody implementing it costs nothing.
    """


@hookspec
def vws_refused(
    client: Client,
    action: Action,
    target: str,
    code: int | str,
    reason: str,
    server: Server,
    settings: Any,
    logger: logging.Logger,
) -> None:
    """A client was refused: at ``connect`` (``target`` is the path, ``code`` the close code), a
    ``join`` (the room; ``join_denied``, ``room_full`` or ``too_many_rooms``), a ``leave`` (the
    room; ``leave_denied``) or a ``message`` (the event; ``denied`` or ``rate_limited``).
    Exceptions are logged."""


#: Every hook's name, in the order of this module.
HOOK_NAMES = tuple(name for name in dict(globals()) if name.startswith("vws_"))
