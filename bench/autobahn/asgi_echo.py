"""A bare ASGI echo app: the baseline that tells the harness's faults from the server's.

``python -m bench.autobahn.run --baseline`` serves this on uvicorn with websockets-sansio, whose
sans-I/O parser (``websockets.server.ServerProtocol``) is also the one vws's own transport
(vws/edge/transport/ws.py) parses frames with. Every RFC 6455 rule that the fuzzingclient checks
(framing, pings, fragmentation, UTF-8, closing) is enforced by that protocol implementation
below the app, so what this app scores is what the parser under vws scores with no router on
top: a case that fails here, vws's layer can pass only by handling it itself.

The app does nothing but echo: a text message back as text, a binary message back as binary,
which is what the suite expects of the server it fuzzes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


async def echo(receive: Receive, send: Send) -> None:
    """Accept, then send every message back in kind until the client goes away."""
    if (await receive())["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] != "websocket.receive":
            return  # websocket.disconnect: the protocol layer has already closed
        text = message.get("text")
        if text is not None:
            await send({"type": "websocket.send", "text": text})
        else:
            await send({"type": "websocket.send", "bytes": message.get("bytes") or b""})


async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    """The ASGI entry point: websockets echo; lifespan is acknowledged; HTTP is a 404."""
    if scope["type"] == "websocket":
        await echo(receive, send)
    elif scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
    elif scope["type"] == "http":
        headers = [(b"content-type", b"text/plain")]
        await send({"type": "http.response.start", "status": 404, "headers": headers})
        await send({"type": "http.response.body", "body": b"websocket only\n"})
