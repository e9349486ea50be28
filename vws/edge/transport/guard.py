"""Who may open a connection: the caps on open TCP connections, and the client's address.

One :class:`Guard` per process counts every open TCP connection, HTTP and WebSocket alike,
from ``connection_made`` to ``connection_lost``, in total and per client address. A connection
past ``max_connections`` or ``max_connections_per_ip`` is answered ``503`` and closed before
anything of it is parsed, so that one client holding sockets open cannot take the process's
file descriptors from everybody else.

The limits are read from the running table at each connection, so a reload changes them.
"""

from __future__ import annotations

import logging
import resource
import time
from collections import Counter
from typing import TYPE_CHECKING

from vws import logs

if TYPE_CHECKING:
    from vws.config import ServerConfig
    from vws.runtime.node import Server

logger = logging.getLogger("vws.edge.transport")

#: File descriptors kept free under the automatic ``max_connections``: enough to answer 503,
#: log, and reach the broker, the routes.toml and the handlers' own files.
FD_MARGIN = 64


def plain_response(status: int, phrase: str, body: str, *extra: str) -> bytes:
    """A whole HTTP/1.1 answer that closes the connection (written before any ASGI app runs)."""
    data = body.encode()
    head = [
        f"HTTP/1.1 {status} {phrase}",
        "content-type: text/plain; charset=utf-8",
        f"content-length: {len(data)}",
        "connection: close",
        *extra,
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + data


SERVICE_UNAVAILABLE = plain_response(
    503, "Service Unavailable", "too many connections: try again later\n", "retry-after: 1"
)


def automatic_limit() -> int:
    """The connections a process can hold: its soft RLIMIT_NOFILE less :data:`FD_MARGIN`."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 1_000_000
    return max(1, soft - FD_MARGIN)


class Guard:
    """The open-connection counts of one process, and the admission check."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.total = 0
        self.per_ip: Counter[str] = Counter()
        self._automatic = automatic_limit()
        #: Refusals are logged at most once a second, with how many went unlogged since.
        self._logged_at = 0.0
        self._unlogged = 0

    @property
    def settings(self) -> ServerConfig:
        return self.server.table.config.server

    def admit(self, peer: str) -> str | None:
        """Count a new connection from ``peer``; the setting that refuses it, if one does
        (the connection is then not counted). A trusted proxy's connections are counted per
        address later, by :meth:`admit_forwarded`, once their headers are read."""
        settings = self.settings
        limit = settings.max_connections or self._automatic
        if self.total >= limit:
            return self._refused(peer, "max_connections", limit)
        if peer not in settings.trusted_proxies:
            refused = self.admit_forwarded(peer)
            if refused:
                return refused
        self.total += 1
        return None

    def admit_forwarded(self, address: str) -> str | None:
        """Count one connection under ``address`` unless it is at ``max_connections_per_ip``."""
        per_ip = self.settings.max_connections_per_ip
        if per_ip and self.per_ip[address] >= per_ip:
            return self._refused(address, "max_connections_per_ip", per_ip)
        self.per_ip[address] += 1
        return None

    def release(self, address: str | None) -> None:
        """Uncount a connection; ``address`` is what it was counted under (None: nothing)."""
        self.total -= 1
        if address is None:
            return
        left = self.per_ip[address] - 1
        if left > 0:
            self.per_ip[address] = left
        else:
            del self.per_ip[address]

    def _refused(self, address: str, setting: str, limit: int) -> str:
        self.server.stats.refusal(503)
        now = time.monotonic()
        if now - self._logged_at < 1.0:
            self._unlogged += 1
            return setting
        self._logged_at, unlogged, self._unlogged = now, self._unlogged, 0
        logs.event(
            logger,
            "refused",
            logging.WARNING,
            client=address,
            status=503,
            reason=setting,
            limit=limit,
            more=unlogged,
        )
        return setting


def client_address(peer: str, headers: list[tuple[bytes, bytes]], settings: ServerConfig) -> str:
    """The client's address: the peer's, or the last entry of ``proxy_header`` when the peer
    is one of ``trusted_proxies`` (anybody else could write that header)."""
    if not settings.proxy_header or peer not in settings.trusted_proxies:
        return peer
    wanted = settings.proxy_header.lower().encode("latin-1")
    for name, value in reversed(headers):
        if name.lower() == wanted:
            last = value.decode("latin-1").rsplit(",", 1)[-1].strip()
            return last or peer
    return peer
