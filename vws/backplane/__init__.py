"""Backplanes carry fan-out between nodes; :func:`create` picks one from a URL."""

from __future__ import annotations

from urllib.parse import urlsplit

from vws.backplane.base import Backplane, Envelope, Target
from vws.backplane.memory import MemoryBackplane

__all__ = ["SCHEMES", "Backplane", "Envelope", "MemoryBackplane", "Target", "create"]

#: URL schemes with a backplane.
SCHEMES = frozenset({"memory"})


def create(url: str, node_id: str) -> Backplane:
    """The backplane for ``url`` (``memory://`` or ``memory://BUS``).

    Raises:
        ValueError: the scheme is not one vws has a backplane for.
    """
    parts = urlsplit(url)
    if parts.scheme == "memory":
        return MemoryBackplane(node_id, parts.netloc + parts.path)
    raise ValueError(f"unsupported backplane {url!r}: expected memory://")
