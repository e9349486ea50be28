"""The soak's view from inside the server: how late the event loop runs a timer.

vws exposes no event-loop lag (neither ``/metrics`` nor ``/_vws/status`` has one), and a round
trip measured by a client also holds the client's own loop and the sockets. So this plugin,
loaded by bench/soak_app/routes.toml, runs a task in the server's loop that asks to wake every
50 ms and records how late it woke: the time every other callback of the loop kept it waiting.
It also times the server's garbage collections (``gc.callbacks``), the usual suspect when the
loop stalls with nothing else to blame. ``loop-lag`` hands the soak what was recorded since it
last asked; ``probe`` is an echo, for the round trip the soak measures beside it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from typing import Any

from vws import Client, hookimpl

#: How often the timer asks to wake (seconds). uvloop's timers have millisecond resolution,
#: so each lag carries up to ~1 ms of rounding.
TICK = 0.05


class LoopMonitor:
    """A timer task in the running loop and the lags it saw since :meth:`take`."""

    def __init__(self) -> None:
        self.lags: list[float] = []
        #: Pauses of full (generation 2) collections, and how many of any generation ran.
        self.gc_full: list[float] = []
        self.gc_runs = 0
        self._gc_started = 0.0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())
            gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
            return
        self.gc_runs += 1
        if info["generation"] == 2:
            self.gc_full.append(time.perf_counter() - self._gc_started)

    async def stop(self) -> None:
        with contextlib.suppress(ValueError):
            gc.callbacks.remove(self._on_gc)
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        clock = time.perf_counter
        while True:
            due = clock() + TICK
            await asyncio.sleep(TICK)
            self.lags.append(clock() - due)

    def take(self) -> dict[str, float | int]:
        """Since the last call: mean, p99 and max lag (ms) and how many ticks they cover; the
        collections run, and the count and longest pause (ms) of the full ones."""
        lags, self.lags = sorted(self.lags), []
        full, self.gc_full = self.gc_full, []
        runs, self.gc_runs = self.gc_runs, 0
        found: dict[str, float | int] = {"ticks": len(lags), "gc_runs": runs}
        found |= {"gc_full": len(full), "gc_full_max_ms": round(1000 * max(full, default=0), 3)}
        if lags:
            p99 = lags[min(len(lags) - 1, int(0.99 * len(lags)))]
            found["mean_ms"] = round(1000 * sum(lags) / len(lags), 3)
            found["p99_ms"] = round(1000 * p99, 3)
            found["max_ms"] = round(1000 * lags[-1], 3)
        return found


MONITOR = LoopMonitor()


@hookimpl
async def vws_startup() -> None:
    MONITOR.start()


@hookimpl
async def vws_shutdown() -> None:
    await MONITOR.stop()


def probe(client: Client, payload: Any) -> Any:
    """Answer with the payload, as the ack: the soak times the round trip."""
    return payload


def loop_lag(client: Client, payload: Any) -> dict[str, float | int]:
    """The loop lag recorded since the previous ``loop-lag`` frame, as the ack."""
    return MONITOR.take()
