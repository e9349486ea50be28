"""routes.toml's ``[tasks]``: functions of ``(server)`` that run in the background.

A task with ``every`` is called that often (the next call is timed from the end of the last, so
a slow run never overlaps the next); one without runs once, as a long-running task. Either is
called again ``retry`` seconds after it raised, its error logged with its name, or, for a
long-running one, after it returned. Tasks start once the server has started and are
cancelled when it stops; a reload starts the tasks it adds, cancels those it removes, and
restarts those it changes. An ``async def`` task runs on the event loop; a plain ``def`` one in
a worker thread, so that a blocking call in it holds up no client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from vws import logs
from vws.errors import USER_CODE_FAILURES
from vws.routing import TaskRoute

logger = logging.getLogger("vws.runtime.tasks")


@dataclass
class Running:
    """One started task, and what the status page tells of it."""

    route: TaskRoute
    task: asyncio.Task[None] | None = None
    runs: int = 0
    errors: int = 0
    last_error: str | None = None
    state: str = "starting"


class Tasks:
    """The background tasks of one node."""

    def __init__(self, server: Any) -> None:
        self.server = server
        self.running: dict[str, Running] = {}

    def start(self, tasks: Mapping[str, TaskRoute]) -> None:
        for route in tasks.values():
            self._start(route)

    def update(self, tasks: Mapping[str, TaskRoute]) -> None:
        """Follow a reload: start what was added, stop what was removed, restart what changed."""
        for name in list(self.running):
            route = tasks.get(name)
            old = self.running[name].route
            if (
                route is None
                or route.handler.function is not old.handler.function
                or ((route.every, route.retry) != (old.every, old.retry))
            ):
                self._stop(name)
        for name, route in tasks.items():
            if name not in self.running:
                self._start(route)

    async def stop(self) -> None:
        tasks = [running.task for running in self.running.values() if running.task]
        for name in list(self.running):
            self._stop(name)
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _start(self, route: TaskRoute) -> None:
        running = Running(route)
        running.task = asyncio.get_running_loop().create_task(self._run(running))
        self.running[route.name] = running
        logs.event(logger, "task_started", task=route.name, handler=route.handler.reference)

    def _stop(self, name: str) -> None:
        running = self.running.pop(name)
        if running.task is not None:
            running.task.cancel()
        logs.event(logger, "task_stopped", task=name)

    async def _run(self, running: Running) -> None:
        route = running.route
        while True:
            running.state = "running"
            try:
                await self._call(route)
            except asyncio.CancelledError:
                raise
            except USER_CODE_FAILURES as error:
                running.errors += 1
                running.last_error = f"{type(error).__name__}: {error}"
                running.state = "failed"
                logs.event(
                    logger,
                    "task_error",
                    logging.ERROR,
                    task=route.name,
                    retry=route.retry,
                    exc_info=True,
                )
                await asyncio.sleep(route.retry)
                continue
            running.runs += 1
            running.state = "waiting"
            await asyncio.sleep(route.every if route.every is not None else route.retry)

    async def _call(self, route: TaskRoute) -> None:
        function = route.handler.function
        if route.handler.is_async:
            await function(self.server)
        else:
            await asyncio.to_thread(function, self.server)

    def report(self) -> list[dict[str, Any]]:
        """What the status page and ``/_vws/status`` show of each task."""
        return [
            {
                "name": name,
                "handler": running.route.handler.reference,
                "every": running.route.every,
                "state": running.state,
                "runs": running.runs,
                "errors": running.errors,
                "last_error": running.last_error,
            }
            for name, running in self.running.items()
        ]
