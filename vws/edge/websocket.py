"""The WebSocket handshake over ASGI: Origin, route lookup, middleware and ``vws_connect``.

The order is fixed: Origin check (HTTP 403), route lookup (close 4404), middleware and
``vws_connect`` (close with the refusal's code); only then is the socket accepted and handed to
a :class:`~vws.runtime.connection.Connection`. A refused client is never registered, so no
frame, hook or handler ever sees it again.
"""

from __future__ import annotations

import logging
from urllib.parse import unquote

from vws import logs
from vws.edge.hosts import header, host_allowed
from vws.edge.origin import origin_allowed
from vws.errors import USER_CODE_FAILURES, Deny
from vws.hooks.calling import refusal_failed
from vws.protocol import CLOSE_INTERNAL, CLOSE_NO_ROUTE, close_reason
from vws.runtime.asgi import AsgiSocket
from vws.runtime.client import Client
from vws.runtime.connection import Connection, Receive, Scope, Send, Socket, call
from vws.runtime.node import Server

logger = logging.getLogger("vws.edge.websocket")


def request_path(scope: Scope) -> str:
    """The URL path of the request, as the client wrote it (percent-decoded), relative to the
    point vws is mounted at (the ``root_path`` a framework's mount sets) when it is mounted."""
    raw: bytes | None = scope.get("raw_path")
    path: str = unquote(raw.decode("latin-1").partition("?")[0]) if raw else scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :] or "/"
    return path


async def serve(server: Server, scope: Scope, receive: Receive, send: Send) -> None:
    """Serve one WebSocket from handshake to close (the ASGI app for ``websocket`` scopes)."""
    message = await receive()
    if message["type"] == "websocket.connect":
        await handshake(server, scope, AsgiSocket(receive, send))


async def handshake(server: Server, scope: Scope, socket: Socket) -> None:
    """Check, accept and serve one WebSocket, whichever socket carries it."""
    table = server.table
    settings = table.config.server
    host, hosts = header(scope, b"host"), settings.hosts()
    if not host_allowed(host, hosts):
        logs.event(logger, "refused", host=host, status=403, setting="allowed_hosts")
        server.stats.refusal(403)
        await socket.refuse(403)
        return
    origin = header(scope, b"origin")
    if not origin_allowed(origin, host, settings.allowed_origins, hosts):
        logs.event(
            logger, "refused", logging.WARNING, origin=origin, status=403, setting="allowed_origins"
        )
        server.stats.refusal(403)
        await socket.refuse(403)
        return
    path = request_path(scope)
    route = table.routes.get(path)
    if route is None:
        logs.event(logger, "refused", path=path, code=CLOSE_NO_ROUTE, reason="no such route")
        server.stats.refusal(CLOSE_NO_ROUTE)
        await socket.accept()
        await socket.close(CLOSE_NO_ROUTE, "no such route")
        return
    client = Client(server, path, scope)
    try:
        for middleware in route.middleware:
            await call(middleware, client)
        await server.hooks.call("vws_connect", client=client)
    except Deny as deny:
        await _refuse(server, client, socket, deny.code, deny.reason)
        return
    except USER_CODE_FAILURES as error:
        refusal_failed(error, f"refusing the client on {path}", logger)
        await _refuse(server, client, socket, CLOSE_INTERNAL, "internal error")
        return
    await socket.accept()
    await Connection(server, client, socket).run(route.on_connect)


async def _refuse(server: Server, client: Client, socket: Socket, code: int, reason: str) -> None:
    logs.event(logger, "refused", path=client.path, code=code, reason=reason)
    server.stats.refusal(code)
    await server.hooks.observe(
        "vws_refused", client=client, action="connect", target=client.path, code=code, reason=reason
    )
    await socket.accept()
    await socket.close(code, close_reason(reason))
