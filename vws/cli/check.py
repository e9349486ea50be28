"""``vws check`` and ``vws routes``: validate routes.toml, show its dispatch table."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import typing
from typing import Any

import msgspec

from vws.cli import add_command, add_plugins_dir, load
from vws.config.model import dotted
from vws.routing import EventRoute


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    add_plugins_dir(
        add_command(
            commands, "check", "validate routes.toml and import every reference it names", check
        )
    )
    add_plugins_dir(
        add_command(commands, "routes", "print the dispatch table routes.toml compiles to", routes)
    )


def check(args: argparse.Namespace) -> int:
    """Load everything as ``vws run`` would, and report what is wrong.

    An installed plugin that fails is a problem here (exit 1) although ``vws run`` skips it and
    serves: the server would run without it, and check is what finds that out before it does.
    """
    config, table, hooks = load(args.config, args.plugins_dir, broken="error")
    events = sum(len(route.events) for route in table.routes.values())
    plugins = len(hooks.plugins)
    print(f"{config.source}: ok ({len(table.routes)} routes, {events} events, {plugins} plugins)")
    for path, route in table.routes.items():
        if not route.events and route.on_connect is None:
            line = config.lines.get(("routes", path), 1)
            print(f'{config.source}:{line}: routes."{path}": warning: the route has no events')
        for name, event in route.events.items():
            if event.schema is None and (typed := payload_class(event)) is not None:
                key = ("routes", path, "events", name)
                line = config.lines.get(key, 1)
                print(
                    f"{config.source}:{line}: {dotted(key)}: warning: the handler's payload is "
                    f"annotated {typed.__qualname__} but the event has no schema, so it gets the "
                    f'raw JSON; add schema = "{typed.__module__}:{typed.__qualname__}"'
                )
    return 0


def payload_class(event: EventRoute) -> type[Any] | None:
    """The class the handler's payload parameter is annotated with, when msgspec could convert
    a payload to it: a handler so annotated but with no ``schema`` would be given a dict (or a
    list, a str...) where it expects the class, and fail at its first attribute."""
    function = inspect.unwrap(event.handler.function)
    try:
        parameters = list(inspect.signature(function).parameters.values())
        hints = typing.get_type_hints(function)
    except Exception:  # an annotation that does not resolve is the handler's own business
        return None
    if len(parameters) < 2:
        return None
    hint = hints.get(parameters[1].name)
    if not isinstance(hint, type):
        return None
    convertible = (
        issubclass(hint, msgspec.Struct)
        or dataclasses.is_dataclass(hint)
        or hasattr(hint, "__attrs_attrs__")
        or typing.is_typeddict(hint)
        or (issubclass(hint, tuple) and hasattr(hint, "_fields"))
    )
    return hint if convertible else None


def routes(args: argparse.Namespace) -> int:
    _config, table, _hooks = load(args.config, args.plugins_dir)
    rows: list[tuple[str, ...]] = [("PATH", "EVENT", "HANDLER", "SCHEMA", "MIDDLEWARE")]
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
    _print_table(rows)
    if table.tasks:
        print()
        tasks: list[tuple[str, ...]] = [("TASK", "HANDLER", "EVERY")]
        for name, task in table.tasks.items():
            every = f"{task.every:g} s" if task.every is not None else "(long-running)"
            tasks.append((name, task.handler.reference, every))
        _print_table(tasks)
    return 0


def _print_table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        print("  ".join(cells).rstrip())
