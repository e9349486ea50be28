"""vws: a declarative, config-driven WebSocket router.

Write routes.toml, point its events at Python functions, run ``vws run``.
"""

from vws.errors import ConfigError, Deny, RateLimited
from vws.hooks import hookimpl
from vws.runtime.client import Client, Headers
from vws.runtime.messages import Outgoing

__all__ = ["Client", "ConfigError", "Deny", "Headers", "Outgoing", "RateLimited", "hookimpl"]
__version__ = "0.1.0"
