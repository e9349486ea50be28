"""``vws check`` and ``vws routes``: validate routes.toml, show its dispatch table."""

from __future__ import annotations

import argparse

from vws.cli import add_command, add_plugins_dir, load


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
    config, table, hooks = load(args.config, args.plugins_dir)
    events = sum(len(route.events) for route in table.routes.values())
    plugins = len(hooks.plugins)
    print(f"{config.source}: ok ({len(table.routes)} routes, {events} events, {plugins} plugins)")
    for path, route in table.routes.items():
        if not route.events and route.on_connect is None:
            line = config.lines.get(("routes", path), 1)
            print(f'{config.source}:{line}: routes."{path}": warning: the route has no events')
    return 0


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
