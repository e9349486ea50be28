"""python-socketio with its Redis manager (``AsyncRedisManager``), as its docs set it up for
several processes; the app of bench/targets/socketio_app.py. The Redis URL comes from
``BENCH_REDIS_URL``."""

from __future__ import annotations

import os

import socketio

from bench.targets.socketio_app import build

app = build(socketio.AsyncRedisManager(os.environ["BENCH_REDIS_URL"]))
