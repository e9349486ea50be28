"""The compiled dispatch table: path → route → event → handler.

A :class:`DispatchTable` is built once from a :class:`~vws.config.Config` and never changed:
every reference is imported and checked while compiling, so serving a frame is two dictionary
lookups. Replacing the server's table is a single assignment, which is what lets a reload
happen under live traffic.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from types import MappingProxyType
from typing import Any, Literal

import msgspec
import msgspec.inspect

from vws.backplane.base import Retention
from vws.config import Config, KeyPath
from vws.config.model import per_second, seconds
from vws.config.references import importable, resolve
from vws.errors import ConfigError, ConfigIssue, UnresolvedReference


@dataclass(frozen=True, slots=True)
class Callback:
    """A resolved handler or middleware, with what the hot path needs to call it."""

    reference: str
    function: Callable[..., Any]
    is_async: bool


@dataclass(frozen=True, slots=True)
class EventRoute:
    """One event of a route: its handler and the type its payload is converted to."""

    name: str
    handler: Callback
    schema: Any | None = None
    schema_reference: str | None = None
    #: Seconds the handler may run before the client is told ``handler_timeout``.
    timeout: float = 30.0
    #: Run the (plain ``def``) handler in a worker thread.
    thread: bool = False


@dataclass(frozen=True, slots=True)
class Route:
    """One WebSocket path."""

    path: str
    events: Mapping[str, EventRoute]
    middleware: tuple[Callback, ...] = ()
    broadcast: Literal["server", "route"] = "server"
    on_connect: Callback | None = None
    on_disconnect: Callback | None = None
    #: Seconds the connect handler and a join's hooks may run (the route's handler timeout).
    timeout: float = 30.0
    #: Messages per second a client may send (0.0: no limit) and its bucket's depth.
    rate: float = 100.0
    burst: int = 200
    #: The history its rooms keep for recovery (None: none), and room-name patterns with a
    #: history of their own, first match first.
    history: Retention | None = None
    room_history: tuple[tuple[str, Retention | None], ...] = ()
    #: Events whose room frames are not kept (``history_skip``).
    history_skip: frozenset[str] = frozenset()
    #: room → its retention, as looked up once (a send must not match patterns each time).
    _retention: dict[str, Retention | None] = field(default_factory=dict, compare=False)

    def retention(self, room: str) -> Retention | None:
        """How much of ``room``'s history is kept: None when its frames get no position."""
        try:
            return self._retention[room]
        except KeyError:
            pass
        found = self.history
        for pattern, retention in self.room_history:
            if fnmatchcase(room, pattern):
                found = retention
                break
        if len(self._retention) >= _RETENTION_CACHE:
            self._retention.clear()  # many one-off rooms: start over rather than grow
        self._retention[room] = found
        return found


#: Rooms whose retention a route remembers before it forgets them all.
_RETENTION_CACHE = 10_000


@dataclass(frozen=True, slots=True)
class TaskRoute:
    """One ``[tasks]`` entry: the function, and how often it runs (None: once, long-running)."""

    name: str
    handler: Callback
    every: float | None
    retry: float


@dataclass(frozen=True, slots=True)
class DispatchTable:
    """Everything a running server looks up per frame, compiled from one routes.toml."""

    config: Config
    routes: Mapping[str, Route]
    tasks: Mapping[str, TaskRoute] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def route_scoped(self) -> frozenset[str]:
        """Paths with ``broadcast = "route"``: their own broadcast domains."""
        return frozenset(p for p, r in self.routes.items() if r.broadcast == "route")


def compile_table(config: Config) -> DispatchTable:
    """Import every reference of ``config`` and build its dispatch table.

    Raises:
        ConfigError: with a located issue for each reference that does not import or does
            not fit (not callable, wrong signature, a schema that is not a type).
    """
    importable(config.root)
    issues: list[ConfigIssue] = []
    routes: dict[str, Route] = {}
    for path, route in config.routes.items():
        at: KeyPath = ("routes", path)
        timeout = route.handler_timeout or config.server.handler_timeout
        middleware = tuple(
            _callback(config, ref, (*at, "middleware", str(i)), 1, issues)
            for i, ref in enumerate(route.middleware)
        )
        events: dict[str, EventRoute] = {}
        lifecycle: dict[str, Callback | None] = {"connect": None, "disconnect": None}
        for name, event in route.events.items():
            where = (*at, "events", name)
            if name in lifecycle:
                lifecycle[name] = _callback(
                    config, event.handler, _handler_key(config, where), 1, issues
                )
                if event.schema is not None:
                    issues.append(
                        config.issue((*where, "schema"), f"{name} takes no payload, so no schema")
                    )
                continue
            handler = _callback(config, event.handler, _handler_key(config, where), 2, issues)
            schema = None
            if event.schema is not None:
                schema = _schema(config, event.schema, (*where, "schema"), issues)
            if event.thread and handler.is_async:
                issues.append(
                    config.issue((*where, "thread"), "thread = true is for a def handler")
                )
            events[name] = EventRoute(
                name, handler, schema, event.schema, event.timeout or timeout, event.thread
            )
        routes[path] = Route(
            path=path,
            events=MappingProxyType(events),
            middleware=middleware,
            broadcast=route.broadcast,
            on_connect=lifecycle["connect"],
            on_disconnect=lifecycle["disconnect"],
            timeout=timeout,
            rate=per_second(route.rate or config.server.rate),
            burst=route.burst or config.server.burst,
            history=_retention(route.history_size, seconds(route.history_ttl)),
            room_history=tuple(
                (
                    pattern,
                    _retention(
                        rooms.history_size,
                        seconds(
                            route.history_ttl if rooms.history_ttl is None else rooms.history_ttl
                        ),
                    ),
                )
                for pattern, rooms in route.rooms.items()
            ),
            history_skip=frozenset(route.history_skip),
        )
    tasks = {
        name: TaskRoute(
            name,
            _callback(
                config, task.handler, _handler_key(config, ("tasks", name)), 1, issues, "(server)"
            ),
            None if task.every is None else seconds(task.every),
            seconds(task.retry),
        )
        for name, task in config.tasks.items()
    }
    if issues:
        raise ConfigError(issues)
    return DispatchTable(
        config=config, routes=MappingProxyType(routes), tasks=MappingProxyType(tasks)
    )


def _retention(size: int, ttl: float) -> Retention | None:
    return Retention(size, ttl) if size else None


def _handler_key(config: Config, where: KeyPath) -> KeyPath:
    """The long form's ``handler`` key when written, else the short form's event key."""
    long_form = (*where, "handler")
    return long_form if long_form in config.lines else where


def _callback(
    config: Config,
    reference: str,
    at: KeyPath,
    arity: int,
    issues: list[ConfigIssue],
    takes: str | None = None,
) -> Callback:
    try:
        function = resolve(reference)
    except UnresolvedReference as exc:
        issues.append(config.issue(at, str(exc)))
        return Callback(reference, _unresolved, False)
    if not callable(function):
        issues.append(config.issue(at, f"{reference!r} is not callable"))
        return Callback(reference, _unresolved, False)
    try:
        inspect.signature(function).bind(*([None] * arity))
    except TypeError:
        takes = takes or ("(client, payload)" if arity == 2 else "(client)")
        issues.append(config.issue(at, f"{reference!r} cannot be called with {takes}"))
    except ValueError:  # no signature to inspect (some builtins): trust it
        pass
    is_async = inspect.iscoroutinefunction(function) or inspect.iscoroutinefunction(
        getattr(function, "__call__", None)  # noqa: B004 - an async __call__ counts
    )
    return Callback(reference, function, is_async)


def _schema(config: Config, reference: str, at: KeyPath, issues: list[ConfigIssue]) -> Any:
    try:
        schema = resolve(reference)
    except UnresolvedReference as exc:
        issues.append(config.issue(at, str(exc)))
        return None
    try:
        msgspec.inspect.type_info(schema)
    except TypeError:
        issues.append(
            config.issue(at, f"{reference!r} is not a type msgspec can validate (a Struct, ...)")
        )
        return None
    return schema


def _unresolved(*_: Any) -> None:
    """Stands in for a reference that failed; a table holding it is never served."""
