"""What vws's protocol classes share within one process: the server and the guard.

uvicorn builds a protocol object per connection from its ``Config`` alone, so the classes find
vws's :class:`~vws.runtime.node.Server` on the app that ``Config`` holds
(:func:`vws.edge.app.create_app` puts it there), and keep one :class:`Edge` beside it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from vws.edge.transport.guard import Guard

if TYPE_CHECKING:
    from uvicorn.config import Config

    from vws.config import ServerConfig
    from vws.runtime.node import Server


class Edge:
    """The process's connection guard, and the hand-over from the HTTP protocol to the
    WebSocket protocol at an upgrade."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.guard = Guard(server)
        #: Set by the HTTP protocol just before uvicorn builds the WebSocket protocol: the
        #: address the connection is counted under, and its handshake deadline (loop time).
        self.handoff: tuple[str | None, float] | None = None

    @property
    def settings(self) -> ServerConfig:
        return self.server.table.config.server


def edge_of(config: Config) -> Edge | None:
    """The :class:`Edge` of the vws app ``config`` serves; None for any other app."""
    app: Any = config.app
    server = getattr(app, "vws_server", None)
    if server is None:
        return None
    edge: Edge | None = getattr(app, "vws_edge", None)
    if edge is None:
        edge = Edge(server)
        app.vws_edge = edge
    return edge
