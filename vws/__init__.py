"""vws: a declarative, config-driven WebSocket router.

Write routes.toml, point its events at Python functions, run ``vws run``.
"""

from vws.client import Client, Headers
from vws.errors import ConfigError, Deny, RateLimited
from vws.fanout import Outgoing
from vws.plugins import hookimpl

__all__ = ["Client", "ConfigError", "Deny", "Headers", "Outgoing", "RateLimited", "hookimpl"]
__version__ = "0.1.0"
