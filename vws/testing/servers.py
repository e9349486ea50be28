"""The apps vws.testing serves: in-process over fake ASGI callables, or live on 127.0.0.1."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

if TYPE_CHECKING:
    from vws.runtime.node import Server

from vws.testing.clients import (
    DEFAULT_TIMEOUT,
    FrameTimeout,
    Refused,
    TestClient,
    _client_ports,
)


def _scope(
    path: str, headers: Mapping[str, str] | None, query: Mapping[str, str] | None
) -> dict[str, Any]:
    raw_headers = [
        (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()
    ]
    if not any(name == b"host" for name, _ in raw_headers):
        # A loopback name, which the default [server] allowed_hosts admits.
        raw_headers.insert(0, (b"host", b"localhost"))
    return {
        "type": "websocket",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "scheme": "ws",
        "server": ("127.0.0.1", 80),
        "client": ("127.0.0.1", next(_client_ports)),
        "path": path,
        "raw_path": path.encode(),
        "query_string": urlencode(dict(query or {})).encode(),
        "root_path": "",
        "headers": raw_headers,
        "subprotocols": [],
        "state": {},
    }


class _InProcess:
    """One client's fake ASGI socket into :func:`vws.runtime.connection.serve`."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.inbound: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.inbound.put_nowait({"type": "websocket.connect"})
        self.waiting = False
        self.accepted = False
        self.task: asyncio.Task[None] | None = None

    async def receive(self) -> dict[str, Any]:
        self.waiting = True
        try:
            return await self.inbound.get()
        finally:
            self.waiting = False

    async def send(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "websocket.accept":
            self.accepted = True
        elif kind == "websocket.send":
            self.client._on_text(message["text"])
        elif kind == "websocket.close":
            code = message.get("code", 1000) if self.accepted else 403
            self.client._on_close(code, message.get("reason", "") or "")
            self.inbound.put_nowait({"type": "websocket.disconnect", "code": code})

    async def send_text(self, text: str) -> None:
        self.inbound.put_nowait({"type": "websocket.receive", "text": text})

    async def close(self, code: int) -> None:
        self.client._on_close(code)
        self.inbound.put_nowait({"type": "websocket.disconnect", "code": code})
        if self.task is not None:
            await self.task

    @property
    def idle(self) -> bool:
        return self.task is None or self.task.done() or (self.waiting and self.inbound.empty())


class TestApp:
    """A vws app served in the test's event loop; :meth:`connect` gives in-process clients.

    Use it as an async context manager (the ``vws_app`` fixture does)::

        async with TestApp("routes.toml") as app:
            client = await app.connect("/ws")
    """

    __test__ = False  # not a pytest test class

    def __init__(self, config: str | os.PathLike[str], *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.config = Path(config)
        self.timeout = timeout
        self._server: Server | None = None
        self._transports: list[_InProcess] = []
        #: The clients connected so far, by name.
        self.clients: dict[str, TestClient] = {}

    @classmethod
    def from_toml(cls, text: str, folder: str | os.PathLike[str], **options: Any) -> TestApp:
        """An app of a routes.toml given as text, written to ``folder`` (its modules resolve
        from there, as with a real routes.toml)."""
        path = Path(folder) / "routes.toml"
        path.write_text(text, encoding="utf-8")
        return cls(path, **options)

    @property
    def server(self) -> Server:
        """The running :class:`vws.runtime.node.Server` (its hub, stats, hooks...)."""
        if self._server is None:
            raise RuntimeError("the app is not started: use `async with TestApp(...)`")
        return self._server

    async def __aenter__(self) -> TestApp:
        from vws.edge.app import load_server

        server = load_server(self.config)
        server.backplane.configure(server.table.config.server.backplane_options())
        await server.start()
        self._server = server
        return self

    async def __aexit__(self, *_: Any) -> None:
        for transport in self._transports:
            if transport.task is not None and not transport.task.done():
                await transport.close(1001)
        await self.server.stop()
        self._server = None

    def __getitem__(self, name: str) -> TestClient:
        return self.clients[name]

    async def connect(
        self,
        path: str | None = None,
        *,
        name: str | None = None,
        headers: Mapping[str, str] | None = None,
        query: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> TestClient:
        """Connect a client to ``path`` (the only route, when there is one) and wait for its
        ``connected`` frame.

        Raises:
            Refused: the origin check, the route lookup, middleware or a ``vws_connect`` hook
                refused it (``.code`` is the close code; 403 for the origin check).
        """
        server = self.server
        if path is None:
            routes = list(server.table.routes)
            if len(routes) != 1:
                raise TypeError(f"give the path: the app serves {len(routes)} routes {routes}")
            path = routes[0]
        name = name or f"client{len(self.clients) + 1}"
        if name in self.clients:
            raise ValueError(f"a client named {name!r} is connected already")
        client = TestClient(name, self.timeout if timeout is None else timeout)
        transport = _InProcess(client)
        client._send_text = transport.send_text
        client._close = transport.close
        client._settle = self.settle
        from vws.edge.websocket import serve

        loop = asyncio.get_running_loop()
        transport.task = loop.create_task(
            serve(server, _scope(path, headers, query), transport.receive, transport.send)
        )
        self._transports.append(transport)
        await _connected(client, client.timeout)
        self.clients[name] = client
        return client

    async def settle(self, timeout: float | None = None) -> None:
        """Wait until the app is idle: every client's frames handled, every queue drained.

        Raises:
            FrameTimeout: the app is still busy after ``timeout`` seconds.
        """
        limit = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        quiet = 0
        turns = 0
        while quiet < 3:  # idle on three loop turns in a row: nothing left to wake anything
            await asyncio.sleep(0 if turns < 200 else 0.001)
            turns += 1
            quiet = quiet + 1 if self._idle() else 0
            if time.monotonic() > deadline:
                raise FrameTimeout(f"the app was still busy after {limit} s")

    def _idle(self) -> bool:
        server = self.server
        if server.fanout._tails:
            return False
        if any(len(connection.outbox) for connection in server.connections.values()):
            return False
        return all(transport.idle for transport in self._transports)


async def _connected(client: TestClient, timeout: float) -> None:
    __tracebackhide__ = True
    deadline = time.monotonic() + timeout
    while not client.id:
        if client.close_code is not None:
            raise Refused(client.close_code, client.close_reason)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise FrameTimeout(f"{client.name} waited {timeout} s for its connected frame")
        client._arrived.clear()
        try:
            await asyncio.wait_for(client._arrived.wait(), remaining)
        except TimeoutError:
            continue


class LiveServer:
    """The app served by uvicorn on 127.0.0.1 in a background thread (real sockets).

    ``url`` is ``ws://127.0.0.1:PORT``, ``http`` the same as ``http://``; :meth:`connect`
    gives a :class:`TestClient` over a real WebSocket (from the ``websockets`` package).
    """

    def __init__(self, config: str | os.PathLike[str], *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.config = Path(config)
        self.timeout = timeout
        self.server: Server | None = None
        self._uvicorn: Any = None
        self._thread: threading.Thread | None = None
        self._sockets: list[Any] = []
        self.port = 0
        self.url = ""
        self.http = ""
        self.clients: dict[str, TestClient] = {}

    def start(self) -> LiveServer:
        import uvicorn

        from vws.edge.app import create_app, load_server
        from vws.edge.transport import HttpProtocol, WebSocketProtocol

        server = load_server(self.config)
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        self.url = f"ws://127.0.0.1:{self.port}"
        self.http = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            create_app(server),
            lifespan="on",
            log_config=None,
            # vws's own protocols, as vws run serves with (vws.cli.run.protocols)
            http=HttpProtocol,
            ws=WebSocketProtocol,
            ws_max_size=server.table.config.server.max_message_bytes,
            ws_per_message_deflate=False,
        )
        self._uvicorn = uvicorn.Server(config)
        self.server = server
        self._thread = threading.Thread(
            target=self._uvicorn.run, kwargs={"sockets": [sock]}, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._uvicorn.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the live vws server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._uvicorn is not None:
            self._uvicorn.should_exit = True
        if self._thread is not None:
            self._thread.join(30)

    async def connect(
        self,
        path: str,
        *,
        name: str | None = None,
        headers: Mapping[str, str] | None = None,
        query: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> TestClient:
        """Connect a real WebSocket client to ``path`` and wait for its ``connected`` frame.

        Raises:
            Refused: the server refused it (``.code``: 403 for an HTTP refusal, else the close
                code).
        """
        import websockets

        name = name or f"client{len(self.clients) + 1}"
        client = TestClient(name, self.timeout if timeout is None else timeout)
        url = f"{self.url}{path}" + (f"?{urlencode(dict(query))}" if query else "")
        try:
            ws = await websockets.connect(
                url, additional_headers=dict(headers or {}), open_timeout=client.timeout
            )
        except websockets.InvalidStatus as exc:
            raise Refused(exc.response.status_code) from None

        async def read() -> None:
            try:
                async for text in ws:
                    client._on_text(text if isinstance(text, str) else text.decode())
            except websockets.ConnectionClosed as closed:
                received = closed.rcvd
                client._on_close(
                    received.code if received else 1006, received.reason if received else ""
                )
            else:
                client._on_close(ws.close_code or 1000, ws.close_reason or "")

        reader = asyncio.get_running_loop().create_task(read())

        async def close(code: int) -> None:
            await ws.close(code)
            await reader

        client._send_text = ws.send
        client._close = close
        await _connected(client, client.timeout)
        self.clients[name] = client
        return client
