"""The ``vws`` command: run a routes.toml, check it, show its routes."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from vws.config import Config, load_config
from vws.dispatch import DispatchTable, compile_table
from vws.errors import ConfigError
from vws.plugins import Hooks, create_manager


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        return int(args.command(args))
    except ConfigError as error:
        for issue in error.issues:
            print(issue, file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vws", description=__doc__)
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    def command(name: str, help_: str, function: object) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_, description=help_)
        sub.add_argument(
            "--config",
            "-c",
            default="routes.toml",
            metavar="FILE",
            help="the routes.toml to use (default: ./routes.toml)",
        )
        sub.set_defaults(command=function)
        return sub

    run = command("run", "serve routes.toml", _run)
    run.add_argument("--host", help="address to listen on (overrides VWS_HOST and the file)")
    run.add_argument("--port", type=int, help="port to listen on (overrides VWS_PORT and the file)")
    run.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"]
    )
    command("check", "validate routes.toml and import every reference it names", _check)
    command("routes", "print the dispatch table routes.toml compiles to", _routes)
    return parser


def _load(path: str) -> tuple[Config, DispatchTable, Hooks]:
    config = load_config(path)
    table = compile_table(config)
    return config, table, Hooks(create_manager(config))


def _run(args: argparse.Namespace) -> int:
    import uvicorn

    from vws.app import create_app
    from vws.server import Server

    config, table, hooks = _load(args.config)
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


def _check(args: argparse.Namespace) -> int:
    config, table, _hooks = _load(args.config)
    events = sum(len(route.events) for route in table.routes.values())
    plugins = len(config.plugins.load)
    print(f"{config.source}: ok ({len(table.routes)} routes, {events} events, {plugins} plugins)")
    for path, route in table.routes.items():
        if not route.events and route.on_connect is None:
            line = config.lines.get(("routes", path), 1)
            print(f'{config.source}:{line}: routes."{path}": warning: the route has no events')
    return 0


def _routes(args: argparse.Namespace) -> int:
    _config, table, _hooks = _load(args.config)
    rows = [("PATH", "EVENT", "HANDLER", "SCHEMA", "MIDDLEWARE")]
    for path, route in table.routes.items():
        middleware = ", ".join(m.reference for m in route.middleware) or "-"
        scope = " (broadcast: route)" if route.broadcast == "route" else ""
        entries = [
            (name, e.handler.reference, e.schema_reference or "-")
            for name, e in route.events.items()
        ]
        for name, callback in (("connect", route.on_connect), ("disconnect", route.on_disconnect)):
            if callback is not None:
                entries.append((f"({name})", callback.reference, "-"))
        if not entries:
            entries.append(("-", "-", "-"))
        for event, handler, schema in entries:
            rows.append((path + scope, event, handler, schema, middleware))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
    return 0


if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
