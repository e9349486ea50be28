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
    """List what is loaded, then what ``block`` kept out and what failed; exit 1 if any failed.

    A broken installed plugin is listed with its error rather than stopping the command: this
    is the command an operator runs to find it. The exit status still tells a script.
    """
    path = Path(args.config)
    if not path.exists() and args.config == "routes.toml":
        # no project here: still show what installed packages would add
        config = parse_config("", args.config, environ=os.environ)
    else:
        config = load_config(path)
    manager = create_manager(config, plugins_dir=args.plugins_dir, broken="skip_quietly")
    status = 1 if manager.failed else 0
    if args.json:
        rows: list[dict[str, object]] = [
            {
                "name": p.name,
                "status": "loaded",
                "version": p.version,
                "source": p.source,
                "hooks": list(p.hooks),
            }
            for p in manager.loaded.values()
        ]
        rows += [
            {
                "name": b.name,
                "status": "blocked",
                "version": b.version,
                "source": b.source,
                "blocked_by": b.by,
                "where": b.where,
            }
            for b in manager.blocked.values()
        ]
        rows += [
            {
                "name": f.name,
                "status": "failed",
                "version": f.version,
                "source": f.source,
                "error": f.error,
            }
            for f in manager.failed.values()
        ]
        print(json.dumps(rows, indent=2))
        return status
    loaded = list(manager.loaded.values())
    if loaded:
        _print_table(
            [("NAME", "VERSION", "SOURCE", "HOOKS")]
            + [(p.name, p.version or "-", p.source, ", ".join(p.hooks) or "-") for p in loaded]
        )
    else:
        print("no plugins loaded")
    if manager.blocked:
        print("\nblocked:")
        _print_table(
            [("NAME", "VERSION", "SOURCE", "BLOCKED BY")]
            + [
                (b.name, b.version or "-", b.source, f"{b.where} ({b.by!r})")
                for b in manager.blocked.values()
            ]
        )
    if manager.failed:
        print("\nfailed to load (skipped by vws run):")
        _print_table(
            [("NAME", "VERSION", "SOURCE", "ERROR")]
            + [(f.name, f.version or "-", f.source, f.error) for f in manager.failed.values()]
        )
    return status


def _print_table(rows: list[tuple[str, str, str, str]]) -> None:
    """Columns padded to their widest cell; the last one (hooks, an error) runs on."""
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        print("  ".join([*cells, row[3]]))
