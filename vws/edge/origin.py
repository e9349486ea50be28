"""The browser Origin check made at the WebSocket handshake.

Browsers let any page open a WebSocket to any host and send the user's cookies along, so a
server must refuse pages from origins it does not trust (cross-site WebSocket hijacking). A
handshake without an Origin header does not come from a browser and is allowed.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from vws.edge.hosts import host_allowed

_DEFAULT_PORTS = {"http": 80, "ws": 80, "https": 443, "wss": 443}


def _host_port(netloc: str, scheme: str) -> tuple[str, int | None] | None:
    try:
        parts = urlsplit(f"//{netloc}")
        port = parts.port
    except ValueError:
        return None
    if parts.hostname is None:
        return None
    return parts.hostname.lower(), port if port is not None else _DEFAULT_PORTS.get(scheme)


def normalise(origin: str) -> str | None:
    """``scheme://host:port`` in lower case with the port made explicit, or None if unreadable."""
    parts = urlsplit(origin.strip())
    scheme = parts.scheme.lower()
    found = _host_port(parts.netloc, scheme)
    if not scheme or found is None:
        return None
    host, port = found
    return f"{scheme}://{host}:{port}"


def origin_allowed(
    origin: str | None,
    host: str | None,
    allowed: tuple[str, ...],
    hosts: tuple[str, ...] = ("*",),
) -> bool:
    """Whether a handshake with this ``Origin`` and ``Host`` may proceed.

    Allowed: no Origin at all; ``"*"`` in ``allowed``; an Origin listed in ``allowed``
    (compared with default ports made explicit); a same-origin page, that is an Origin whose
    host and port equal the Host header's *and* whose host is one of ``hosts`` (the server's
    allowed hosts). The Host header alone proves nothing: a DNS-rebinding page sends its own.
    """
    if origin is None or "*" in allowed:
        return True
    parts = urlsplit(origin.strip())
    scheme = parts.scheme.lower()
    found = _host_port(parts.netloc, scheme)
    if (
        found is not None
        and host
        and _host_port(host, scheme) == found
        and host_allowed(parts.netloc, hosts)
    ):
        return True
    wanted = normalise(origin)
    return wanted is not None and wanted in {normalise(entry) for entry in allowed}
