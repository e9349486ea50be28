"""Test a vws app with pytest: in-process clients, a live server, and the fixtures for both.

Installing vws registers this module as a pytest plugin, giving every project two fixtures:

- ``vws_app``: the app of ``routes.toml`` (or the ``vws_config`` ini option, or your own
  ``vws_config`` fixture), served in the test's event loop. Its clients are in-process: their
  frames go through the real :func:`vws.connection.serve` over fake ASGI ``receive``/``send``
  callables, with no socket, so a test runs in milliseconds.
- ``vws_live``: the same app served by uvicorn on 127.0.0.1 in a background thread, for real
  WebSocket clients (a browser, another language's client) and for ``http`` requests.

A test needs anyio's pytest plugin (installed with anyio, which vws depends on), not
pytest-asyncio::

    import pytest

    pytestmark = pytest.mark.anyio

    async def test_say(vws_app):
        alice, bob = await vws_app.connect("/ws"), await vws_app.connect("/ws")
        await alice.request("say", "hi")
        await bob.expect("said", match={"text": "hi"})

Every wait has a timeout (``timeout=`` on the call, else the ``vws_timeout`` ini option, 2 s by
default), and the error it raises lists the frames the client received so far.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import pytest

if TYPE_CHECKING:
    from vws.server import Server

#: Seconds a client waits for a frame, a reply or a close, unless told otherwise.
DEFAULT_TIMEOUT = 2.0
#: Seconds :meth:`TestClient.refute` watches a live client (an in-process one needs no wait).
LIVE_REFUTE_WINDOW = 0.2

Frame = dict[str, Any]
Match = Mapping[str, Any] | Callable[[Any], bool] | Any

_frame_ids = itertools.count(1)
_client_ports = itertools.count(50000)


class Refused(Exception):
    """The server refused the connection: ``code`` is the close code (403 for an HTTP 403)."""

    def __init__(self, code: int, reason: str = "") -> None:
        super().__init__(f"connection refused with {code}{f': {reason}' if reason else ''}")
        self.code = code
        self.reason = reason


class ErrorReply(Exception):
    """A :meth:`TestClient.request` was answered with an ``error`` frame."""

    def __init__(self, frame: Frame) -> None:
        payload = frame.get("payload") or {}
        self.code: str = payload.get("code", "")
        self.message: str = payload.get("message", "")
        self.frame = frame
        super().__init__(f"{self.code}: {self.message}")


class FrameTimeout(AssertionError):
    """Nothing matching arrived in time; the message lists what did arrive."""


def matches(value: Any, match: Match) -> bool:
    """Whether ``value`` fits ``match``: a callable is asked, a mapping must be a subset
    (recursively), anything else must be equal. ``None`` matches everything."""
    if match is None:
        return True
    if callable(match):
        return bool(match(value))
    if isinstance(match, Mapping):
        return isinstance(value, Mapping) and all(
            key in value and matches(value[key], expected) for key, expected in match.items()
        )
    return bool(value == match)


class TestClient:
    """One connected client of a test, in-process or over a real socket.

    Received frames wait in a mailbox: :meth:`expect` and :meth:`request` take the first frame
    that fits and leave the others for later calls. ``frames`` keeps every frame received.
    """

    __test__ = False  # not a pytest test class

    def __init__(self, name: str, timeout: float) -> None:
        self.name = name
        self.timeout = timeout
        #: The client id from the ``connected`` frame.
        self.id = ""
        #: Every frame received after ``connected``, in order.
        self.frames: list[Frame] = []
        self._mailbox: list[Frame] = []
        self._arrived = asyncio.Event()
        #: The close code once the connection is closed (by either side), else None.
        self.close_code: int | None = None
        self.close_reason = ""
        self._send_text: Callable[[str], Awaitable[None]] | None = None
        self._close: Callable[[int], Awaitable[None]] | None = None
        self._settle: Callable[[float], Awaitable[None]] | None = None

    def __repr__(self) -> str:
        return f"<TestClient {self.name} {self.id or '(not connected)'}>"

    # What the transports call.

    def _on_text(self, text: str) -> None:
        frame = json.loads(text)
        if not self.id and frame.get("event") == "connected":
            self.id = frame["payload"]["client_id"]
        else:
            self.frames.append(frame)
            self._mailbox.append(frame)
        self._arrived.set()

    def _on_close(self, code: int, reason: str = "") -> None:
        if self.close_code is None:
            self.close_code = code
            self.close_reason = reason
        self._arrived.set()

    # Sending.

    async def send(
        self,
        event: str,
        payload: Any = None,
        *,
        room: str | None = None,
        id: int | str | None = None,
    ) -> None:
        """Send one frame and return at once (nothing is awaited from the server)."""
        frame: Frame = {"event": event, "payload": payload}
        if room is not None:
            frame["room"] = room
        if id is not None:
            frame["id"] = id
        await self.send_raw(json.dumps(frame))

    async def send_raw(self, text: str) -> None:
        """Send a text frame as is (to test what a malformed frame gets)."""
        assert self._send_text is not None
        if self.close_code is not None:
            raise AssertionError(f"{self.name} is closed ({self.close_code}): cannot send")
        await self._send_text(text)

    async def request(
        self,
        event: str,
        payload: Any = None,
        *,
        room: str | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Send a frame with a fresh id and wait for its answer; the ``ack`` payload.

        Raises:
            ErrorReply: the answer was an ``error`` frame (``.code``, ``.message``).
            FrameTimeout: no answer in time.
        """
        __tracebackhide__ = True
        frame_id = next(_frame_ids)
        await self.send(event, payload, room=room, id=frame_id)
        reply = await self._take(
            lambda f: f.get("id") == frame_id and f.get("event") in ("ack", "error"),
            f"the answer to {event!r} (id {frame_id})",
            timeout,
        )
        if reply["event"] == "error":
            raise ErrorReply(reply)
        return reply.get("payload")

    async def join(self, room: str, *, timeout: float | None = None) -> Any:
        """Join ``room`` (``joinRoom``), waiting for the ack."""
        return await self.request("joinRoom", room=room, timeout=timeout)

    async def leave(self, room: str, *, timeout: float | None = None) -> Any:
        """Leave ``room`` (``leftRoom``), waiting for the ack."""
        return await self.request("leftRoom", room=room, timeout=timeout)

    # Receiving.

    async def expect(self, event: str, match: Match = None, *, timeout: float | None = None) -> Any:
        """Wait for a frame of ``event`` whose payload fits ``match``; its payload.

        ``match`` is a dict that must be a subset of the payload, a value it must equal, or a
        callable given the payload.
        """
        __tracebackhide__ = True
        frame = await self._take(
            lambda f: f.get("event") == event and matches(f.get("payload"), match),
            _describe(event, match),
            timeout,
        )
        return frame.get("payload")

    async def expect_error(self, code: str, *, timeout: float | None = None) -> Frame:
        """Wait for an ``error`` frame with ``code``; its payload (code and message)."""
        __tracebackhide__ = True
        payload: Frame = await self.expect("error", {"code": code}, timeout=timeout)
        return payload

    async def refute(self, event: str, match: Match = None, *, within: float | None = None) -> None:
        """Fail if a frame of ``event`` fitting ``match`` arrived, or arrives while the app works.

        An in-process client first waits until the app is idle (every handler done, every queue
        drained), so no time is guessed; ``within`` adds a wait for timers. A live client waits
        ``within`` seconds (0.2 by default).
        """
        __tracebackhide__ = True
        if self._settle is not None:
            await self._settle(self.timeout)
            if within:
                await asyncio.sleep(within)
                await self._settle(self.timeout)
        else:
            await asyncio.sleep(LIVE_REFUTE_WINDOW if within is None else within)
        found = [
            f for f in self._mailbox if f.get("event") == event and matches(f.get("payload"), match)
        ]
        if found:
            raise AssertionError(
                f"{self.name} received {_describe(event, match)}, which it should not have:\n"
                f"{_listing(found)}"
            )

    async def wait_closed(self, *, timeout: float | None = None) -> int:
        """Wait until the server closes the connection; the close code."""
        __tracebackhide__ = True
        limit = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        while self.close_code is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise FrameTimeout(
                    f"{self.name} waited {limit} s for the server to close; "
                    f"received so far:\n{_listing(self.frames)}"
                )
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                continue
        return self.close_code

    async def close(self, code: int = 1000) -> None:
        """Close from the client side and wait until the server has let go of the client."""
        if self.close_code is None and self._close is not None:
            await self._close(code)

    @property
    def pending(self) -> list[Frame]:
        """Frames received and not yet taken by :meth:`expect` or :meth:`request`."""
        return list(self._mailbox)

    async def _take(self, fits: Callable[[Frame], bool], what: str, timeout: float | None) -> Frame:
        __tracebackhide__ = True
        limit = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        while True:
            for index, frame in enumerate(self._mailbox):
                if fits(frame):
                    del self._mailbox[index]
                    return frame
            if self.close_code is not None:
                raise FrameTimeout(
                    f"{self.name} was closed ({self.close_code} {self.close_reason!r}) while "
                    f"waiting for {what}; received so far:\n{_listing(self.frames)}"
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise FrameTimeout(
                    f"{self.name} waited {limit} s for {what}; received so far:\n"
                    f"{_listing(self.frames)}"
                )
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                continue


def _describe(event: str, match: Match) -> str:
    if match is None:
        return f"a {event!r} frame"
    if callable(match):
        return f"a {event!r} frame accepted by {getattr(match, '__name__', match)!r}"
    return f"a {event!r} frame matching {match!r}"


def _listing(frames: list[Frame]) -> str:
    if not frames:
        return "  (nothing)"
    return "\n".join(f"  {index}. {json.dumps(frame)}" for index, frame in enumerate(frames, 1))


def _scope(
    path: str, headers: Mapping[str, str] | None, query: Mapping[str, str] | None
) -> dict[str, Any]:
    raw_headers = [(b"host", b"testserver")]
    raw_headers += [
        (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()
    ]
    return {
        "type": "websocket",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "scheme": "ws",
        "server": ("testserver", 80),
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
    """One client's fake ASGI socket into :func:`vws.connection.serve`."""

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
        """The running :class:`vws.server.Server` (its hub, stats, hooks...)."""
        if self._server is None:
            raise RuntimeError("the app is not started: use `async with TestApp(...)`")
        return self._server

    async def __aenter__(self) -> TestApp:
        from vws.app import load_server

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
        from vws.connection import serve

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

        from vws.app import create_app, load_server

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
            ws="websockets-sansio",
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


# The pytest plugin.


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "vws_config", "routes.toml of the vws_app and vws_live fixtures", default="routes.toml"
    )
    parser.addini(
        "vws_timeout",
        "seconds a vws.testing client waits for a frame",
        default=str(DEFAULT_TIMEOUT),
    )


def _timeout(config: pytest.Config) -> float:
    return float(config.getini("vws_timeout"))


@pytest.fixture
def vws_config(request: pytest.FixtureRequest) -> Path:
    """The routes.toml to serve: the ``vws_config`` ini option, relative to the rootdir.

    Override this fixture to serve another file (return its path).
    """
    return Path(request.config.rootpath) / str(request.config.getini("vws_config"))


@pytest.fixture
async def vws_app(
    vws_config: Path, anyio_backend: Any, request: pytest.FixtureRequest
) -> AsyncIterator[TestApp]:
    """The app of ``vws_config``, started; connect in-process clients with ``connect``."""
    async with TestApp(vws_config, timeout=_timeout(request.config)) as app:
        yield app


@pytest.fixture
def vws_live(vws_config: Path, request: pytest.FixtureRequest) -> Iterator[LiveServer]:
    """The app of ``vws_config`` served on 127.0.0.1 (``.url``, ``.http``, ``connect``)."""
    live = LiveServer(vws_config, timeout=_timeout(request.config)).start()
    try:
        yield live
    finally:
        live.stop()
