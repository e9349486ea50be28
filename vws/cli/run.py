"""``vws run``: serve routes.toml with uvicorn."""

from __future__ import annotations

import argparse
import sys

from vws.cli import add_command, load


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = add_command(commands, "run", "serve routes.toml", run_command)
    run.add_argument("--host", help="address to listen on (overrides VWS_HOST and the file)")
    run.add_argument("--port", type=int, help="port to listen on (overrides VWS_PORT and the file)")
    run.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"]
    )


def run_command(args: argparse.Namespace) -> int:
    import uvicorn

    from vws.app import create_app
    from vws.server import Server

    config, table, hooks = load(args.config)
    settings = config.server
    host = args.host or settings.host
    port = settings.port if args.port is None else args.port
    server = Server(table, hooks)
    app = create_app(server)
    print(
        f"vws: serving {len(table.routes)} route(s) from {config.source} on ws://{host}:{port}",
        file=sys.stderr,
        flush=True,
    )
    uvicorn_config = uvicorn.Config(
        app,
        host=host,
        port=port,
        ws="websockets-sansio",
        ws_max_size=settings.max_message_bytes,
        ws_per_message_deflate=False,
        ws_ping_interval=settings.ping_interval or None,
        ws_ping_timeout=settings.ping_timeout or None,
        lifespan="on",
        log_level=args.log_level,
        timeout_graceful_shutdown=max(1, int(settings.close_timeout)),
    )
    uvicorn.Server(uvicorn_config).run()
    return 0
