"""``POST /_vws/api/publish``: other services send frames to rooms, clients or everyone.

The body is one message or a JSON array of them (the batch form)::

    {"path": "/ws", "room": "lobby", "event": "news", "payload": {"title": "..."}}
    {"path": "/ws", "client_id": "Xy3...", "event": "notice", "payload": "hi"}
    {"path": "/ws", "broadcast": true, "event": "maintenance", "payload": null}

Each message goes through :meth:`vws.runtime.node.Server.to_room`, ``to`` or ``broadcast``,
which send exactly as a handler's do, with no sender: the ``vws_emit`` plugins see it (``sender`` is
None) and the backplane carries it to the other nodes. ``path`` is a route of routes.toml: the
room's path, or the route whose broadcast domain a broadcast uses.

The API is off (404) unless ``[admin] key`` is set, and then needs ``Authorization: Bearer
KEY``. A batch is checked whole before anything is sent: one bad message refuses the batch.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Request, Response, post
from msgspec import Meta, Struct

from vws.edge.access import bearer_matches
from vws.errors import ProtocolError
from vws.protocol import MAX_EVENT_LENGTH, PROTOCOL_EVENTS, check_room
from vws.runtime.node import Server

PATH = "/_vws/api/publish"


class Message(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One message to publish: a target (exactly one of three), an event and a payload."""

    path: str
    event: Annotated[str, Meta(min_length=1, max_length=MAX_EVENT_LENGTH)]
    payload: Any = None
    room: str | None = None
    client_id: Annotated[str, Meta(min_length=1)] | None = None
    broadcast: bool = False


class Rejected(Exception):
    """The request is refused with ``status``; ``code`` and ``message`` are the JSON body."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _error(status: int, code: str, message: str, **headers: str) -> Response[Any]:
    return Response({"error": code, "message": message}, status_code=status, headers=headers)


async def _read_body(request: Request[Any, Any, Any], limit: int) -> bytes:
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise Rejected(413, "too_large", f"the body is over {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise Rejected(413, "too_large", f"the body is over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def parse(body: bytes, server: Server) -> tuple[list[Message], bool]:
    """The messages of a request body, checked against the running routes; and whether it was
    the batch form.

    Raises:
        Rejected: 400 (not JSON), 422 (a message does not fit; the message says where).
    """
    admin = server.table.config.admin
    try:
        decoded = msgspec.json.decode(body, type=Message | list[Message])
    except msgspec.ValidationError as exc:
        raise Rejected(422, "invalid", str(exc)) from None
    except msgspec.DecodeError as exc:
        raise Rejected(400, "bad_json", f"the body is not JSON: {exc}") from None
    except RecursionError:
        raise Rejected(400, "bad_json", "the body is nested too deeply") from None
    batch = isinstance(decoded, list)
    messages = decoded if isinstance(decoded, list) else [decoded]
    if batch and len(messages) > admin.max_publish_batch:
        message = f"a batch holds at most {admin.max_publish_batch} messages"
        raise Rejected(422, "too_many", message)
    for index, item in enumerate(messages):
        where = f"$[{index}]" if batch else "$"
        problem = _problem(item, server)
        if problem:
            raise Rejected(422, "invalid", f"{problem} - at `{where}`")
    return messages, batch


def _problem(message: Message, server: Server) -> str | None:
    targets = (message.room is not None) + (message.client_id is not None) + message.broadcast
    if targets != 1:
        return "give exactly one of room, client_id or broadcast: true"
    if message.path not in server.table.routes:
        return f"no route {message.path!r} in routes.toml"
    if message.event in PROTOCOL_EVENTS:
        return f"{message.event!r} is reserved for the protocol"
    if message.room is not None:
        try:
            check_room(message.room)
        except ProtocolError as exc:
            return exc.message
    return None


#: Why a message to one client did not go out, as its result says it.
NO_SUCH_CLIENT = "no_such_client"
DROPPED = "dropped"
_WHY = {
    NO_SUCH_CLIENT: "no client with that id is connected",
    DROPPED: "a plugin dropped the frame or kept it from that client",
}


def send(message: Message, server: Server) -> str | None:
    """Send one message as :func:`vws.server`'s methods do; why it did not go out (its client
    is connected to no node, or a plugin dropped it), or None."""
    if message.client_id is not None:
        if not server.has_client(message.client_id):
            return NO_SUCH_CLIENT
        sent = server.to(message.client_id, message.event, message.payload)
        return None if sent else DROPPED
    if message.room is not None:
        server.to_room(message.path, message.room, message.event, message.payload)
    else:
        server.broadcast(message.path, message.event, message.payload)
    return None


# Litestar's own body limit (10 MB by default) is lifted here: ``[admin] max_publish_bytes``,
# which a reload can change, is the one limit, checked by _read_body.
@post(PATH, include_in_schema=False, status_code=200, request_max_body_size=None)
async def publish(request: Request[Any, Any, Any]) -> Response[Any]:
    server: Server = request.app.state.vws
    admin = server.table.config.admin
    if not admin.key:
        return _error(404, "disabled", "the publish API is off: set [admin] key to turn it on")
    if not bearer_matches(request.scope, admin.key):
        message = "send Authorization: Bearer <admin key>"
        return _error(401, "unauthorized", message, **{"WWW-Authenticate": 'Bearer realm="vws"'})
    content_type = request.headers.get("content-type", "application/json").split(";")[0].strip()
    if content_type != "application/json" and not content_type.endswith("+json"):
        return _error(415, "unsupported_media_type", "send the messages as application/json")
    try:
        body = await _read_body(request, admin.max_publish_bytes)
        messages, batch = parse(body, server)
    except Rejected as rejected:
        return _error(rejected.status, rejected.code, rejected.message)
    results = [send(message, server) for message in messages]
    if batch:
        return Response(
            {
                "sent": results.count(None),
                "results": [
                    {"ok": True} if why is None else {"ok": False, "error": why} for why in results
                ],
            }
        )
    if results[0] == NO_SUCH_CLIENT:
        return _error(404, NO_SUCH_CLIENT, _WHY[NO_SUCH_CLIENT])
    if results[0] == DROPPED:  # the request was good: a plugin decided (vws_emit, vws_deliver)
        return Response({"ok": False, "error": DROPPED, "message": _WHY[DROPPED]})
    return Response({"ok": True})
