"""``/metrics`` under ``vws run --workers 2``: whichever worker answers reports every worker's
counts (prometheus-client's multiprocess mode), over a real Redis backplane."""

from __future__ import annotations

import secrets
from pathlib import Path

import anyio
import httpx
import pytest
from apps.scaleout_brokers import SHARED_REDIS, eventually
from conftest import Workers
from test_metrics import value
from wsclient import Peer

pytestmark = pytest.mark.anyio

APP = """
[server]
channel_prefix = "{prefix}"
[routes."/ws".events]
echo = "e2e_handlers:echo"
node = "scaleout_handlers:node"
"""


async def test_any_worker_reports_the_sum_of_all_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "routes.toml"
    config.write_text(APP.format(prefix="m" + secrets.token_hex(5)))
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)  # vws run sets its own
    env = {"VWS_BACKPLANE": SHARED_REDIS}
    workers = Workers(config, 2, env, ("--log-format", "json"))
    peers: list[Peer] = []
    try:
        await eventually(lambda: workers.log().count("Application startup complete") == 2, 60)
        nodes: set[str] = set()
        for _ in range(100):  # connect until each worker holds clients
            peer = await Peer.connect(f"{workers.url}/ws")
            peers.append(peer)
            nodes.add(await peer.call("node"))
            if len(nodes) == 2 and len(peers) >= 4:
                break
        assert len(nodes) == 2
        for peer in peers:
            await peer.call("echo", "x")
        count = len(peers)

        async def scrape() -> str:
            async with httpx.AsyncClient(timeout=10) as http:
                response = await http.get(f"{workers.http}/metrics")
            assert response.status_code == 200
            return response.text

        def complete(text: str) -> bool:
            received = value(text, "vws_messages_received_total", route="/ws", event="echo")
            return value(text, "vws_connections") == count and received == count

        with anyio.fail_after(15):  # the worker that is not scraped flushes once a second
            while not complete(await scrape()):
                await anyio.sleep(0.05)
        for _ in range(10):  # new connections each time: the answers come from both workers
            text = await scrape()
            assert complete(text), text
            assert value(text, "vws_connections_opened_total") == count
    finally:
        for peer in peers:
            await peer.ws.close()
        assert workers.stop() == 0
    lines = [line for line in workers.lines if line.startswith("{")]
    assert lines and all(line.rstrip().endswith("}") for line in lines)
