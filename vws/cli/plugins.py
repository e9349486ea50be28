"""``vws plugins``: which plugins a ``vws run`` here would load, where from, and their hooks."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from vws.cli import add_command
from vws.config import load_config, parse_config
from vws.hooks import create_manager


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sub = add_command(
        commands,
        "plugins",
        "list the plugins that would be loaded: name, version, source and hooks",
        plugins_command,
    )
    sub.add_argument(
        "--plugins-dir", metavar="DIR", help="also load every *.py in DIR (as vws run does)"
    )
    sub.add_argument("--json", action="store_true", help="print a JSON list instead of a table")


def plugins_command(args: argparse.Namespace) -> int:
    path = Path(args.config)
    if not path.exists() and args.config == "routes.toml":
        # no project here: still show what installed packages would add
        config = parse_config("", args.config, environ=os.environ)
    else:
        config = load_config(path)
    manager = create_manager(config, plugins_dir=args.plugins_dir)
    loaded = list(manager.loaded.values())
    if args.json:
        rows = [
            {"name": p.name, "version": p.version, "source": p.source, "hooks": list(p.hooks)}
            for p in loaded
        ]
        print(json.dumps(rows, indent=2))
        return 0
    if not loaded:
        print("no plugins loaded")
        return 0
    table = [("NAME", "VERSION", "SOURCE", "HOOKS")]
    table += [(p.name, p.version or "-", p.source, ", ".join(p.hooks) or "-") for p in loaded]
    widths = [max(len(row[i]) for row in table) for i in range(3)]
    for row in table:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        print("  ".join([*cells, row[3]]))
    return 0
