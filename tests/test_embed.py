"""vws inside other frameworks' apps, served by a real uvicorn, reached by real clients: a
Starlette app mounting ``asgi_app()`` and a Litestar app with ``VwsPlugin``, each beside routes
of its own, with paths relative to the mount point and live reload."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import APPS, REPO, STARTUP_TIMEOUT, free_port
from wsclient import Peer

pytestmark = pytest.mark.anyio

ROUTES = '[routes."/ws".events]\necho = "e2e_handlers:echo"\n'


class Host:
    """uvicorn serving one of tests/apps/embed_hosts.py's app factories."""

    def __init__(self, factory: str, config: Path) -> None:
        self.port = free_port()
        self.http = f"http://127.0.0.1:{self.port}"
        self.url = f"ws://127.0.0.1:{self.port}"
        self.lines: list[str] = []
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(APPS), str(REPO)]),
            "VWS_EMBED_CONFIG": str(config),
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", f"embed_hosts:{factory}",
             "--port", str(self.port), "--log-level", "info"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            cwd=config.parent,
        )  # fmt: skip
        ready = threading.Event()

        def pump() -> None:
            assert self.process.stdout is not None
            for line in self.process.stdout:
                self.lines.append(line)
                if "Uvicorn running on" in line:
                    ready.set()
            ready.set()

        threading.Thread(target=pump, daemon=True).start()
        if not ready.wait(STARTUP_TIMEOUT) or self.process.poll() is not None:
            self.stop()
            raise RuntimeError("the host app did not start:\n" + "".join(self.lines))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()


@pytest.fixture(params=["make_starlette", "make_litestar"])
def host(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Host]:
    config = tmp_path / "routes.toml"
    config.write_text(ROUTES)
    running = Host(request.param, config)
    running.config = config  # type: ignore[attr-defined]
    yield running
    running.stop()


async def test_vws_serves_beside_the_host_apps_routes(host: Host):
    async with httpx.AsyncClient(base_url=host.http) as http:
        assert (await http.get("/hello")).text.startswith("hello from")
        status = await http.get("/rt/_vws/status")
        assert status.status_code == 200
        assert [route["path"] for route in status.json()["routes"]] == ["/ws"]
    async with await Peer.connect(host.url + "/rt/ws") as peer:
        assert await peer.call("echo", "through the mount") == "through the mount"


async def test_a_reload_applies_under_the_host(host: Host):
    async with await Peer.connect(host.url + "/rt/ws") as peer:
        host.config.write_text(ROUTES + 'again = "e2e_handlers:echo"\n')  # type: ignore[attr-defined]
        deadline = time.monotonic() + 10
        while (await peer.request("again", 1))["event"] != "ack":
            assert time.monotonic() < deadline, "the reload did not apply"
            await asyncio.sleep(0.1)
