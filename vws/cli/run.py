"""``vws run``: serve routes.toml with uvicorn."""

from __future__ import annotations

import argparse
import os
import socket
import sys
from typing import Any

from vws.cli import add_command, load
from vws.config import Config, ServerConfig
from vws.hooks import Hooks
from vws.ops.metrics import multiprocess_metrics
from vws.ops.workers import Supervisor, reuse_port_socket

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


def protocols() -> dict[str, Any]:
    """vws's own HTTP and WebSocket protocol classes, which ``vws run`` serves with in place of
    uvicorn's (vws.edge.transport); the bench's comparison targets keep uvicorn's."""
    from vws.edge.transport import HttpProtocol, WebSocketProtocol

    return {"http": HttpProtocol, "ws": WebSocketProtocol}


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
        "--plugins-dir",
        metavar="DIR",
        help="also load every *.py in DIR as a plugin (sets VWS_PLUGINS_DIR)",
    )
    run.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"]
    )
    run.add_argument(
        "--log-format",
        default="text",
        choices=["text", "json"],
        help="one line per log record: key=value text (default) or a JSON object",
    )
    run.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="run N worker processes on the port (needs a redis:// or nats:// backplane)",
    )
    # set by the --workers supervisor for each worker it starts
    run.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)


def run_command(args: argparse.Namespace) -> int:
    import uvicorn

    from vws import logs
    from vws.edge.app import create_app
    from vws.ops.reload import Reloader
    from vws.runtime.node import Server

    if args.plugins_dir:
        # through the environment, so that a reload of routes.toml loads the same folder
        os.environ["VWS_PLUGINS_DIR"] = os.path.abspath(args.plugins_dir)
    # logging first: an installed plugin skipped at load is logged in the chosen format, with
    # its traceback at --log-level debug
    log_config = logs.configure(args.log_format, args.log_level)
    config, table, hooks = load(args.config)
    settings = config.server
    host = args.host or settings.host
    port = settings.port if args.port is None else args.port
    if not 0 <= port <= 65535:
        print("vws: --port must be 0 to 65535", file=sys.stderr)
        return 2
    if args.workers != 1:
        return run_workers(args, settings, host, port)
    server = Server(table, hooks)
    reloader = Reloader(server, args.config, watch=args.watch)
    app = create_app(server, reloader)
    uvicorn_config = uvicorn.Config(
        OwnScope(app),
        host=host,
        port=port,
        ws_max_size=settings.max_message_bytes,
        **(UVICORN_SPEED | protocols()),
        ws_ping_interval=settings.ping_interval or None,
        ws_ping_timeout=settings.ping_timeout or None,
        lifespan="on",
        log_level=args.log_level,
        log_config=log_config,
        timeout_graceful_shutdown=max(1, int(settings.close_timeout)),
    )
    try:
        # uvicorn reports a port it cannot bind with a log line of its own; this says it in
        # vws's words first (the probe closes at once, so uvicorn still binds as it always does)
        sockets = [reuse_port_socket(host, port)] if args.reuse_port else None
        if sockets is None:
            probe_port(host, port)
    except OSError as exc:
        print(f"vws: cannot listen on {host}:{port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    serving_server(uvicorn_config, config, table, hooks).run(sockets=sockets)
    return 0


class OwnScope:
    """The vws app, given its own copy of an HTTP request's scope.

    Litestar rewrites ``scope["path"]`` to what is left after the mount it routes to (vws's
    HTTP side is mounted at "/", so ``/ws`` became ``ws/``), and uvicorn's access log reads the
    path from the same dict once the response is sent: it logged ``GET ws/``. A shallow copy a
    request keeps the access log's path as requested; WebSocket scopes are passed as they are.
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        #: vws.edge.transport finds the node through the app uvicorn serves.
        self.vws_server = app.vws_server

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(dict(scope) if scope["type"] == "http" else scope, receive, send)


def probe_port(host: str, port: int) -> None:
    """Bind ``host:port`` the way uvicorn will and let go of it; raises OSError if it is taken
    or the address is not this machine's."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)


def banner(config: Config, table: Any, host: str, port: int, hooks: Hooks | None = None) -> str:
    """What a new user needs to start: the routes, the plugins in the order their hooks run,
    the page (when [static] serves one) and the status page, with the port actually bound
    (``--port 0`` picks one)."""
    lines = [f"vws: serving {len(table.routes)} route(s) from {config.source}"]
    for path, route in table.routes.items():
        lines.append(f"vws:   ws://{host}:{port}{path} ({len(route.events)} event(s))")
    if hooks is not None and hooks.plugins:
        lines.append(f"vws: plugins, in call order: {', '.join(call_order(hooks))}")
    if config.static is not None:
        lines.append(f"vws: page: http://{host}:{port}{config.static.prefix}")
    lines.append(f"vws: status: http://{host}:{port}/_vws")
    return "\n".join(lines)


def call_order(hooks: Hooks) -> list[str]:
    """The loaded plugins in the order vws calls them: the last registered first (as
    :class:`~vws.hooks.Hooks` flattens pluggy's list), each with the hooks where ``tryfirst``
    or ``trylast`` moves it (``auth (first in vws_connect)``), since those override the order.
    """
    moved: dict[str, list[str]] = {}
    for hook in hooks.impls:
        caller = getattr(hooks.manager.hook, hook, None) if hooks.manager is not None else None
        for impl in caller.get_hookimpls() if caller is not None else ():
            if impl.tryfirst or impl.trylast:
                place = "first" if impl.tryfirst else "last"
                moved.setdefault(impl.plugin_name, []).append(f"{place} in {hook}")
    names = []
    for name in reversed(hooks.plugins):
        names.append(f"{name} ({', '.join(moved[name])})" if name in moved else name)
    return names


def serving_server(config: Any, vws_config: Config, table: Any, hooks: Hooks | None = None) -> Any:
    """A uvicorn server that prints vws's banner once it listens (uvicorn is imported here, on
    first use, as the rest of this command does)."""
    import uvicorn

    class Serving(uvicorn.Server):
        """A uvicorn server that prints vws's banner once its sockets listen, so a user who
        reads "serving" can connect at once."""

        def __init__(self, config: uvicorn.Config, vws_config: Config, table: Any) -> None:
            super().__init__(config)
            self.vws_config = vws_config
            self.table = table
            self.hooks = hooks

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if self.should_exit or not self.servers:
                return
            bound = self.servers[0].sockets[0].getsockname()
            print(
                banner(self.vws_config, self.table, self.config.host, bound[1], self.hooks),
                file=sys.stderr,
                flush=True,
            )

    return Serving(config, vws_config, table)


def run_workers(args: argparse.Namespace, settings: ServerConfig, host: str, port: int) -> int:
    """Supervise ``args.workers`` copies of this command sharing the port (see vws.ops.workers)."""
    if args.workers < 1:
        print("vws: --workers must be 1 or more", file=sys.stderr)
        return 2
    if settings.backplane.startswith("memory:"):
        print(
            f"vws: --workers {args.workers} needs a shared backplane, but it is "
            f"{settings.backplane!r}: each worker would see only its own clients. Set [server] "
            'backplane (or VWS_BACKPLANE) to "redis://host:6379/0" or "nats://host:4222".',
            file=sys.stderr,
        )
        return 2
    try:
        reserved = reuse_port_socket(host, port)  # holds the port (and picks one for port 0)
    except OSError as exc:
        print(f"vws: cannot listen on {host}:{port}: {exc.strerror}", file=sys.stderr)
        return 1
    port = reserved.getsockname()[1]
    command = [sys.executable, "-m", "vws.cli", "run", "--config", args.config]
    command += ["--host", host, "--port", str(port), "--log-level", args.log_level]
    command += ["--log-format", args.log_format]
    command += ["--reuse-port"] + ([] if args.watch else ["--no-watch"])
    print(
        f"vws: {args.workers} workers serving {args.config} on ws://{host}:{port}",
        file=sys.stderr,
        flush=True,
    )
    try:
        with multiprocess_metrics():  # /metrics of any worker adds up every worker's counts
            return Supervisor(command, args.workers, settings.close_timeout + 10).run()
    finally:
        reserved.close()
