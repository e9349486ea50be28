"""The handle a handler gets for the client that sent a frame.

Sending (:meth:`Client.emit`, :meth:`~Client.to_room`, :meth:`~Client.to`,
:meth:`~Client.broadcast`) only queues an encoded frame and returns, so a handler is never held
up by a slow receiver. Joining, leaving and closing are awaitable because they consult the
plugins' hooks or wait for the socket.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, Protocol, cast
from urllib.parse import parse_qsl

from vws.errors import ProtocolError
from vws.protocol import Sent, check_room
from vws.runtime.messages import Outgoing

if TYPE_CHECKING:
    from vws.hooks.specs import LeaveReason
    from vws.runtime.node import Server
    from vws.runtime.outbox import Outbox

_EMITTED = Sent("emit")
_TO_ROOM = Sent("to_room")
_BROADCAST = Sent("broadcast")


def _too_early(method: str) -> RuntimeError:
    """The error for ``client.METHOD()`` before the client is registered: the frame or the join
    would be lost in silence, so it says where to do it instead."""
    return RuntimeError(
        f"client.{method}() before the client is registered (in middleware or vws_connect) "
        "would be lost: do it in the route's connect handler, which runs once it is"
    )


def _wrong(method: str, name: str, value: Any, order: str) -> TypeError:
    """The error for an argument of the wrong type, raised at the call rather than where the
    frame is encoded or routed, with the order a swapped call should have had."""
    return TypeError(
        f"{method}(): {name} must be a str, got {type(value).__name__} — the order is {order}"
    )


class Host(Protocol):
    """What a client needs of the node it is connected to (:class:`vws.runtime.node.Server`).

    A client holds this much and no more, so that this module never imports the node above it.
    """

    def send(self, message: Outgoing) -> bool:
        """Run ``message`` through the hooks and deliver it; never waits. False when a plugin
        dropped it, or kept it from its one receiver on this node."""

    def has_client(self, client_id: str) -> bool:
        """Whether a client with this id is connected, to this node or another."""

    async def join(self, client: Client, room: str) -> bool:
        """Join ``room`` if the hooks allow (see :meth:`vws.runtime.node.Server.join`)."""

    async def leave(self, client: Client, room: str, reason: LeaveReason) -> bool:
        """Leave ``room`` for ``reason``; False when the client was not in it."""

    async def close_client(self, client: Client, code: int, reason: str) -> None:
        """Close the client's connection after what is queued for it."""


class Headers(Mapping[str, str]):
    """The handshake's HTTP headers, looked up case-insensitively; repeats are joined by ", "."""

    __slots__ = ("_items",)

    def __init__(self, raw: list[tuple[bytes, bytes]]) -> None:
        items: dict[str, str] = {}
        for name, value in raw:
            key = name.decode("latin-1").lower()
            text = value.decode("latin-1")
            items[key] = f"{items[key]}, {text}" if key in items else text
        self._items = items

    def __getitem__(self, name: str) -> str:
        return self._items[name.lower()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"


class Client:
    """One connected WebSocket client.

    Attributes:
        client_id: an unguessable id, also sent to the client in its ``connected`` frame.
        path: the route path it connected to.
        user: who the client is, as your middleware or the auth plugin sets it (a user id),
            None for an anonymous client. The bundled plugins read it (presence lists it,
            audit writes it, ratelimit can share a bucket per user), and every frame the
            client sends carries it as ``Outgoing.user``.
        state: a dict the application owns, for everything else about the client.
    """

    __slots__ = (
        "_headers",
        "_host",
        "_query",
        "_raw_headers",
        "_raw_query",
        "_rooms",
        "client_id",
        "closing",
        "fanout_budget",
        "outbox",
        "path",
        "state",
        "user",
    )

    def __init__(self, host: Host, path: str, scope: Mapping[str, Any]) -> None:
        self.client_id = secrets.token_urlsafe(16)
        self.path = path
        self.state: dict[str, Any] = {}
        self.user: str | None = None
        self._host = host
        self._raw_headers: list[tuple[bytes, bytes]] = scope.get("headers", [])
        self._raw_query: bytes = scope.get("query_string", b"")
        self._headers: Headers | None = None
        self._query: dict[str, str] | None = None
        self._rooms: set[str] = set()
        #: The send queue; set when the client is accepted (None while middleware runs).
        self.outbox: Outbox | None = None
        #: Set once a close has begun; nothing more is queued.
        self.closing = False
        #: Frames the running handler may still send, counting receivers ([server] max_fanout);
        #: None outside a handler call.
        self.fanout_budget: int | None = None

    def __repr__(self) -> str:
        return f"<Client {self.client_id} on {self.path}>"

    @property
    def server(self) -> Server:
        """The node this client is connected to: what a plugin sends through, outside the
        client's own methods (``server.to_room``, ``server.members``, ``server.kick``)."""
        return cast("Server", self._host)

    @property
    def rooms(self) -> frozenset[str]:
        """The rooms this client is in (a snapshot)."""
        return frozenset(self._rooms)

    @property
    def headers(self) -> Headers:
        """The handshake's headers, case-insensitive."""
        if self._headers is None:
            self._headers = Headers(self._raw_headers)
        return self._headers

    @property
    def query(self) -> dict[str, str]:
        """The handshake URL's query parameters (the last value when one is repeated)."""
        if self._query is None:
            self._query = dict(parse_qsl(self._raw_query.decode("latin-1"), keep_blank_values=True))
        return self._query

    def emit(self, event: str, payload: Any = None) -> None:
        """Send a frame to this client.

        Raises:
            TypeError: ``event`` is not a str (the arguments swapped, most often).
            RuntimeError: the client is not registered yet (middleware, ``vws_connect``).
        """
        if not isinstance(event, str):
            raise _wrong("emit", "event", event, "emit(event, payload)")
        if self.outbox is None:
            raise _too_early("emit")
        self._host.send(
            Outgoing(
                kind="emit",
                event=event,
                payload=payload,
                path=self.path,
                target=self.client_id,
                sender=self,
                user=self.user,
            )
        )
        return _EMITTED  # type: ignore[return-value]  # None to a caller, an error to await

    def to_room(self, event: str, room: str, payload: Any = None) -> None:
        """Send a frame to every member of ``room`` on this path (this client too, if a member).

        Raises:
            TypeError: ``event`` or ``room`` is not a str.
        """
        if not isinstance(event, str):
            raise _wrong("to_room", "event", event, "to_room(event, room, payload)")
        if not isinstance(room, str):
            raise _wrong("to_room", "room", room, "to_room(event, room, payload)")
        self._host.send(
            Outgoing(
                kind="room",
                event=event,
                payload=payload,
                path=self.path,
                target=room,
                sender=self,
                user=self.user,
            )
        )
        return _TO_ROOM  # type: ignore[return-value]

    def to(self, client_id: str, event: str, payload: Any = None) -> bool:
        """Send a frame to one client, on any path.

        Returns:
            False when no such client is connected, or a plugin dropped the frame
            (``vws_emit``) or kept it from that client (``vws_deliver``, for a client of this
            node); True when it was queued for the client or handed to its node. While an
            ``async`` ``vws_emit`` plugin is loaded the chain has not run yet when this
            returns, and True means only that the client was connected.

        Raises:
            TypeError: ``client_id`` or ``event`` is not a str.
        """
        if not isinstance(client_id, str):
            raise _wrong("to", "client_id", client_id, "to(client_id, event, payload)")
        if not isinstance(event, str):
            raise _wrong("to", "event", event, "to(client_id, event, payload)")
        host = self._host
        if not host.has_client(client_id):
            return False
        return host.send(
            Outgoing(
                kind="to",
                event=event,
                payload=payload,
                path=self.path,
                target=client_id,
                sender=self,
                user=self.user,
            )
        )

    def broadcast(self, event: str, payload: Any = None) -> None:
        """Send a frame to every other client: of every path, or of this path only when the
        route has ``broadcast = "route"`` (such routes do not hear other paths' broadcasts).

        Raises:
            TypeError: ``event`` is not a str.
        """
        if not isinstance(event, str):
            raise _wrong("broadcast", "event", event, "broadcast(event, payload)")
        self._host.send(
            Outgoing(
                kind="broadcast",
                event=event,
                payload=payload,
                path=self.path,
                sender=self,
                user=self.user,
            )
        )
        return _BROADCAST  # type: ignore[return-value]

    async def join(self, room: str) -> bool:
        """Join a room on this path, asking the ``vws_join_room`` hooks first.

        Returns:
            True when this call added the client; False when it was a member already or the
            join was refused (a hook raised ``Deny``, or the room limit was reached).

        Raises:
            ValueError: ``room`` is not a string of 1 to 200 characters.
            RuntimeError: the client is not registered yet (middleware, ``vws_connect``).
        """
        try:
            check_room(room)
        except ProtocolError as exc:
            raise ValueError(exc.message) from None
        if self.outbox is None:
            raise _too_early("join")
        try:
            return await self._host.join(self, room)
        except ProtocolError:
            return False

    async def leave(self, room: str) -> bool:
        """Leave a room (``vws_left_room`` hears reason ``handler``); False when the client was
        not in it. Not refusable: only a leave the client asks for goes to ``vws_leave_room``."""
        return await self._host.leave(self, room, "handler")

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection once the frames already queued for it have been sent."""
        await self._host.close_client(self, code, reason)
