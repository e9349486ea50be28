"""vws.edge.app.create_app: sockets go to vws, everything else to Litestar, in-process as the user
guide shows (Litestar's TestClient, no network)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import APPS, DEMO_APP
from litestar.testing import TestClient

from vws.edge.app import create_app, load_server


@pytest.fixture
def http(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:  # type: ignore[type-arg]
    monkeypatch.syspath_prepend(str(APPS))
    config = tmp_path / "routes.toml"
    config.write_text(DEMO_APP)
    with TestClient(create_app(load_server(config)), base_url="http://127.0.0.1") as client:
        yield client


def test_a_host_the_server_does_not_answer_to_is_refused(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(APPS))
    config = tmp_path / "routes.toml"
    config.write_text(DEMO_APP)
    with TestClient(create_app(load_server(config))) as client:  # Host: testserver.local
        assert client.get("/_vws/health").status_code == 400


def test_a_socket_is_served_by_the_dispatch_table(http: TestClient) -> None:  # type: ignore[type-arg]
    with http.websocket_connect("/ws") as ws:
        assert ws.receive_json()["event"] == "connected"
        ws.send_json({"event": "echo", "payload": {"n": 1}, "id": 7})
        reply = ws.receive_json()
        while reply["event"] != "ack":  # the demo app may greet first
            reply = ws.receive_json()
        assert reply == {"event": "ack", "payload": {"n": 1}, "id": 7}


def test_http_is_served_by_litestar(http: TestClient) -> None:  # type: ignore[type-arg]
    assert http.get("/_vws/health").json()["status"] == "ok"
    refused = http.get("/ws")
    assert refused.status_code == 426
    assert refused.headers["upgrade"] == "websocket"
    assert http.get("/nowhere").status_code == 404
