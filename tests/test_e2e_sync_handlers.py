"""Plain ``def`` handlers on a real ``vws run``: one that holds the event loop is named in one
warning; ``thread = true`` runs one in a worker thread, other clients served meanwhile and the
client's own frames still in order."""

from __future__ import annotations

import time

import pytest
from conftest import APPS, ServerFactory
from wsclient import Peer

from vws.config import parse_config
from vws.errors import ConfigError
from vws.routing import compile_table

pytestmark = pytest.mark.anyio

APP = """
[routes."/ws".events]
echo = "sync_app:echo"
blocking = "sync_app:blocking"
threaded = { handler = "sync_app:blocking", thread = true }
"""


async def test_a_def_handler_that_holds_the_loop_is_named_once(start_server: ServerFactory):
    server = start_server(APP)
    async with await Peer.connect(server.url + "/ws") as peer:
        assert await peer.call("blocking", 0.3) == "done"
        assert await peer.call("blocking", 0.3) == "done"
    lines = [line for line in server.log().splitlines() if "held the event loop" in line]
    assert len(lines) == 1, lines
    assert "sync_app:blocking" in lines[0] and "'blocking'" in lines[0] and "/ws" in lines[0]
    assert "thread = true" in lines[0]
    held_ms = int(lines[0].split("event loop for ")[1].split(" ms")[0])
    assert 250 <= held_ms < 2000


async def test_a_threaded_handler_leaves_the_loop_to_others(start_server: ServerFactory):
    server = start_server(APP)
    async with (
        await Peer.connect(server.url + "/ws") as slow,
        await Peer.connect(server.url + "/ws") as other,
    ):
        await slow.send({"event": "threaded", "payload": 1.0, "id": "t"})
        await slow.send({"event": "echo", "payload": "after", "id": "e"})
        started = await slow.recv()
        assert started["event"] == "started" and started["payload"] != "MainThread"
        sent = time.monotonic()
        assert await other.call("echo", "hi") == "hi"
        assert time.monotonic() - sent < 0.5  # not held up by the 1 s handler
        replies = [await slow.recv(), await slow.recv()]
        assert [(r["event"], r["id"]) for r in replies] == [("ack", "t"), ("ack", "e")]
    assert "held the event loop" not in server.log()


def test_thread_true_on_an_async_handler_is_a_located_error(monkeypatch):
    monkeypatch.syspath_prepend(str(APPS))
    text = '[routes."/ws".events]\nx = { handler = "sync_app:not_sync", thread = true }\n'
    with pytest.raises(ConfigError) as error:
        compile_table(parse_config(text, "routes.toml", environ={}))
    issue = error.value.issues[0]
    assert (issue.line, issue.key) == (2, 'routes."/ws".events.x.thread')
    assert "def handler" in issue.message
