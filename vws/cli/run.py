"""``vws run``: serve routes.toml with uvicorn."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from vws.cli import add_command, load

#: The uvicorn protocol choices vws is served with (the bench serves its comparison targets with
#: the same): the sans-I/O websockets implementation, uvloop and httptools (both come with
#: uvicorn[standard]), and no per-message deflate, which costs far more CPU per frame than small
#: JSON frames save on the wire.
UVICORN_SPEED: dict[str, Any] = {
    "ws": "websockets-sansio",
    "loop": "uvloop",
    "http": "httptools",
    "ws_per_message_deflate": False,
}


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = add_command(commands, "run", "serve routes.toml", run_command)
    run.add_argument("--host", help="address to listen on (overrides VWS_HOST and the file)")
    run.add_argument("--port", type=int, help="port to listen on (overrides VWS_PORT and the file)")
    run.add_argument(
        "--no-watch",
        dest="watch",
        action="store_false",
        help="do not apply edits of routes.toml while running (SIGHUP still reloads)",
    )
    run.add_argument(
        "--reload-code",
        action="store_true",
        help="development: also re-import changed handler modules of the project on a reload",
    )
    run.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"]
    )


def run_command(args: argparse.Namespace) -> int:
    import uvicorn

    from vws.app import create_app
    from vws.reload import Reloader
    from vws.server import Server

    config, table, hooks = load(args.config)
    settings = config.server
    host = args.host or settings.host
    port = settings.port if args.port is None else args.port
    server = Server(table, hooks)
    reloader = Reloader(server, args.config, watch=args.watch, reload_code=args.reload_code)
    app = create_app(server, reloader)
    print(
        f"vws: serving {len(table.routes)} route(s) from {config.source} on ws://{host}:{port}",
        file=sys.stderr,
        flush=True,
    )
    uvicorn_config = uvicorn.Config(
        app,
        host=host,
        port=port,
        ws_max_size=settings.max_message_bytes,
        **UVICORN_SPEED,
        ws_ping_interval=settings.ping_interval or None,
        ws_ping_timeout=settings.ping_timeout or None,
        lifespan="on",
        log_level=args.log_level,
        timeout_graceful_shutdown=max(1, int(settings.close_timeout)),
    )
    uvicorn.Server(uvicorn_config).run()
    return 0
