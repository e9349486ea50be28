"""The ``vws`` command. Each subcommand lives in a module of this package with a ``register``
function that adds its parser; :data:`COMMANDS` lists them in help order."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from importlib import import_module

from vws.config import Config, load_config
from vws.errors import ConfigError
from vws.hooks import Hooks, create_manager
from vws.hooks.loading import Broken
from vws.routing import DispatchTable, compile_table

#: Modules of this package that add subcommands, in the order ``vws --help`` lists them.
COMMANDS = ("init", "run", "check", "edit", "asyncapi", "plugins", "token", "connect")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        return int(args.command(args))
    except ConfigError as error:
        for issue in error.issues:
            print(issue, file=sys.stderr)
        return 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vws", description="A declarative, config-driven WebSocket router."
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    for name in COMMANDS:
        import_module(f"vws.cli.{name}").register(commands)
    return parser


def add_command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    help_: str,
    function: Callable[[argparse.Namespace], int],
    *,
    config: bool = True,
) -> argparse.ArgumentParser:
    """Add one subcommand; with ``config``, it takes ``--config FILE`` (default routes.toml)."""
    sub = commands.add_parser(name, help=help_, description=help_)
    if config:
        sub.add_argument(
            "--config",
            "-c",
            default="routes.toml",
            metavar="FILE",
            help="the routes.toml to use (default: ./routes.toml)",
        )
    sub.set_defaults(command=function)
    return sub


def load(
    path: str, plugins_dir: str | None = None, *, broken: Broken = "skip"
) -> tuple[Config, DispatchTable, Hooks]:
    """Everything a routes.toml names, loaded and checked (raises ConfigError).

    ``broken``: what an autoloaded plugin that fails does (see :data:`vws.hooks.loading.Broken`).
    """
    config = load_config(path)
    table = compile_table(config)
    manager = create_manager(config, plugins_dir=plugins_dir, broken=broken)
    return config, table, Hooks(manager)


def add_plugins_dir(parser: argparse.ArgumentParser) -> None:
    """``--plugins-dir DIR``, for the commands that load plugins."""
    parser.add_argument(
        "--plugins-dir",
        metavar="DIR",
        help="also load every *.py in DIR as a plugin (VWS_PLUGINS_DIR by default)",
    )
