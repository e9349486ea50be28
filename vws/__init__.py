"""vws: a declarative, config-driven WebSocket router.

Write routes.toml, point its events at Python functions, run ``vws run``.
"""

from vws.errors import ConfigError, Deny, RateLimited, SettingsError
from vws.hooks import hookimpl
from vws.runtime.client import Client, Headers
from vws.runtime.messages import Outgoing
from vws.runtime.node import Server
from vws.runtime.node import current as server

__all__ = [
    "Client",
    "ConfigError",
    "Deny",
    "Headers",
    "Outgoing",
    "RateLimited",
    "Server",
    "SettingsError",
    "hookimpl",
    "server",
]
__version__ = "0.1.0"
