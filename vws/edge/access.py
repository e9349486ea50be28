"""Who may read what ``/_vws``, ``/_vws/status``, ``/metrics`` and the full health tell.

Without an ``[admin] key``: loopback clients only. Loopback means both a loopback socket *and*
a loopback name in the Host header (``localhost``, ``127.0.0.1``, ``[::1]``), so that a
DNS-rebinding page, whose requests carry its own name, gets nothing; and no header that a proxy
adds (``Forwarded``, ``X-Forwarded-For``, ``X-Real-IP``, ``True-Client-IP``, ...), so that a
reverse proxy on the same host does not expose the data to the world. With a key: whoever
sends ``Authorization: Bearer KEY``, compared in constant time.
"""

from __future__ import annotations

import hmac
import ipaddress
from typing import Any

from litestar import Request, Response

from vws.edge.hosts import header, is_loopback_name

#: Headers a proxy adds to tell the client's address; their presence means "not from here".
_PROXY_HEADERS = frozenset(
    {
        b"forwarded",
        b"x-forwarded-for",
        b"x-forwarded-host",
        b"x-real-ip",
        b"true-client-ip",
        b"cf-connecting-ip",
        b"x-client-ip",
        b"x-cluster-client-ip",
        b"fastly-client-ip",
        b"x-original-forwarded-for",
    }
)


def is_loopback(scope: Any) -> bool:
    """Whether the request came straight from this machine, by its loopback name (not through
    a local proxy, not from a page whose name was rebound to 127.0.0.1)."""
    client = scope.get("client")
    if not client or not is_loopback_name(header(scope, b"host")):
        return False
    if any(name.lower() in _PROXY_HEADERS for name, _ in scope.get("headers", ())):
        return False
    try:
        return ipaddress.ip_address(client[0]).is_loopback
    except ValueError:
        return False


def bearer_matches(scope: Any, key: str) -> bool:
    """Whether the request carries ``Authorization: Bearer <key>`` (constant-time compare)."""
    for name, value in scope.get("headers", ()):
        if name.lower() == b"authorization":
            scheme, _, given = value.partition(b" ")
            if scheme.lower() == b"bearer":
                return hmac.compare_digest(given.strip(), key.encode())
    return False


def refusal(request: Request[Any, Any, Any], key: str) -> Response[Any] | None:
    """None when the request may read admin data, else the response refusing it."""
    if key:
        if bearer_matches(request.scope, key):
            return None
        return Response(
            {"error": "unauthorized", "message": "send Authorization: Bearer <admin key>"},
            status_code=401,
            headers={"WWW-Authenticate": 'Bearer realm="vws"'},
        )
    if is_loopback(request.scope):
        return None
    return Response(
        {
            "error": "forbidden",
            "message": "served to loopback clients only; set [admin] key to allow others",
        },
        status_code=403,
    )
