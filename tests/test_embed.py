"""vws inside other frameworks' apps, served by a real uvicorn, reached by real clients: a
Starlette app mounting ``asgi_app()`` and a Litestar app with ``VwsPlugin``, each beside routes
of its own, with paths relative to the mount point and live reload."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import RunningServer
from wsclient import Peer

pytestmark = pytest.mark.anyio

ROUTES = '[routes."/ws".events]\necho = "e2e_handlers:echo"\n'


def host_app(factory: str, config: Path) -> RunningServer:
    """uvicorn serving one of tests/apps/embed_hosts.py's app factories, on routes.toml."""
    command = (sys.executable, "-m", "uvicorn", "--factory", f"embed_hosts:{factory}")
    command += ("--port", "{port}", "--log-level", "info")
    return RunningServer(config, {"VWS_EMBED_CONFIG": str(config)}, command=command)


@pytest.fixture(params=["make_starlette", "make_litestar"])
def host(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RunningServer]:
    config = tmp_path / "routes.toml"
    config.write_text(ROUTES)
    running = host_app(request.param, config)
    yield running
    running.stop()


async def test_vws_serves_beside_the_host_apps_routes(host: RunningServer):
    async with httpx.AsyncClient(base_url=host.http) as http:
        assert (await http.get("/hello")).text.startswith("hello from")
        status = await http.get("/rt/_vws/status")
        assert status.status_code == 200
        assert [route["path"] for route in status.json()["routes"]] == ["/ws"]
    async with await Peer.connect(host.url + "/rt/ws") as peer:
        assert await peer.call("echo", "through the mount") == "through the mount"


async def test_a_reload_applies_under_the_host(host: RunningServer):
    async with await Peer.connect(host.url + "/rt/ws") as peer:
        host.config.write_text(ROUTES + 'again = "e2e_handlers:echo"\n')
        deadline = time.monotonic() + 10
        while (await peer.request("again", 1))["event"] != "ack":
            assert time.monotonic() < deadline, "the reload did not apply"
            await asyncio.sleep(0.1)
