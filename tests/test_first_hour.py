"""Issue #13 item 6, "the first hour, smoothed": what a new user meets first, on a real
``vws run`` where it is about the server."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import APPS, REPO, RunningServer, ServerFactory
from wsclient import Peer

from vws import logs
from vws.protocol import encode_frame
from vws.runtime.client import Client
from vws.runtime.messages import Outgoing
from vws.runtime.outbox import Outbox

pytestmark = pytest.mark.anyio

ROUTES = """
[static]
directory = "web"

[routes."/ws".events]
echo = "e2e_handlers:echo"
whoami = "e2e_handlers:whoami"

[routes."/other".events]
echo = "e2e_handlers:echo"
"""


def vws(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(APPS), str(REPO)])}
    return subprocess.run(
        [sys.executable, "-m", "vws.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=30,
    )


async def test_the_banner_comes_once_the_port_listens_and_lists_what_to_open(tmp_path: Path):
    (tmp_path / "web").mkdir()
    (tmp_path / "web" / "index.html").write_text("<p>hi</p>")
    config = tmp_path / "routes.toml"
    config.write_text(ROUTES)
    server = RunningServer(config, ready="vws: status:")
    try:
        async with await Peer.connect(f"{server.url}/ws") as peer:  # at once: it listens
            assert await peer.call("echo", 1) == 1
        log = server.log()
        assert log.index("Uvicorn running on") < log.index("vws: serving 2 route(s)")
        assert f"ws://127.0.0.1:{server.port}/ws (2 event(s))" in log
        assert f"ws://127.0.0.1:{server.port}/other (1 event(s))" in log
        assert f"page: http://127.0.0.1:{server.port}/\n" in log
        assert f"status: http://127.0.0.1:{server.port}/_vws\n" in log
    finally:
        server.stop()


def test_a_taken_port_is_one_line_and_status_1(tmp_path: Path):
    (tmp_path / "routes.toml").write_text('[routes."/ws".events]\necho = "e2e_handlers:echo"\n')
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        run = vws(tmp_path, "run", "--port", str(port))
    assert run.returncode == 1, run.stderr
    assert run.stderr.strip().splitlines() == [
        f"vws: cannot listen on 127.0.0.1:{port}: Address already in use"
    ]


@pytest.mark.parametrize("port", ["99999", "-1"])
def test_a_port_out_of_range_is_one_line_and_status_2(tmp_path: Path, port: str):
    (tmp_path / "routes.toml").write_text('[routes."/ws".events]\necho = "e2e_handlers:echo"\n')
    run = vws(tmp_path, "run", "--port", port)
    assert run.returncode == 2, run.stderr
    assert run.stderr.strip().splitlines() == ["vws: --port must be 0 to 65535"]


class RecordingHost:
    """The node side of a :class:`Client`, keeping what it was asked to send."""

    def __init__(self) -> None:
        self.sent: list[Outgoing] = []

    def send(self, message: Outgoing) -> None:
        self.sent.append(message)

    def has_client(self, client_id: str) -> bool:
        return True

    async def join(self, client: Client, room: str) -> bool:
        raise NotImplementedError

    async def leave(self, client: Client, room: str) -> bool:
        raise NotImplementedError

    async def close_client(self, client: Client, code: int, reason: str) -> None:
        raise NotImplementedError


async def _discard(text: str) -> None:
    return None


def registered(host: RecordingHost) -> Client:
    """A client as the node holds it once accepted: with a send queue (before, it may not send)."""
    client = Client(host, "/ws", {})
    client.outbox = Outbox(_discard, limit=1, drop_oldest=False, on_slow=lambda: None)
    return client


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda c: c.emit({"text": "hi"}, "evt"),
            "emit(): event must be a str, got dict — the order is emit(event, payload)",
        ),
        (
            lambda c: c.to_room("evt", 7),
            "to_room(): room must be a str, got int — the order is to_room(event, room, payload)",
        ),
        (
            lambda c: c.to_room(None, "lobby"),
            "to_room(): event must be a str, got NoneType — the order is to_room(event, room, "
            "payload)",
        ),
        (
            lambda c: c.to({"id": 1}, "evt"),
            "to(): client_id must be a str, got dict — the order is to(client_id, event, payload)",
        ),
        (
            lambda c: c.broadcast(["evt"]),
            "broadcast(): event must be a str, got list — the order is broadcast(event, payload)",
        ),
    ],
)
def test_a_send_with_the_wrong_types_raises_at_the_call(call: Any, message: str):
    host = RecordingHost()
    with pytest.raises(TypeError) as raised:
        call(registered(host))
    assert str(raised.value) == message
    assert host.sent == []


@pytest.mark.parametrize("method", ["emit", "to_room", "broadcast"])
async def test_awaiting_a_send_says_it_is_not_a_coroutine(method: str):
    host = RecordingHost()
    client = registered(host)
    args = ("evt", "lobby") if method == "to_room" else ("evt",)
    with pytest.raises(
        TypeError, match=rf"^{method}\(\) is not a coroutine: call it without await$"
    ):
        await getattr(client, method)(*args)
    assert len(host.sent) == 1  # it was sent all the same: only the await is wrong


def test_what_a_send_returns_encodes_as_null():
    """A handler that returns ``client.emit(...)`` still acks with null, as before."""
    client = registered(RecordingHost())
    assert encode_frame("ack", client.emit("evt"), 1) == '{"event":"ack","payload":null,"id":1}'
    with pytest.raises(TypeError, match="Encoding objects of type object is unsupported"):
        encode_frame("ack", object())


@pytest.mark.parametrize("event", ["joinRoom", "leftRoom"])
async def test_a_room_inside_the_payload_is_shown_the_frame_to_send(
    demo_server: RunningServer, event: str
):
    async with await Peer.connect(f"{demo_server.url}/ws") as peer:
        reply = await peer.request(event, {"room": "lobby"})
        assert reply["event"] == "error", reply
        assert reply["payload"] == {
            "code": "bad_room",
            "message": f'this event needs a room: send {{"event": "{event}", "room": "lobby"}}',
        }
        assert (await peer.request(event))["payload"]["message"] == "this event needs a room"


def test_check_warns_of_a_class_annotated_payload_without_a_schema(tmp_path: Path):
    (tmp_path / "routes.toml").write_text(
        '[routes."/ws".events]\n'
        'chat = "first_hour:on_chat"\n'
        'point = "first_hour:on_point"\n'
        'raw = "first_hour:on_raw"\n'
        'loose = "first_hour:on_loose"\n'
        '[routes."/ws".events.typed]\n'
        'handler = "first_hour:on_chat"\n'
        'schema = "first_hour:ChatMessage"\n'
    )
    run = vws(tmp_path, "check")
    assert run.returncode == 0, run.stderr
    warnings = [line for line in run.stdout.splitlines() if "warning" in line]
    assert warnings == [
        'routes.toml:2: routes."/ws".events.chat: warning: the handler\'s payload is annotated '
        "ChatMessage but the event has no schema, so it gets the raw JSON; add schema = "
        '"first_hour:ChatMessage"',
        'routes.toml:3: routes."/ws".events.point: warning: the handler\'s payload is annotated '
        "Point but the event has no schema, so it gets the raw JSON; add schema = "
        '"first_hour:Point"',
    ]


SECRETS = ("s3cret-token", "s3cret-query", "s3cret-payload")


async def test_debug_logs_carry_no_header_token_or_payload(tmp_path: Path):
    config = tmp_path / "routes.toml"
    config.write_text('[routes."/ws".events]\necho = "e2e_handlers:echo"\n')
    server = RunningServer(config, args=("--log-level", "debug"))
    try:
        url = f"{server.url}/ws?token=s3cret-query"
        headers = {"Authorization": "Bearer s3cret-token"}
        async with await Peer.connect(url, additional_headers=headers) as peer:
            assert await peer.call("echo", "s3cret-payload") == "s3cret-payload"
            await peer.send({"event": "nope", "payload": "s3cret-payload"})
            assert (await peer.recv())["payload"]["code"] == "unknown_event"
    finally:
        server.stop()
    log = server.log()
    assert "vws: status:" in log
    assert "disconnect" in log  # and the connection's end was logged too
    assert [secret for secret in SECRETS if secret in log] == [], log


@pytest.fixture
def restored_logging() -> Iterator[None]:
    """Put back the logging setup :func:`vws.logs.configure` changes in this process."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    quiet = logging.getLogger("websockets").level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("websockets").setLevel(quiet)


def test_debug_drops_what_websockets_logs_of_the_wire(
    restored_logging: None, capsys: pytest.CaptureFixture[str]
):
    """Under uvicorn's own WebSocket protocols websockets logs through ``uvicorn.error``."""
    logs.configure("text", "debug")
    wire = logging.getLogger("uvicorn.error")
    wire.debug("< GET %s HTTP/1.1", "/ws?token=s3cret-query")
    wire.debug("< %s: %s", "Authorization", "Bearer s3cret-token")
    wire.debug("< %s", 'TEXT \'{"payload": "s3cret-payload"}\' [30 bytes]')
    logging.getLogger("websockets.server").debug("> %s", "TEXT 's3cret-payload'")
    wire.debug("debug lines of uvicorn's own still come")
    err = capsys.readouterr().err
    assert [secret for secret in SECRETS if secret in err] == [], err
    assert "debug lines of uvicorn's own still come" in err


def test_the_access_log_shows_paths_as_requested(start_server: ServerFactory):
    server = start_server('[routes."/ws".events]\necho = "e2e_handlers:echo"\n')
    for path in ("/ws", "/nothing/here?x=1", "/_vws"):
        with contextlib.suppress(urllib.error.HTTPError):
            urllib.request.urlopen(server.http + path, timeout=10).close()
    for line in ('"GET /ws HTTP/1.1" 426', '"GET /nothing/here?x=… HTTP/1.1" 404'):
        assert wait_for_log(server, line), server.log()
    assert wait_for_log(server, '"GET /_vws HTTP/1.1" 200'), server.log()


def wait_for_log(server: RunningServer, text: str, timeout: float = 10.0) -> bool:
    """Whether ``text`` appears in the server's log within ``timeout`` seconds (a line is
    written as its response starts, and read from the pipe by another thread)."""
    deadline = time.monotonic() + timeout
    while text not in server.log():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)  # polling the pipe's reader: the line's arrival is the event
    return True


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000/ws", "127.0.0.1:8000/ws"])
def test_connect_says_it_wants_a_ws_url(tmp_path: Path, url: str):
    done = vws(tmp_path, "connect", url)
    assert done.returncode == 2
    assert done.stderr == f"vws connect: expected a ws:// or wss:// URL, got {url}\n"


def test_connect_reports_a_1011_close_at_once(start_server: ServerFactory, tmp_path: Path):
    """The frame's answer never comes; the close must end the wait, not --timeout."""
    server = start_server('[routes."/ws".events]\nclose = "e2e_handlers:close"\n')
    frame = {"event": "close", "payload": {"code": 1011, "reason": "oops"}, "id": 1}
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-m", "vws.cli", "connect", "--timeout", "120", server.url + "/ws"],
        input=json.dumps(frame) + "\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=60,  # far under --timeout: only the close can have ended it
    )
    assert done.returncode == 1
    assert done.stderr == "vws connect: the server closed the connection with 1011: oops\n"


@pytest.mark.parametrize("where", [".", "tests"])
def test_pytest_runs_a_new_project_from_its_folders(tmp_path: Path, where: str):
    project = tmp_path / "newapp"
    assert vws(tmp_path, "init", str(project)).returncode == 0
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider"],
        cwd=project / where,
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
    assert f"rootdir: {project}\n" in result.stdout  # the project's, from a folder below too


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        (
            "[server]\nmax_mesage_bytes = 10\n",
            "routes.toml:2: server.max_mesage_bytes: unknown key; did you mean max_message_bytes?",
        ),
        (
            '[routes."/ws"]\nbroadcst = "route"\n'
            '[routes."/ws".events]\necho = "e2e_handlers:echo"\n',
            'routes.toml:2: routes."/ws".broadcst: unknown key; did you mean broadcast?',
        ),
        (
            '[routes."/ws".events.chat]\nhandler = "first_hour:on_chat"\n'
            'schema = "first_hour:ChatMessage"\ntimout = 3\n',
            'routes.toml:4: routes."/ws".events.chat.timout: unknown key; did you mean timeout?',
        ),
        (
            '[routes."/ws".events]\nchat = "first_hour:on_chatt"\n',
            "module 'first_hour' has no attribute 'on_chatt'; did you mean on_chat?",
        ),
    ],
)
def test_a_misspelt_key_or_handler_gets_a_did_you_mean(tmp_path: Path, toml: str, expected: str):
    (tmp_path / "routes.toml").write_text(toml)
    run = vws(tmp_path, "check")
    assert run.returncode != 0
    assert expected in run.stderr + run.stdout, run.stderr + run.stdout
