"""Which Host header values this server answers to: the guard against DNS rebinding.

A page on ``evil.example`` can make its name resolve to 127.0.0.1 and then reach a server on
the victim's machine as same-origin: the browser sends ``Host: evil.example:8000``, and a
server that trusts the socket's address alone would hand the page its status and its sockets.
So every HTTP request and every handshake must name a host the operator expects
(``[server] allowed_hosts``, or the loopback names when vws listens on loopback), and the
admin endpoints' "loopback only" needs a loopback *name* as well as a loopback socket.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from vws.config.model import LOOPBACK_HOSTS


def hostname(netloc: str | None) -> str | None:
    """The host part of a ``Host`` header (``[::1]:8000`` → ``::1``), lower case; None if
    missing or unreadable."""
    if not netloc:
        return None
    try:
        parts = urlsplit(f"//{netloc.strip()}")
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        return None
    return parts.hostname or None


def host_allowed(netloc: str | None, allowed: Iterable[str]) -> bool:
    """Whether a ``Host`` header names one of ``allowed``: exact names (``example.com``,
    ``::1``), subdomain patterns (``*.example.com``) or ``*`` for any host at all."""
    name = hostname(netloc)
    for entry in allowed:
        if entry == "*":
            return True
        if name is None:
            continue
        wanted = entry.lower().strip("[]")
        if wanted.startswith("*."):
            if name.endswith(wanted[1:]):
                return True
        elif name == wanted:
            return True
    return False


def is_loopback_name(netloc: str | None) -> bool:
    """Whether a ``Host`` header names this machine by a loopback name or address."""
    return host_allowed(netloc, LOOPBACK_HOSTS)


def header(scope: Mapping[str, Any], name: bytes) -> str | None:
    """The first value of the header ``name`` (lower-case bytes) of an ASGI scope."""
    headers: Iterable[tuple[bytes, bytes]] = scope.get("headers", ())
    for key, value in headers:
        if key.lower() == name:
            return value.decode("latin-1")
    return None
