"""uvicorn's httptools protocol with the limits it lacks: connection caps, a handshake
timeout, and bounded request headers.

uvicorn parses HTTP with httptools (llhttp), which sets no limit on the size or number of
headers: a 64 MB header was read in whole and answered ``200``. It also keeps a connection
that never finishes its request for ever. This subclass

- refuses a connection past ``max_connections`` / ``max_connections_per_ip`` with ``503``
  before parsing anything (:mod:`vws.edge.transport.guard`);
- closes a connection whose request headers are not complete within ``handshake_timeout``
  (``408`` if part of a request came);
- counts the request line and headers as llhttp hands them over, and answers ``431`` as soon
  as they pass ``max_header_bytes`` or ``max_headers``;
- hands a WebSocket upgrade to :class:`vws.edge.transport.ws.WebSocketProtocol`, which keeps
  the connection's count and its handshake timer.

Everything else (keep-alive, pipelining, the ASGI cycle) is uvicorn's.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from vws.edge.transport.guard import SERVICE_UNAVAILABLE, client_address, plain_response
from vws.edge.transport.state import Edge, edge_of

if TYPE_CHECKING:
    from uvicorn.config import Config
    from uvicorn.server import ServerState

HEADERS_TOO_LARGE = plain_response(
    431, "Request Header Fields Too Large", "the request's headers are too large\n"
)
REQUEST_TIMEOUT = plain_response(408, "Request Timeout", "the request took too long to arrive\n")


class HttpProtocol(HttpToolsProtocol):
    """:class:`~uvicorn.protocols.http.httptools_impl.HttpToolsProtocol`, bounded."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.edge: Edge | None = edge_of(config)
        self._counted: str | None = None  # the address this connection is counted under
        self._admitted = False
        self._upgraded = False
        self._head_bytes = 0
        self._head_count = 0
        #: The answer to write instead of uvicorn's 400 when a callback stopped the parser.
        self._answer: bytes | None = None
        self._started = False  # some bytes of a request have come
        self._in_head = True  # between requests, or inside a request's line and headers
        self._head_seen = 0
        self._head_timer: asyncio.TimerHandle | None = None
        self._deadline = 0.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        edge = self.edge
        if edge is None:
            return
        peer = self.client[0] if self.client else ""
        refused = edge.guard.admit(peer)
        if refused:
            transport.write(SERVICE_UNAVAILABLE)
            transport.close()
            return
        self._admitted = True
        if peer not in edge.settings.trusted_proxies:
            self._counted = peer
        self._deadline = self.loop.time() + edge.settings.handshake_timeout
        self._arm(edge.settings.handshake_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._admitted and not self._upgraded and self.edge is not None:
            self.edge.guard.release(self._counted)
            self._admitted = False
        super().connection_lost(exc)

    # The request head: bounded in size, count and time.

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._head_timer = self.loop.call_later(seconds, self._head_timed_out)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        if self._started:
            self.transport.write(REQUEST_TIMEOUT)
        self.transport.close()

    def data_received(self, data: bytes) -> None:
        self._started = True
        if not self._in_head or self.edge is None:
            super().data_received(data)
            return
        # llhttp hands a header over only once it is whole, so a header that never ends is
        # counted here, as bytes received while the head is incomplete.
        self._head_seen += len(data)
        super().data_received(data)
        self._check_head(self.edge.settings.max_header_bytes)

    def _check_head(self, limit: int) -> None:
        """Answer 431 when the head is still incomplete past ``limit`` bytes."""
        if self._in_head and self._head_seen > limit and not self.transport.is_closing():
            self.transport.write(HEADERS_TOO_LARGE)
            self.transport.close()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head, self._head_seen = True, 0  # a keep-alive request may follow

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_bytes = self._head_count = 0
        if self._head_timer is None and self.edge is not None:
            self._arm(self.edge.settings.handshake_timeout)  # a keep-alive request's own head

    def on_url(self, url: bytes) -> None:
        self._count(len(url), 0)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4, 1)
        super().on_header(name, value)

    def _count(self, size: int, headers: int) -> None:
        if self.edge is None:
            return
        self._head_bytes += size
        self._head_count += headers
        settings = self.edge.settings
        if self._head_bytes > settings.max_header_bytes or self._head_count > settings.max_headers:
            self._stop(HEADERS_TOO_LARGE)

    def _stop(self, answer: bytes) -> None:
        """Stop the parser and answer ``answer``. Raised inside a parser callback, the error
        stops llhttp; uvicorn's data_received then calls send_400_response, which writes it."""
        self._answer = answer
        raise ValueError("request refused")

    def send_400_response(self, msg: str) -> None:
        if self._answer is not None:
            self.transport.write(self._answer)
            self.transport.close()
            return
        super().send_400_response(msg)

    def on_headers_complete(self) -> None:
        self._disarm()
        self._in_head = False
        edge = self.edge
        if edge is not None and self._admitted and self._counted is None:
            address = client_address(
                self.client[0] if self.client else "", self.headers, edge.settings
            )
            if edge.guard.admit_forwarded(address):
                self._stop(SERVICE_UNAVAILABLE)
            self._counted = address
        super().on_headers_complete()

    def handle_websocket_upgrade(self) -> None:
        # The WebSocket protocol takes the connection over, its count and its deadline with it.
        if self.edge is not None and self._admitted:
            self._upgraded = True
            self.edge.handoff = (self._counted, self._deadline)
        super().handle_websocket_upgrade()
