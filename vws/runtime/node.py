"""The running node: the current dispatch table, the hub, the hooks, and room operations.

A :class:`Server` outlives any one routes.toml: :meth:`Server.swap` replaces its dispatch table
with a single assignment while connections keep being served.

It is also how code outside a handler sends: a background task, a startup hook, another
framework's request handler, a thread. :func:`vws.server` gives the running node; its
:meth:`~Server.to_room`, :meth:`~Server.to` and :meth:`~Server.broadcast` send exactly as a
handler's do (through the ``vws_emit`` hooks, and across nodes through the backplane, with no
sender), and may be called from any thread: off the event loop's thread, the send is handed to
the loop and happens on its next turn, in the order the calls were made.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import threading
from collections.abc import Callable
from time import perf_counter
from typing import TYPE_CHECKING, Any, cast

from vws import backplane as backplanes
from vws.backplane import Position, Recovery
from vws.errors import USER_CODE_FAILURES, Deny, FanoutLimit, ProtocolError
from vws.hooks import Hooks
from vws.hooks.calling import refusal_failed
from vws.hooks.specs import Action, LeaveReason
from vws.routing import DispatchTable
from vws.runtime.fanout import Fanout
from vws.runtime.hub import Hub
from vws.runtime.messages import Outgoing
from vws.runtime.recovery import Holding, acknowledgement
from vws.runtime.stats import Stats
from vws.runtime.tasks import Tasks

if TYPE_CHECKING:
    from vws.runtime.client import Client
    from vws.runtime.connection import Connection
    from vws.runtime.outbox import Outbox

logger = logging.getLogger("vws.runtime.node")

#: Seconds between the watchdog's looks at busy connections: the precision of handler
#: timeouts, and how soon a client leaving during a handler is noticed.
WATCH_INTERVAL = 0.1


class Server:
    """One vws node."""

    def __init__(self, table: DispatchTable, hooks: Hooks | None = None) -> None:
        self.node_id = secrets.token_hex(6)
        self.table = table
        self.hooks = (hooks or Hooks()).bound_to(self)
        self.backplane = backplanes.create(table.config.server.backplane, self.node_id)
        self.hub = Hub(self.backplane)
        self.hub.route_scoped = table.route_scoped
        #: What this node counts, for /metrics and the status page (vws.ops.metrics).
        self.stats = Stats(table)
        self.fanout = Fanout(self.hub, self.hooks, self.stats)
        self.fanout.serve(table)
        #: client id → its connection, for every registered client.
        self.connections: dict[str, Connection] = {}
        #: Connections waiting on an async handler or hooks, overseen by :meth:`watch`.
        self.busy: set[Connection] = set()
        self._watchdog: asyncio.Task[None] | None = None
        #: The event loop serving this node and its thread, once started (for thread-safe sends).
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: int | None = None
        #: Handlers already warned about for holding the event loop (one warning each).
        self._slow_handlers: set[str] = set()
        #: routes.toml's [tasks], running once the node has started.
        self.tasks = Tasks(self)
        self._started = False

    def swap(self, table: DispatchTable, hooks: Hooks | None = None) -> None:
        """Serve a new dispatch table (and hooks, when given) from the next frame on."""
        self.table = table
        self.fanout.serve(table)
        self.stats.reloaded(table)
        if self._started:
            self.tasks.update(table.tasks)
        self.hub.route_scoped = table.route_scoped
        if hooks is not None:
            self.hooks = self.fanout.hooks = hooks.bound_to(self)

    def send(self, message: Outgoing) -> bool:
        """Run ``message`` through the hooks and deliver it (what clients call); whether it went
        out (see :meth:`vws.runtime.fanout.Fanout.send`).

        Raises:
            FanoutLimit: the sender's handler call is past ``[server] max_fanout``.
        """
        sender = message.sender
        if sender is not None and sender.fanout_budget is not None:
            cost = self.hub.receivers(message.kind, message.path, message.target)
            if cost > sender.fanout_budget:
                limit = self.table.config.server.max_fanout
                logger.warning(
                    "a handler of %s sent past max_fanout (%d frames); the send is dropped",
                    sender.path,
                    limit,
                )
                raise FanoutLimit(f"more than {limit} frames from one handler call")
            sender.fanout_budget -= cost
        if self.loop is not None and threading.get_ident() != self._thread:
            # a handler running with thread = true: deliver on the loop, in call order
            self.loop.call_soon_threadsafe(self.fanout.send, message)
            return True
        return self.fanout.send(message)

    def held_the_loop(self, path: str, event: str, reference: str, seconds: float) -> None:
        """A plain ``def`` handler ran longer than ``[server] slow_handler``: while it ran, no
        other client was served. Said once per handler, not once per frame."""
        if reference in self._slow_handlers:
            return
        self._slow_handlers.add(reference)
        logger.warning(
            "handler %s of %r on %s held the event loop for %.0f ms: every client waited. "
            "Make it async, or set thread = true on the event to run it in a worker thread",
            reference,
            event,
            path,
            seconds * 1000,
        )

    def client(self, client_id: str) -> Client | None:
        """The client of this id when it is connected to this node (None on another node or
        none): what a plugin that keeps per-node state asks before it accepts a request."""
        connection = self.connections.get(client_id)
        return connection.client if connection is not None else None

    def has_client(self, client_id: str) -> bool:
        """Whether ``client_id`` is connected here or, as the backplane knows, on another node."""
        return client_id in self.hub.clients or self.backplane.has_client(client_id)

    def startup_arguments(self) -> dict[str, Any]:
        """What ``vws_startup`` implementations are called with."""
        return {"config": self.table.config, "server": self}

    # Sending from anywhere: what code outside a handler calls.

    def to_room(self, path: str, room: str, event: str, payload: Any = None) -> None:
        """Send a frame to every member of ``room`` on ``path``, on every node."""
        self._send_from_anywhere(
            Outgoing(kind="room", event=event, payload=payload, path=path, target=room)
        )

    def to(self, client_id: str, event: str, payload: Any = None) -> bool:
        """Send a frame to one client, on any node; False when no such client is connected or
        a plugin kept the frame from it (as :meth:`vws.Client.to` answers; from another thread,
        only whether the client is connected)."""
        if not self.has_client(client_id):
            return False
        return self._send_from_anywhere(
            Outgoing(kind="to", event=event, payload=payload, path="", target=client_id)
        )

    def broadcast(self, path: str, event: str, payload: Any = None) -> None:
        """Send a frame to every client in the broadcast domain of ``path``: every route, or
        ``path`` alone when it has ``broadcast = "route"``."""
        self._send_from_anywhere(
            Outgoing(kind="broadcast", event=event, payload=payload, path=path)
        )

    def rooms(self, path: str) -> list[str]:
        """The rooms on ``path`` that have members on this node."""
        return sorted(room for route, room in self.hub.rooms.names() if route == path)

    def members(self, path: str, room: str) -> list[str]:
        """The client ids of this node's members of ``room`` on ``path``."""
        connections = self.connections
        return sorted(
            client_id
            for client_id, connection in connections.items()
            if connection.client.path == path and room in connection.client._rooms
        )

    def plugin_settings(self, plugin: object) -> Any:
        """A loaded plugin's settings (pass its module), for its code outside hooks: handlers,
        tasks. None when that plugin is not loaded."""
        return self.hooks.settings_for(plugin)

    def replay(self, client: Client, message: Outgoing, text: str | None = None) -> bool:
        """Send a kept frame again to one client of this node, after what is queued for it,
        through the ``vws_deliver`` hooks (``message.replay`` is set for them); what a history
        plugin calls. False when a plugin kept it from the client."""
        return self.fanout.replay(client, message, text)

    async def kick(self, client_id: str, room: str) -> bool:
        """Take a client of this node out of one of its rooms (``vws_left_room`` hears reason
        ``kicked``); False when no such client is here or it is not in that room."""
        connection = self.connections.get(client_id)
        if connection is None:
            return False
        return await self.leave(connection.client, room, "kicked")

    def _send_from_anywhere(self, message: Outgoing) -> bool:
        if message.kind != "to" and message.path not in self.table.routes:
            raise ValueError(f"no route {message.path!r} in routes.toml")
        loop = self.loop
        if loop is not None and threading.get_ident() != self._thread:
            loop.call_soon_threadsafe(self.fanout.send, message)
            return True
        return self.fanout.send(message)

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()
        global _running
        _running = self
        await self.backplane.start(self.fanout.receive, self.hub.clients)
        self._watchdog = asyncio.get_running_loop().create_task(self.watch())
        await self.hooks.call("vws_startup", **self.startup_arguments())
        self._started = True
        self.tasks.start(self.table.tasks)

    async def watch(self) -> None:
        """Oversee busy connections every :data:`WATCH_INTERVAL`: time out their handlers and
        notice their clients leaving (see :mod:`vws.runtime.connection`)."""
        while True:
            await asyncio.sleep(WATCH_INTERVAL)
            if self.busy:
                now = perf_counter()
                for connection in list(self.busy):
                    connection.oversee(now)

    async def stop(self) -> None:
        self._started = False
        await self.tasks.stop()
        for connection in list(self.connections.values()):
            await connection.close(1001, "server shutting down")
        if self._watchdog is not None:
            self._watchdog.cancel()
        await self.hooks.observe("vws_shutdown", server=self)
        await self.backplane.stop()
        global _running
        if _running is self:
            _running = None

    async def join_asked(
        self, client: Client, room: str, since: tuple[int, str] | None
    ) -> tuple[dict[str, Any], Callable[[], None] | None]:
        """A ``joinRoom`` frame: join, and in a room that keeps a history, replay what the
        client missed since ``since`` (see :mod:`vws.runtime.recovery`).

        Returns the ack's payload, and what to call once the ack is queued (None for a room
        without history): it lets the live frames that arrived meanwhile follow.

        Raises:
            ProtocolError: the join was refused (as :meth:`join`).
        """
        route = self.table.routes.get(client.path)
        retention = route.retention(room) if route is not None else None
        if retention is None:
            await self.join(client, room)
            return acknowledgement(room, since is not None, False, None), None
        holding = Holding(client)
        if not await self.join(client, room, holding):
            return acknowledgement(room, since is not None, False, None), None
        recovery: Recovery | None = None
        try:
            await self.backplane.room_ready(client.path, room)
            wanted = None if since is None else Position(*since)
            recovery = await self.backplane.history(client.path, room, wanted, retention)
        except USER_CODE_FAILURES:  # the broker is out of reach: say nothing was recovered
            logger.warning("the history of room %r on %s could not be read", room, client.path)
        except BaseException:
            self._release(client, room, holding, None)  # cancelled: let the live frames through
            raise
        if recovery is not None and recovery.recovered:
            for text in recovery.frames:
                self.fanout.replay_text(client, text)
        recovered = recovery is not None and recovery.recovered
        position = None if recovery is None else holding.position(recovery.position, recovered)
        return acknowledgement(room, since is not None, recovered, position), (
            lambda: self._release(client, room, holding, position)
        )

    def _release(self, client: Client, room: str, holding: Holding, after: Position | None) -> None:
        """Let the live frames after ``after`` through to the client, behind its ack."""

        def deliver(text: str) -> None:
            self.fanout.send_own(client.client_id, text)

        def settle() -> None:
            if client.outbox is not None:
                self.hub.rooms.replace(client.path, room, client.client_id, client.outbox)

        holding.release(after, deliver, settle)

    async def join(self, client: Client, room: str, holding: Holding | None = None) -> bool:
        """Add ``client`` to ``room`` if the hooks allow; False when it was a member already.

        ``holding`` stands in the room for the client's outbox until it is released (a
        resuming join, see :meth:`join_asked`).

        Raises:
            ProtocolError: ``too_many_rooms`` or ``join_denied``.
        """
        if room in client._rooms:
            return False
        settings = self.table.config.server
        limit = settings.max_rooms_per_client
        if len(client._rooms) >= limit:
            message = f"a client may be in at most {limit} rooms"
            raise await self._refused(client, "join", room, "too_many_rooms", message)
        members = len(self.hub.rooms.members(client.path, room))
        if members >= settings.max_room_members:
            message = f"the room is full ({settings.max_room_members} members)"
            raise await self._refused(client, "join", room, "room_full", message)
        if not members and len(self.hub.rooms) >= settings.max_rooms:
            message = f"the server holds its most rooms ({settings.max_rooms})"
            raise await self._refused(client, "join", room, "too_many_rooms", message)
        try:
            await self.hooks.call("vws_join_room", client=client, room=room)
        except Deny as deny:
            raise await self._refused(client, "join", room, "join_denied", deny.reason) from None
        except USER_CODE_FAILURES as error:
            refusal_failed(error, "the join is refused", logger)
            message = "the join was refused"
            raise await self._refused(client, "join", room, "join_denied", message) from None
        if client.closing or client.outbox is None or room in client._rooms:
            return False
        client._rooms.add(room)
        member = client.outbox if holding is None else cast("Outbox", holding)
        self.hub.join(client.client_id, client.path, room, member)
        await self.hooks.observe("vws_joined_room", client=client, room=room)
        return True

    async def _refused(
        self, client: Client, action: Action, room: str, code: str, reason: str
    ) -> Exception:
        """Tell the ``vws_refused`` observers; the error to raise for the client."""
        await self.hooks.observe(
            "vws_refused", client=client, action=action, target=room, code=code, reason=reason
        )
        return ProtocolError(code, reason)

    async def leave(self, client: Client, room: str, reason: LeaveReason = "handler") -> bool:
        """Take ``client`` out of ``room``; False when it was not a member.

        A leave the client asked for (``reason`` ``asked``) goes to the ``vws_leave_room``
        hooks first; every leave is told to ``vws_left_room`` with its reason.

        Raises:
            ProtocolError: ``leave_denied``, for a leave the client asked for.
        """
        if room not in client._rooms:
            return False
        if reason == "asked" and self.hooks.impls["vws_leave_room"]:
            refusal: str | None = None
            try:
                await self.hooks.call("vws_leave_room", client=client, room=room)
            except Deny as deny:
                refusal = deny.reason
            except USER_CODE_FAILURES as error:
                refusal_failed(error, "the leave is refused", logger)
                refusal = "the leave was refused"
            if refusal is not None:
                raise await self._refused(client, "leave", room, "leave_denied", refusal)
            if room not in client._rooms:
                return False
        client._rooms.discard(room)
        self.hub.leave(client.client_id, client.path, room)
        await self.hooks.observe("vws_left_room", client=client, room=room, reason=reason)
        return True

    async def close_client(self, client: Client, code: int, reason: str) -> None:
        connection = self.connections.get(client.client_id)
        if connection is not None:
            await connection.close(code, reason)


#: The node started last in this process (what :func:`current` answers).
_running: Server | None = None


def current() -> Server:
    """The running vws node of this process, to send from code outside a handler.

    Raises:
        RuntimeError: no node has started (yet) in this process.
    """
    if _running is None:
        raise RuntimeError("no vws server is running in this process (yet)")
    return _running
