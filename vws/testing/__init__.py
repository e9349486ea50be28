"""Test a vws app with pytest: in-process clients, a live server, and the fixtures for both.

Install with ``pip install 'vws[testing]'`` (it brings pytest). Installing vws registers
:mod:`vws.testing.plugin` as a pytest plugin, giving every project two fixtures:

- ``vws_app``: the app of ``routes.toml`` (or the ``vws_config`` ini option, or your own
  ``vws_config`` fixture), served in the test's event loop. Its clients are in-process: their
  frames go through the real :func:`vws.edge.websocket.serve` over fake ASGI ``receive``/``send``
  callables, with no socket, so a test runs in milliseconds.
- ``vws_live``: the same app served by uvicorn on 127.0.0.1 in a background thread, for real
  WebSocket clients (a browser, another language's client) and for ``http`` requests.

A test needs anyio's pytest plugin (installed with anyio, which vws depends on), not
pytest-asyncio::

    import pytest

    pytestmark = pytest.mark.anyio

    async def test_say(vws_app):
        alice, bob = await vws_app.connect("/ws"), await vws_app.connect("/ws")
        await alice.request("say", "hi")
        await bob.expect("said", match={"text": "hi"})

Every wait has a timeout (``timeout=`` on the call, else the ``vws_timeout`` ini option, 2 s by
default), and the error it raises lists the frames the client received so far.
"""

from vws.testing.clients import (
    DEFAULT_TIMEOUT,
    ErrorReply,
    Frame,
    FrameTimeout,
    Match,
    Refused,
    TestClient,
    matches,
)
from vws.testing.servers import LiveServer, TestApp

__all__ = [
    "DEFAULT_TIMEOUT",
    "ErrorReply",
    "Frame",
    "FrameTimeout",
    "LiveServer",
    "Match",
    "Refused",
    "TestApp",
    "TestClient",
    "matches",
]
