"""The audit plugin: JSON lines for connects, joins, leaves, refusals and disconnects, with the
identity from the token's claims, and never a payload or a token."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import websockets
from wsclient import Peer

from vws.contrib.auth import mint

pytestmark = pytest.mark.anyio

SECRET = "audit-test-secret-0123456789abcdefghij"
APP = f"""
[plugins]
load = ["auth", "audit"]

[plugins.settings.auth]
secret = "{SECRET}"
paths = ["/ws"]
rooms_claim = "rooms"

[plugins.settings.audit]
file = "audit.jsonl"
identity = "claims.sub"

[routes."/ws".events]
echo = "e2e_handlers:echo"
deny = "e2e_handlers:deny"
[routes."/open".events]
echo = "e2e_handlers:echo"
"""


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


async def test_the_trail_of_a_session_without_payloads_or_tokens(start_server):
    server = start_server(APP)
    trail = server.config.parent / "audit.jsonl"
    token = mint({"sub": "ann", "rooms": ["ok-*"], "exp": int(time.time()) + 600}, SECRET)
    async with await Peer.connect(f"{server.url}/ws?token={token}") as a:
        client_id = a.id
        await a.call("joinRoom", room="ok-1")
        assert (await a.request("joinRoom", room="secret-room"))["event"] == "error"
        await a.call("echo", "TOP-SECRET-PAYLOAD")
        await a.request("deny", "ANOTHER-SECRET")
        await a.call("leftRoom", room="ok-1")
    forged = mint({"sub": "eve", "exp": int(time.time()) + 600}, "another-secret-" * 3)
    async with websockets.connect(f"{server.url}/ws?token={forged}") as ws:
        with pytest.raises(websockets.ConnectionClosed):
            await ws.recv()
    async with await Peer.connect(f"{server.url}/open") as watcher:
        for _ in range(200):  # the disconnect is written once the server has seen the close
            if any(line["event"] == "disconnect" for line in lines(trail)):
                break
            await watcher.call("echo")
    text = trail.read_text()
    assert "SECRET" not in text
    for secret in (token, forged):
        assert secret not in text and secret.split(".")[2] not in text
    mine = [line for line in lines(trail) if line["client_id"] == client_id]
    for line in mine:
        assert line.pop("time").endswith("+00:00")
        assert line.pop("client_id") == client_id
    assert mine == [
        {"event": "connect", "path": "/ws", "user": "ann"},
        {"event": "join", "path": "/ws", "user": "ann", "room": "ok-1"},
        {
            "event": "refused",
            "path": "/ws",
            "user": "ann",
            "action": "join",
            "code": "join_denied",
            "reason": "the token does not allow room 'secret-room'",
            "room": "secret-room",
        },
        {
            "event": "refused",
            "path": "/ws",
            "user": "ann",
            "action": "message",
            "code": "denied",
            "reason": "not today",
            "frame_event": "deny",
        },
        {"event": "leave", "path": "/ws", "user": "ann", "room": "ok-1", "reason": "asked"},
        {"event": "disconnect", "path": "/ws", "user": "ann", "code": 1000},
    ]
    refusals = [line for line in lines(trail) if line.get("action") == "connect"]
    assert [(f["event"], f["code"], f["reason"], f["user"]) for f in refusals] == [
        ("refused", 4401, "invalid token: bad signature", None)
    ]


async def test_events_setting_selects_what_is_written(start_server):
    server = start_server(APP.replace('identity = "claims.sub"', 'events = ["refused"]'))
    trail = server.config.parent / "audit.jsonl"
    async with await Peer.connect(f"{server.url}/open") as a:
        await a.call("joinRoom", room="x")
        await a.request("echo")
    assert (await _refused(f"{server.url}/ws"))[0] == 4401
    async with await Peer.connect(f"{server.url}/open") as b:
        for _ in range(200):
            if lines(trail):
                break
            await b.call("echo")
    assert [(line["event"], line["action"]) for line in lines(trail)] == [("refused", "connect")]


async def _refused(url: str) -> tuple[int, str]:
    async with websockets.connect(url) as ws:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code, closed.value.rcvd.reason
