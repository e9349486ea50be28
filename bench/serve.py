"""Serve a comparison target on uvicorn with the settings ``vws run`` uses.

``python -m bench.serve floor --port 8001`` (or ``bare``, or ``socketio``).
The protocol choices come from :data:`vws.cli.run.UVICORN_SPEED`, so the targets differ only in
the application; the websocket limits match vws's defaults (64 KiB messages, pings every 20 s).
"""

from __future__ import annotations

import argparse
import importlib
import resource

import uvicorn

from vws.cli.run import UVICORN_SPEED

APPS = {
    "floor": "bench.targets.floor:app",
    "bare": "bench.targets.bare:app",
    "socketio": "bench.targets.socketio_app:app",
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.serve")
    parser.add_argument("target", choices=sorted(APPS))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log-level", default="warning")
    parser.add_argument(
        "--ws", default=UVICORN_SPEED["ws"], help="uvicorn's websocket implementation"
    )
    args = parser.parse_args(argv)
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    module, _, name = APPS[args.target].partition(":")
    app = getattr(importlib.import_module(module), name)
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        ws_max_size=65536,
        ws_ping_interval=20.0,
        ws_ping_timeout=20.0,
        lifespan="auto",
        log_level=args.log_level,
        **(UVICORN_SPEED | {"ws": args.ws}),
    )


if __name__ == "__main__":
    main()
