"""``/_vws/status`` and ``/_vws``: what the status shows as clients come and go, and who may
see it."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from conftest import APPS, DEMO_APP
from wsclient import Peer

from vws.edge.access import bearer_matches, is_loopback
from vws.edge.status import report
from vws.testing import ErrorReply, TestApp

pytestmark = pytest.mark.anyio

KEY = "status-test-key-0123456789abcdef"


@pytest.fixture
async def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[TestApp]:
    monkeypatch.syspath_prepend(str(APPS))
    text = DEMO_APP + '\n[plugins]\nload = ["e2e_plugins"]\n'
    async with TestApp.from_toml(text, tmp_path) as running:
        yield running


def event_row(status: dict[str, Any], path: str, event: str) -> dict[str, Any]:
    route = next(route for route in status["routes"] if route["path"] == path)
    return next(row for row in route["events"] if row["event"] == event)


async def test_the_status_follows_clients_messages_errors_and_rooms(app: TestApp) -> None:
    before = report(app.server)
    assert before["connections"] == 0
    assert [r["path"] for r in before["routes"]] == ["/ws", "/other", "/private", "/guarded"]
    assert event_row(before, "/ws", "typed")["schema"] == "e2e_handlers:Point"
    assert event_row(before, "/ws", "echo") == {
        "event": "echo",
        "handler": "e2e_handlers:echo",
        "schema": None,
        "received": 0,
        "errors": 0,
        "latency": None,
    }

    alice = await app.connect("/ws", name="alice")
    bob = await app.connect("/ws", name="bob")
    carol = await app.connect("/other", name="carol")
    for n in range(3):
        await alice.request("echo", n)
    with pytest.raises(ErrorReply):
        await alice.request("boom")
    with pytest.raises(ErrorReply):
        await bob.request("made-up-event")
    await alice.join("big")
    await bob.join("big")
    await bob.join("small")
    await carol.join("big")  # another path: another room

    status = report(app.server)
    assert status["connections"] == 3
    ws = next(route for route in status["routes"] if route["path"] == "/ws")
    assert ws["connections"] == 2
    assert ws["unknown_events"] == 1
    assert ws["errors"] == {"handler_error": 1, "unknown_event": 1}
    echo = event_row(status, "/ws", "echo")
    assert echo["received"] == 3 and echo["errors"] == 0
    assert echo["latency"]["count"] == 3 and echo["latency"]["mean_ms"] >= 0
    assert event_row(status, "/ws", "boom")["errors"] == 1
    assert status["rooms"]["count"] == 3
    assert status["rooms"]["largest"][0] == {"path": "/ws", "room": "big", "members": 2}
    assert {"path": "/other", "room": "big", "members": 1} in status["rooms"]["largest"]
    assert [p["name"] for p in status["plugins"]] == ["e2e_plugins"]
    assert "vws_connect" in status["plugins"][0]["hooks"]
    assert status["backplane"]["state"] == "ok"
    config = await anyio.Path(app.server.table.config.source).read_bytes()
    assert status["config"]["sha256"] == hashlib.sha256(config).hexdigest()
    assert status["config"]["reloads"] == {"applied": 0, "refused": 0}
    assert status["totals"]["received"] == 3 + 2 + 4  # echoes, bad frames, joins

    await bob.close()
    await app.settle()
    after = report(app.server)
    assert after["connections"] == 2
    assert after["rooms"]["largest"][0]["members"] == 1


async def test_the_rates_show_messages_in_and_frames_out_per_second(app: TestApp) -> None:
    stats = app.server.stats
    stats.tick(now=1000.0)
    client = await app.connect("/ws")
    for n in range(10):
        await client.request("echo", n)
    stats.tick(now=1002.0)
    rates = report(app.server)["rates"]
    assert rates["t"] == [1002.0]
    assert rates["in"] == [5.0]  # 10 frames in 2 s
    assert rates["out"] == [5.5]  # 10 acks and the connected frame


async def http_get(url: str, **headers: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as client:
        return await client.get(url, headers=headers)


async def test_status_is_loopback_only_without_a_key(start_server) -> None:
    server = start_server(DEMO_APP)
    async with await Peer.connect(server.url + "/ws"):
        status = (await http_get(f"{server.http}/_vws/status")).json()
        assert status["connections"] == 1
    page = await http_get(f"{server.http}/_vws")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "<title>vws status</title>" in page.text
    for url in (f"{server.http}/_vws", f"{server.http}/_vws/status"):
        proxied = await http_get(url, **{"X-Forwarded-For": "198.51.100.7"})
        assert proxied.status_code == 403
        assert "loopback" in proxied.json()["message"]


async def test_with_a_key_the_status_needs_it_and_the_page_asks_for_it(start_server) -> None:
    server = start_server(DEMO_APP + f'\n[admin]\nkey = "{KEY}"\n')
    assert (await http_get(f"{server.http}/_vws/status")).status_code == 401
    wrong = await http_get(f"{server.http}/_vws/status", Authorization="Bearer " + KEY[:-1])
    assert wrong.status_code == 401
    right = await http_get(f"{server.http}/_vws/status", Authorization="Bearer " + KEY)
    assert right.status_code == 200 and right.json()["node"]
    proxied = await http_get(f"{server.http}/_vws", **{"X-Forwarded-For": "198.51.100.7"})
    assert proxied.status_code == 200  # the page holds no data; it asks for the key


async def test_the_environment_key_overrides_the_file(start_server) -> None:
    server = start_server(
        DEMO_APP + '\n[admin]\nkey = "from-the-file"\n', env={"VWS_ADMIN_KEY": KEY}
    )
    response = await http_get(f"{server.http}/_vws/status", Authorization="Bearer " + KEY)
    assert response.status_code == 200
    file_key = await http_get(f"{server.http}/_vws/status", Authorization="Bearer from-the-file")
    assert file_key.status_code == 401


async def test_the_status_shows_a_reload(start_server) -> None:
    server = start_server(DEMO_APP)
    first = (await http_get(f"{server.http}/_vws/status")).json()
    assert first["config"]["last_reload"] is None
    server.config.write_text(DEMO_APP + '\n[routes."/new".events]\necho = "e2e_handlers:echo"\n')
    with anyio.fail_after(10):
        while True:
            status = (await http_get(f"{server.http}/_vws/status")).json()
            if status["config"]["reloads"]["applied"]:
                break
            await anyio.sleep(0.05)
    assert status["config"]["sha256"] != first["config"]["sha256"]
    assert status["config"]["last_reload"] is not None
    assert "/new" in [route["path"] for route in status["routes"]]


LOCAL = (b"host", b"127.0.0.1:8000")


@pytest.mark.parametrize(
    ("client", "headers", "loopback"),
    [
        (("127.0.0.1", 5000), [LOCAL], True),
        (("127.8.9.10", 5000), [(b"host", b"localhost:8000")], True),
        (("::1", 5000, 0, 0), [(b"host", b"[::1]:8000")], True),
        (("127.0.0.1", 5000), [(b"Host", b"LOCALHOST")], True),
        (("10.0.0.2", 5000), [LOCAL], False),
        (("127.0.0.1", 5000), [LOCAL, (b"X-Forwarded-For", b"203.0.113.1")], False),
        (("127.0.0.1", 5000), [LOCAL, (b"forwarded", b"for=203.0.113.1")], False),
        (("127.0.0.1", 5000), [LOCAL, (b"true-client-ip", b"203.0.113.1")], False),
        (("127.0.0.1", 5000), [LOCAL, (b"CF-Connecting-IP", b"203.0.113.1")], False),
        # DNS rebinding: a loopback socket, but the page's own name in Host.
        (("127.0.0.1", 5000), [(b"host", b"evil.example:8000")], False),
        (("127.0.0.1", 5000), [], False),
        (None, [LOCAL], False),
        (("unix-socket", 0), [LOCAL], False),
    ],
)
def test_who_counts_as_loopback(client, headers, loopback) -> None:
    assert is_loopback({"client": client, "headers": headers}) is loopback


@pytest.mark.parametrize(
    ("header", "allowed"),
    [
        (b"Bearer " + KEY.encode(), True),
        (b"bearer " + KEY.encode(), True),
        (b"Bearer " + KEY.encode() + b"x", False),
        (b"Basic " + KEY.encode(), False),
        (KEY.encode(), False),
        (b"Bearer ", False),
    ],
)
def test_the_bearer_key_must_match_exactly(header: bytes, allowed: bool) -> None:
    assert bearer_matches({"headers": [(b"authorization", header)]}, KEY) is allowed
