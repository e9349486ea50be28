"""Backplanes carry fan-out between nodes; :func:`create` picks one from a URL."""

from __future__ import annotations

from importlib.util import find_spec
from urllib.parse import urlsplit

from vws.backplane.base import (
    Backplane,
    BackplaneOptions,
    Envelope,
    Position,
    Recovery,
    Retention,
    Target,
)
from vws.backplane.memory import MemoryBackplane

__all__ = [
    "SCHEMES",
    "Backplane",
    "BackplaneOptions",
    "Envelope",
    "MemoryBackplane",
    "Position",
    "Recovery",
    "Retention",
    "Target",
    "create",
    "missing_client",
]

#: URL schemes with a backplane.
SCHEMES = frozenset({"memory", "redis", "nats"})
#: Broker schemes → the modules their client needs (installed by the extra of the same name).
CLIENT_MODULES = {"redis": ("redis", "hiredis"), "nats": ("nats",)}


def missing_client(url: str) -> str | None:
    """Why the backplane of ``url`` cannot start here, when its client library is not installed.

    Checked when routes.toml is loaded, so that ``vws check`` says it and ``vws run`` stops with
    one line before any worker starts, rather than each worker failing on an import.
    """
    scheme = url.partition("://")[0]
    if all(find_spec(name) is not None for name in CLIENT_MODULES.get(scheme, ())):
        return None
    return f"{scheme}:// needs the {scheme} client: pip install 'vws[{scheme}]'"


def create(url: str, node_id: str) -> Backplane:
    """The backplane for ``url``: ``memory://`` (or ``memory://BUS``), ``redis://host:port/db``
    or ``nats://host:port``. The broker clients are imported only when used.

    Raises:
        ValueError: the scheme is not one vws has a backplane for.
    """
    parts = urlsplit(url)
    if parts.scheme == "memory":
        return MemoryBackplane(node_id, parts.netloc + parts.path)
    if parts.scheme == "redis":
        from vws.backplane.redis import RedisBackplane

        return RedisBackplane(node_id, url)
    if parts.scheme == "nats":
        from vws.backplane.nats import NatsBackplane

        return NatsBackplane(node_id, url)
    raise ValueError(f"unsupported backplane {url!r}: expected memory://, redis:// or nats://")
