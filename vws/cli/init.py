"""``vws init [DIR]``: start a new project that ``vws run`` serves at once."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vws.cli import add_command
from vws.tools import scaffold


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sub = add_command(commands, "init", "create a new vws project", _init, config=False)
    sub.add_argument("folder", nargs="?", default=".", help="where (default: here)")


def _init(args: argparse.Namespace) -> int:
    folder = Path(args.folder)
    try:
        written = scaffold.write(folder)
    except FileExistsError as exc:
        print(f"vws init: not overwriting {exc}", file=sys.stderr)
        return 1
    for path in written:
        print(f"created {path}")
    where = "" if folder == Path(".") else f"cd {folder} && "
    print(f"\nnext: {where}vws run   (then connect to ws://127.0.0.1:8000/ws)")
    return 0
