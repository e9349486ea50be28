"""vws inside an app you already have: mounted under Starlette or FastAPI, or added to a
Litestar app by a plugin.

:class:`VwsApp` is routes.toml served as one ASGI app, for a framework to mount at a prefix:
paths (the routes, ``/_vws``, ``/metrics``) are relative to the mount point, and the app keeps
its own lifespan (server, metrics, live reload), started by the host's lifespan
(:meth:`VwsApp.lifespan`) or, failing that, by the first request. :class:`VwsPlugin` does the
same wiring for a Litestar app, through its ``on_startup`` and ``on_shutdown``.

Under another server, vws's own protocol layer (vws.edge.transport) is not in use: connection
caps, handshake and header limits and the frame policy are the host server's; the message rate
limit, handler timeouts and the amplification guards still apply.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from litestar import asgi
from litestar.config.app import AppConfig
from litestar.plugins import InitPluginProtocol
from litestar.types import Receive as LitestarReceive
from litestar.types import Scope as LitestarScope
from litestar.types import Send as LitestarSend

from vws.edge.app import ASGIApp, create_app, load_server
from vws.ops.reload import Reloader
from vws.runtime.connection import Receive, Scope, Send


class VwsApp:
    """routes.toml as one mountable ASGI app, with its own lifespan."""

    def __init__(self, config_path: str | Path = "routes.toml", *, watch: bool = True) -> None:
        """
        Args:
            config_path: the routes.toml to serve; its folder must be importable (it is put
                on ``sys.path``, as ``vws run`` does).
            watch: apply edits of routes.toml and of the project's modules while running.
        """
        self.server = load_server(config_path)
        self.reloader = Reloader(self.server, config_path, watch=watch)
        self.app: ASGIApp = create_app(self.server, self.reloader)
        self._started = False
        self._lock: asyncio.Lock | None = None
        self._lifespan: asyncio.Task[None] | None = None
        self._messages: asyncio.Queue[dict[str, Any]] | None = None
        self._answers: asyncio.Queue[dict[str, Any]] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":  # mounted as the whole app: the host's lifespan is ours
            await self.app(scope, receive, send)
            return
        if not self._started:
            await self.startup()
        await self.app(scope, receive, send)

    async def startup(self) -> None:
        """Start the server, its metrics and its reloader (once)."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._started:
                return
            self._messages, self._answers = asyncio.Queue(), asyncio.Queue()
            scope: dict[str, Any] = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
            answers = self._answers

            async def send(message: dict[str, Any]) -> None:
                await answers.put(message)

            messages = self._messages

            async def run() -> None:
                await self.app(scope, messages.get, send)

            self._lifespan = asyncio.get_running_loop().create_task(run())
            await self._messages.put({"type": "lifespan.startup"})
            answer = await self._answers.get()
            if answer["type"] != "lifespan.startup.complete":
                raise RuntimeError(answer.get("message", "vws failed to start"))
            self._started = True

    async def shutdown(self) -> None:
        """Close every connection (1001), stop the reloader, the metrics and the server."""
        if not self._started or self._messages is None or self._answers is None:
            return
        self._started = False
        await self._messages.put({"type": "lifespan.shutdown"})
        await self._answers.get()
        if self._lifespan is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._lifespan

    @contextlib.asynccontextmanager
    async def lifespan(self, app: object = None) -> AsyncIterator[None]:
        """For a host app's ``lifespan=``: vws starts and stops with it."""
        await self.startup()
        try:
            yield
        finally:
            await self.shutdown()


def asgi_app(config_path: str | Path = "routes.toml", *, watch: bool = True) -> VwsApp:
    """routes.toml as an ASGI app to mount: ``Mount("/realtime", app=vws.asgi_app())``."""
    return VwsApp(config_path, watch=watch)


class VwsPlugin(InitPluginProtocol):
    """Adds routes.toml's WebSocket routes and vws's HTTP endpoints to a Litestar app, under
    ``path``, starting and stopping with the app (and reloading live)."""

    def __init__(
        self, config_path: str | Path = "routes.toml", *, path: str = "/", watch: bool = True
    ) -> None:
        self.vws = VwsApp(config_path, watch=watch)
        self.path = path

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        vws = self.vws
        prefix = self.path.rstrip("/")

        @asgi(self.path, is_mount=True, copy_scope=True)
        async def vws_mount(
            scope: LitestarScope, receive: LitestarReceive, send: LitestarSend
        ) -> None:
            # Litestar strips the mount's prefix from "path" (and adds a slash), but not from
            # "raw_path", which vws reads: say where the mount is, as ASGI's root_path does.
            if prefix:
                scope["root_path"] = scope.get("root_path", "") + prefix
            await vws(scope, receive, send)  # type: ignore[arg-type]

        app_config.route_handlers.append(vws_mount)
        app_config.on_startup.append(vws.startup)
        app_config.on_shutdown.append(vws.shutdown)
        return app_config
