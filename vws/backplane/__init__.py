"""Backplanes carry fan-out between nodes; :func:`create` picks one from a URL."""

from __future__ import annotations

from urllib.parse import urlsplit

from vws.backplane.base import Backplane, BackplaneOptions, Envelope, Target
from vws.backplane.memory import MemoryBackplane

__all__ = [
    "SCHEMES",
    "Backplane",
    "BackplaneOptions",
    "Envelope",
    "MemoryBackplane",
    "Target",
    "create",
]

#: URL schemes with a backplane.
SCHEMES = frozenset({"memory", "redis", "nats"})


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
