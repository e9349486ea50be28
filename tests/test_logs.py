"""Structured logs: one line per record in text or JSON, the events an operator follows, and
never a payload or a token."""

from __future__ import annotations

import json
import logging
import sys

import anyio
import pytest
import websockets
from conftest import DEMO_APP
from wsclient import Peer

from vws import logs

pytestmark = pytest.mark.anyio

TOKEN = "SECRET-TOKEN-0123456789"
PAYLOAD = "PRIVATE-PAYLOAD-9876"


def record(name: str = "vws.runtime.connection", message: str = "connect", **fields: object):
    made = logging.LogRecord(name, logging.INFO, __file__, 1, message, None, None)
    if fields:
        made.vws_fields = fields
    return made


def test_text_lines_carry_the_event_and_its_fields() -> None:
    line = logs.TextFormatter().format(record(client="abc", path="/ws", reason="not today"))
    expected = " INFO vws.runtime.connection connect client=abc path=/ws reason='not today'"
    assert line.endswith(expected)
    assert line[:4].isdigit() and "T" in line.split(" ")[0] and line.split(" ")[0].endswith("Z")


def test_json_lines_are_one_object_with_the_traceback_as_a_field() -> None:
    try:
        raise RuntimeError("inside")
    except RuntimeError:
        made = record(message="handler_error", path="/ws", frame_event="boom")
        made.exc_info = sys.exc_info()
    line = logs.JsonFormatter().format(made)
    assert "\n" not in line
    data = json.loads(line)
    assert data["event"] == "handler_error" and data["path"] == "/ws"
    assert data["level"] == "info" and data["logger"] == "vws.runtime.connection"
    assert "RuntimeError: inside" in data["traceback"]
    plain = json.loads(logs.JsonFormatter().format(record(message="reloaded routes.toml")))
    assert plain["message"] == "reloaded routes.toml" and "event" not in plain


def test_query_values_in_uvicorn_lines_are_redacted() -> None:
    made = logging.LogRecord(
        "uvicorn.error",
        logging.INFO,
        __file__,
        1,
        '%s - "WebSocket %s" [accepted]',
        ("127.0.0.1:5000", f"/ws?token={TOKEN}&room=a"),
        None,
    )
    for formatter in (logs.TextFormatter(), logs.JsonFormatter()):
        line = formatter.format(made)
        assert TOKEN not in line
        assert "/ws?token=…&room=…" in line


async def test_a_json_server_logs_connects_refusals_errors_and_disconnects(start_server) -> None:
    server = start_server(DEMO_APP, args=("--log-format", "json"))
    async with await Peer.connect(f"{server.url}/ws?token={TOKEN}") as peer:
        await peer.call("echo", PAYLOAD)
        await peer.request("boom", PAYLOAD)
        client_id = peer.id
    async with websockets.connect(f"{server.url}/guarded?token={TOKEN}") as ws:
        with pytest.raises(websockets.ConnectionClosed):
            await ws.recv()

    def entries() -> list[dict]:
        return [json.loads(line) for line in server.lines if line.startswith("{")]

    with anyio.fail_after(10):  # the server's lines reach us a little after its answers
        while not {"disconnect", "refused"} <= {e.get("event") for e in entries()}:
            await anyio.sleep(0.02)
    found = entries()
    events = {(e.get("event"), e.get("path")) for e in found}
    assert ("connect", "/ws") in events
    assert ("refused", "/guarded") in events
    refused = next(e for e in found if e.get("event") == "refused")
    assert (refused["code"], refused["reason"]) == (4401, "bad token")
    error = next(e for e in found if e.get("event") == "handler_error")
    assert (error["level"], error["frame_event"]) == ("error", "boom")
    assert "secret-internal-detail" in error["traceback"]  # the server keeps the detail
    disconnect = next(e for e in found if e.get("event") == "disconnect")
    assert (disconnect["client"], disconnect["code"]) == (client_id, 1000)
    assert any("Uvicorn running on" in e.get("message", "") for e in found)
    log = server.log()
    assert TOKEN not in log and PAYLOAD not in log
    for line in server.lines:
        assert line.startswith("{") or line.startswith("vws: "), line


async def test_text_is_the_default(start_server) -> None:
    server = start_server(DEMO_APP)
    async with await Peer.connect(f"{server.url}/ws?token={TOKEN}") as peer:
        await peer.call("echo", PAYLOAD)
    line = f" INFO vws.runtime.connection connect client={peer.id} path=/ws"
    with anyio.fail_after(10):  # the server's lines reach us a little after its answers
        while line not in server.log():
            await anyio.sleep(0.02)
    assert TOKEN not in server.log() and PAYLOAD not in server.log()
