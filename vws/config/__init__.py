"""routes.toml → typed configuration: the Structs, where each key stands, dotted references.

``vws.config.model`` holds the Structs and the loading; ``vws.config.lines`` finds the line of
every key (msgspec reports paths, not lines); ``vws.config.references`` imports
``"package.module:attribute"`` references. This package re-exports what the layers above use.
"""

from vws.config.lines import KeyPath
from vws.config.model import (
    AdminConfig,
    Config,
    EventConfig,
    PluginsConfig,
    RouteConfig,
    ServerConfig,
    StaticConfig,
    load_config,
    parse_config,
)

__all__ = [
    "AdminConfig",
    "Config",
    "EventConfig",
    "KeyPath",
    "PluginsConfig",
    "RouteConfig",
    "ServerConfig",
    "StaticConfig",
    "load_config",
    "parse_config",
]
