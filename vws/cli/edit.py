"""``vws add-route``, ``add-event``, ``remove-event``, ``remove-route``: edit routes.toml safely.

Every command computes the edited text, validates it exactly as ``vws check`` would (every
reference must import), and only then replaces the file atomically, so a running ``vws run``
never sees a half-written or broken file. Lines the edit does not concern stay as written.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from vws.cli import add_command
from vws.config import parse_config
from vws.errors import ConfigError
from vws.routing import compile_table
from vws.tools import tomledit


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sub = add_command(commands, "add-route", "add a WebSocket path to routes.toml", _add_route)
    sub.add_argument("path", help="the path, e.g. /chat")
    sub = add_command(commands, "add-event", "add an event and its handler to a route", _add_event)
    sub.add_argument("path")
    sub.add_argument("event")
    sub.add_argument("handler", metavar="REF", help='the handler, "package.module:function"')
    sub.add_argument("--schema", metavar="REF", help="a type the payload is validated against")
    sub = add_command(commands, "remove-event", "remove an event from a route", _remove_event)
    sub.add_argument("path")
    sub.add_argument("event")
    sub = add_command(commands, "remove-route", "remove a path and all its events", _remove_route)
    sub.add_argument("path")


def _add_route(args: argparse.Namespace) -> int:
    return _edit(args.config, lambda text: tomledit.add_route(text, args.path))


def _add_event(args: argparse.Namespace) -> int:
    return _edit(
        args.config,
        lambda text: tomledit.add_event(text, args.path, args.event, args.handler, args.schema),
    )


def _remove_event(args: argparse.Namespace) -> int:
    return _edit(args.config, lambda text: tomledit.remove_event(text, args.path, args.event))


def _remove_route(args: argparse.Namespace) -> int:
    return _edit(args.config, lambda text: tomledit.remove_route(text, args.path))


def _edit(config: str, change: Callable[[str], str]) -> int:
    path = Path(config)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        print(f"{config}: cannot read the file: {exc.strerror}", file=sys.stderr)
        return 1
    try:
        edited = change(text)
    except tomledit.EditError as exc:
        print(f"{config}: {exc}", file=sys.stderr)
        return 1
    try:
        compile_table(parse_config(edited, config, environ={}))
    except ConfigError as error:
        print(f"{config}: not changed, the edit would not be valid:", file=sys.stderr)
        for issue in error.issues:
            print(f"  {issue}", file=sys.stderr)
        return 1
    write_atomically(path, edited)
    print(f"{config}: updated")
    return 0


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` in one rename, keeping its permissions."""
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        if path.exists():
            os.chmod(temporary, path.stat().st_mode & 0o7777)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
