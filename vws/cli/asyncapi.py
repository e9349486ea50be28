"""``vws asyncapi``: print the AsyncAPI 3.0 document of routes.toml."""

from __future__ import annotations

import argparse

from vws.cli import add_command
from vws.config import load_config
from vws.routing import compile_table
from vws.tools import asyncapi


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sub = add_command(
        commands, "asyncapi", "print an AsyncAPI 3.0 document of routes.toml", _asyncapi
    )
    sub.add_argument("--format", choices=["json", "yaml"], default="json")
    sub.add_argument("--title", default="vws application", help="the document's info.title")


def _asyncapi(args: argparse.Namespace) -> int:
    table = compile_table(load_config(args.config))
    document = asyncapi.build(table, title=args.title)
    render = asyncapi.to_yaml if args.format == "yaml" else asyncapi.to_json
    print(render(document), end="")
    return 0
