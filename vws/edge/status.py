"""``/_vws`` (the live status page), ``/_vws/status`` (its JSON) and ``/metrics``.

All three are read-only and closed by default (who may read them: :mod:`vws.edge.access`).
The page itself holds no data, so it is served to anyone when a key is set; it asks for the
key and sends it with each poll.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from functools import cache
from heapq import nlargest
from importlib import resources
from typing import Any, cast

from litestar import Request, Response, get
from litestar.datastructures import State

from vws import __version__
from vws.edge.access import is_loopback, refusal
from vws.edge.health import report as health_report
from vws.ops.metrics import Monitor
from vws.runtime.node import Server
from vws.runtime.stats import UNKNOWN

PAGE = "/_vws"
STATUS = "/_vws/status"
METRICS = "/metrics"
#: How many of the largest rooms the status lists.
LARGEST_ROOMS = 10


def _iso(moment: float | None) -> str | None:
    if moment is None:
        return None
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def report(server: Server) -> dict[str, Any]:
    """The status document of ``server``: what ``/_vws/status`` answers."""
    stats, table, hub = server.stats, server.table, server.hub
    routes = []
    for path, route in table.routes.items():
        events = [
            {
                "event": name,
                "handler": target.handler.reference,
                "schema": target.schema_reference,
                "received": stats.received.get((path, name), 0),
                "errors": stats.failures.get((path, name), 0),
                "latency": stats.latency(path, name),
            }
            for name, target in route.events.items()
        ]
        routes.append(
            {
                "path": path,
                "broadcast": route.broadcast,
                "middleware": [m.reference for m in route.middleware],
                "connections": len(hub.paths.get(path, ())),
                "events": events,
                "unknown_events": stats.received.get((path, UNKNOWN), 0),
                "errors": {code: n for (p, code), n in sorted(stats.errors.items()) if p == path},
            }
        )
    rooms = hub.rooms
    largest = nlargest(LARGEST_ROOMS, rooms.names(), key=lambda key: len(rooms.members(*key)))
    now = time.time()
    return {
        "version": __version__,
        "node": server.node_id,
        "pid": os.getpid(),
        "time": _iso(now),
        "started_at": _iso(stats.started_at),
        "uptime_s": round(now - stats.started_at, 1),
        "connections": len(hub.clients),
        "totals": {
            "received": sum(stats.received.values()),
            "written": stats.written,
            "errors": sum(stats.errors.values()),
            "connections_opened": stats.connections_opened,
            "refused": sum(stats.refused.values()),
            "slow_consumers": stats.slow_consumers,
        },
        "rates": stats.rates(),
        "routes": routes,
        "rooms": {
            "count": len(rooms),
            "largest": [
                {"path": path, "room": name, "members": len(rooms.members(path, name))}
                for path, name in largest
            ],
        },
        "plugins": [
            {"name": p.name, "source": p.source, "version": p.version, "hooks": list(p.hooks)}
            for p in server.hooks.plugins.values()
        ],
        "tasks": server.tasks.report(),
        "backplane": health_report(server)["backplane"],
        "config": {
            "file": table.config.source,
            "sha256": stats.config_hash,
            "loaded_at": _iso(stats.loaded_at),
            "last_reload": _iso(stats.reloaded_at),
            "reloads": dict(stats.reloads),
        },
    }


@cache
def _page() -> str:
    return resources.files("vws").joinpath("static/status.html").read_text(encoding="utf-8")


def _server(state: State) -> Server:
    # State is an untyped bag; vws.edge.app stores the Server there as ``vws``
    return cast(Server, state.vws)


@get(PAGE, sync_to_thread=False, include_in_schema=False)
def status_page(request: Request[Any, Any, Any]) -> Response[Any]:
    key = _server(request.app.state).table.config.admin.key
    if not key and not is_loopback(request.scope):
        refused = refusal(request, key)
        assert refused is not None
        return refused
    return Response(
        _page(),
        media_type="text/html",  # Litestar adds the charset
        headers={"Cache-Control": "no-store", "X-Frame-Options": "DENY"},
    )


@get(STATUS, sync_to_thread=False, include_in_schema=False)
def status_json(request: Request[Any, Any, Any]) -> Response[Any]:
    server = _server(request.app.state)
    refused = refusal(request, server.table.config.admin.key)
    if refused is not None:
        return refused
    return Response(report(server), headers={"Cache-Control": "no-store"})


@get(METRICS, sync_to_thread=False, include_in_schema=False)
def metrics(request: Request[Any, Any, Any]) -> Response[Any]:
    server = _server(request.app.state)
    refused = refusal(request, server.table.config.admin.key)
    if refused is not None:
        return refused
    monitor: Monitor = request.app.state.vws_monitor
    body, content_type = monitor.scrape()
    return Response(body, media_type=content_type)


#: The route handlers :func:`vws.edge.app.create_app` registers.
handlers = [status_page, status_json, metrics]
