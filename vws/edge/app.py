"""The ASGI edge: WebSocket scopes go to vws, everything else to Litestar.

Litestar owns the HTTP side (status page, metrics, publish API, health, static files) and the
lifespan. Every WebSocket handshake, whatever its path, goes straight to
:func:`vws.edge.websocket.serve`, which looks the path up in the server's dispatch table: keeping
the lookup in our table rather than in Litestar's router is what lets a reload change the paths
without rebuilding the app. Routing sockets around Litestar rather than through a mount also
keeps Litestar's middleware out of every frame: its exception middleware wraps ``send`` in one
more coroutine per frame, and a vws connection handles its own errors (vws.runtime.connection).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, cast

from litestar import Litestar, asgi
from litestar.types import Receive as LitestarReceive
from litestar.types import Scope as LitestarScope
from litestar.types import Send as LitestarSend

from vws import logs
from vws.config import load_config
from vws.edge.health import health
from vws.edge.hosts import header, host_allowed
from vws.edge.publish import publish
from vws.edge.static_files import client_script, respond, serve_static
from vws.edge.status import handlers as status_handlers
from vws.edge.websocket import request_path, serve
from vws.errors import ConfigError, PluginError
from vws.hooks import Hooks, create_manager
from vws.ops.metrics import Monitor
from vws.ops.reload import Reloader
from vws.routing import compile_table
from vws.runtime.connection import Receive, Scope, Send
from vws.runtime.node import Server

logger = logging.getLogger("vws.edge.app")

#: An ASGI app as servers call it: any scope type (lifespan too), plain message dicts.
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def create_app(server: Server, reloader: Reloader | None = None) -> ASGIApp:
    """The ASGI app serving ``server``'s routes, reloading them with ``reloader`` if given."""
    # Litestar types its scopes per kind; the edge passes them through as the server sent them.
    http = cast(ASGIApp, create_http_app(server, reloader))

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await serve(server, scope, receive, send)
        elif scope["type"] == "lifespan":
            await http(scope, receive, _plain_startup_failure(send))
        elif host_allowed(header(scope, b"host"), server.table.config.server.hosts()):
            await http(scope, receive, send)
        else:
            await _wrong_host(scope, send)

    # vws's own protocol classes (vws.edge.transport) find the server here.
    app.vws_server = server  # type: ignore[attr-defined]
    return app


async def _wrong_host(scope: Scope, send: Send) -> None:
    """Answer a request whose Host is not one of ``[server] allowed_hosts`` (DNS rebinding)."""
    host = header(scope, b"host")
    logs.event(logger, "refused", host=host, status=400, setting="allowed_hosts")
    body = b"this server does not answer to that Host name (see [server] allowed_hosts)\n"
    headers = [(b"content-type", b"text/plain; charset=utf-8")]
    await respond(cast(LitestarSend, send), 400, headers, body)


def _plain_startup_failure(send: Send) -> Send:
    """``send`` for the lifespan, telling a failed start in vws's own words.

    uvicorn logs the message of ``lifespan.startup.failed``, and Litestar makes it the whole
    traceback. When the cause is one vws already words for people (a plugin that raised in
    ``vws_startup``, a setting it cannot use), that one line is what the operator needs.
    """

    async def lifespan_send(message: dict[str, Any]) -> None:
        if message["type"] == "lifespan.startup.failed":
            failure = sys.exception()
            error = _worded(failure)
            if error is not None:
                message = {**message, "message": f"vws cannot start: {error}"}
                if isinstance(error, PluginError):  # where in the plugin, at --log-level debug
                    cause = error.__cause__ or error
                    logs.debug_traceback(
                        logger, str(error), cause, plugin=error.plugin, hook=error.hook
                    )
        await send(message)

    return lifespan_send


def _worded(error: BaseException | None) -> BaseException | None:
    """The first vws error in ``error``, its exception groups and its causes, if any."""
    while error is not None:
        if isinstance(error, PluginError | ConfigError):
            return error
        if isinstance(error, BaseExceptionGroup):
            found = (_worded(inner) for inner in error.exceptions)
            return next((e for e in found if e is not None), None)
        error = error.__cause__
    return None


def create_http_app(server: Server, reloader: Reloader | None = None) -> Litestar:
    """The Litestar app of everything but the sockets: HTTP endpoints and the lifespan."""

    @asgi("/", is_mount=True, copy_scope=True)
    async def routes(scope: LitestarScope, receive: LitestarReceive, send: LitestarSend) -> None:
        path = request_path(cast(Scope, scope))
        config = server.table.config
        if await serve_static(config.static, config.root, scope, send, path):
            return
        known = path in server.table.routes
        status, body = (426, b"this path speaks WebSocket\n") if known else (404, b"not found\n")
        headers = [(b"content-type", b"text/plain; charset=utf-8")]
        if known:
            headers.append((b"upgrade", b"websocket"))
        await respond(send, status, headers, body)

    monitor = Monitor(server)  # status rates and /metrics
    on_startup = [server.start, monitor.start] + ([reloader.start] if reloader else [])
    on_shutdown = ([reloader.stop] if reloader else []) + [server.stop, monitor.stop]
    server.backplane.configure(server.table.config.server.backplane_options())
    app = Litestar(
        route_handlers=[health, *status_handlers, publish, client_script, routes],
        on_startup=on_startup,
        on_shutdown=on_shutdown,
        logging_config=None,  # vws.logs sets logging up (vws run --log-format)
        openapi_config=None,  # no public /schema: vws's HTTP API is documented in docs/
    )
    app.state.vws = server
    app.state.vws_monitor = monitor
    return app


def load_server(config_path: str | Path) -> Server:
    """Load routes.toml, its references and its plugins into a ready :class:`Server`.

    Raises:
        vws.errors.ConfigError: the file, a reference or a plugin is not usable.
    """
    config = load_config(config_path)
    table = compile_table(config)
    hooks = Hooks(create_manager(config))
    return Server(table, hooks)
