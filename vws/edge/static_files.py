"""Files served over HTTP beside the routes: routes.toml's ``[static]`` folder and ``vws.js``.

The ``[static]`` mount is answered from the catch-all route of :mod:`vws.edge.app` (only for HTTP
``GET``/``HEAD``; WebSocket handshakes on any path still reach the routes), reading the table
the server holds now, so a reload that changes ``[static]`` applies at once. ``vws.js``, the
browser client, ships inside the package and is served at :data:`CLIENT_PATH`.

Both answer with an ``ETag`` and ``Cache-Control: no-cache``: a browser revalidates on every
load and gets a 304 while the file is unchanged, so an edit shows up without a stale cache.
"""

from __future__ import annotations

import mimetypes
from importlib import resources
from pathlib import Path
from typing import TypeGuard

import anyio
from litestar import asgi
from litestar.enums import ScopeType
from litestar.types import (
    HTTPResponseBodyEvent,
    HTTPResponseStartEvent,
    HTTPScope,
    Receive,
    Scope,
    Send,
)

from vws.config import StaticConfig
from vws.edge.hosts import header

CLIENT_PATH = "/_vws/vws.js"

_TYPES = {".js": "text/javascript", ".mjs": "text/javascript", ".css": "text/css"}


def find_file(static: StaticConfig, root: Path, url_path: str) -> Path | str | None:
    """The file of the mount that ``url_path`` names, or None.

    Returns a str instead when the URL names the mount's own folder without its final slash:
    the URL to redirect to, so that the page's relative links resolve inside the folder.
    A path with a segment that starts with a dot (``..``, hidden files) or that leaves the
    folder through a link names nothing.
    """
    prefix = static.prefix.rstrip("/") + "/"
    if url_path == prefix.rstrip("/") and prefix != "/":
        return prefix
    if not url_path.startswith(prefix):
        return None
    parts = url_path[len(prefix) :].split("/")
    if any(part.startswith(".") or "\\" in part or "\0" in part for part in parts):
        return None
    try:
        folder = (root / static.directory).resolve()
        found = folder.joinpath(*parts).resolve()
        if not found.is_relative_to(folder):
            return None
        if found.is_dir():
            found = found / static.index
        return found if found.is_file() else None
    except (OSError, RuntimeError):  # a name too long for the OS, a symlink loop: no file
        return None


def _content_type(path: Path) -> str:
    kind = _TYPES.get(path.suffix.lower()) or mimetypes.guess_type(path.name)[0]
    kind = kind or "application/octet-stream"
    if kind.startswith("text/") or kind in {"application/json", "image/svg+xml"}:
        kind += "; charset=utf-8"
    return kind


async def respond(
    send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes = b""
) -> None:
    """One whole plain HTTP answer: its start, then its only body."""
    start: HTTPResponseStartEvent = {
        "type": "http.response.start",
        "status": status,
        "headers": headers,
    }
    await send(start)
    end: HTTPResponseBodyEvent = {"type": "http.response.body", "body": body, "more_body": False}
    await send(end)


def is_read(scope: Scope) -> TypeGuard[HTTPScope]:
    """Whether ``scope`` is an HTTP GET or HEAD, the only requests a file answers."""
    return scope["type"] == ScopeType.HTTP and scope["method"] in {"GET", "HEAD"}


async def send_file(
    scope: Scope, send: Send, path: Path, extra: tuple[tuple[bytes, bytes], ...] = ()
) -> None:
    """Answer a GET or HEAD with ``path``'s bytes, or 304 when the client's copy is current."""
    info = await anyio.Path(path).stat()
    etag = f'"{info.st_mtime_ns:x}-{info.st_size:x}"'
    headers = [
        (b"etag", etag.encode()),
        (b"cache-control", b"no-cache"),
        (b"x-content-type-options", b"nosniff"),
        *extra,
    ]
    if header(scope, b"if-none-match") == etag:
        await respond(send, 304, headers)
        return
    body = await anyio.Path(path).read_bytes()
    headers += [
        (b"content-type", _content_type(path).encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    head = scope["type"] == ScopeType.HTTP and scope["method"] == "HEAD"
    await respond(send, 200, headers, b"" if head else body)


async def redirect(send: Send, location: str) -> None:
    headers = [(b"location", location.encode()), (b"content-length", b"0")]
    await respond(send, 308, headers)


async def serve_static(
    static: StaticConfig | None, root: Path, scope: Scope, send: Send, url_path: str
) -> bool:
    """Answer an HTTP request from the ``[static]`` mount; False when it names no file there."""
    if static is None or not is_read(scope):
        return False
    found = await anyio.to_thread.run_sync(find_file, static, root, url_path)
    if found is None:
        return False
    if isinstance(found, str):
        query = scope.get("query_string", b"")
        await redirect(send, found + (f"?{query.decode('latin-1')}" if query else ""))
    else:
        await send_file(scope, send, found)
    return True


def client_file() -> Path:
    """vws.js as installed with the package."""
    return Path(str(resources.files("vws").joinpath("static/vws.js")))


@asgi(CLIENT_PATH, copy_scope=True, include_in_schema=False)
async def client_script(scope: Scope, receive: Receive, send: Send) -> None:
    """``GET /_vws/vws.js``: the browser client, importable as an ES module from any origin
    (it is public code; which pages may *connect* is the handshake's Origin check)."""
    if not is_read(scope):
        body = b"GET or HEAD only\n"
        headers = [(b"allow", b"GET, HEAD"), (b"content-length", str(len(body)).encode())]
        await respond(send, 405, headers, body)
        return
    await send_file(scope, send, client_file(), ((b"access-control-allow-origin", b"*"),))
