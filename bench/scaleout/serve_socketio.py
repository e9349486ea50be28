"""``python -m bench.scaleout.serve_socketio --port P --workers N``: the python-socketio target
on uvicorn with the settings ``vws run`` uses, in N worker processes sharing the port."""

from __future__ import annotations

import argparse

import uvicorn

from vws.cli.run import UVICORN_SPEED


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.scaleout.serve_socketio")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    uvicorn.run(
        "bench.scaleout.socketio_redis:app",
        host="127.0.0.1",
        port=args.port,
        workers=args.workers,
        ws_max_size=65536,
        ws_ping_interval=20.0,
        ws_ping_timeout=20.0,
        lifespan="auto",
        log_level="warning",
        **UVICORN_SPEED,
    )


if __name__ == "__main__":
    main()
