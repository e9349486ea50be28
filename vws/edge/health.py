"""``GET /_vws/health``: is this node up, and can it reach the other nodes?

It always answers 200 while the process serves, so a load balancer keeps sending clients to a
node whose broker is away (local delivery still works there); ``status`` says ``degraded``
then, for monitoring. Anyone gets that much. Whoever may read the status page (a loopback
client, or the admin key's holder) also gets the node id, its client count and the backplane's
counters: what it published, received and dropped.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, get

from vws.edge.access import refusal as admin_refusal
from vws.runtime.node import Server

PATH = "/_vws/health"


def report(server: Server) -> dict[str, Any]:
    """The health document of ``server``."""
    backplane = server.backplane
    state = backplane.state
    return {
        "status": state,
        "node": server.node_id,
        "clients": len(server.hub.clients),
        "backplane": {
            "url": server.table.config.server.backplane.split("://", 1)[0] + "://",
            "state": state,
            **backplane.stats(),
        },
    }


@get(PATH, sync_to_thread=False, include_in_schema=False)
def health(request: Request[Any, Any, Any]) -> dict[str, Any]:
    server: Server = request.app.state.vws
    if admin_refusal(request, server.table.config.admin.key) is None:
        return report(server)
    state = server.backplane.state
    return {"status": state, "backplane": {"state": state}}
