"""Hostile input to the application layer, on a real ``vws run``: each is answered, nothing
is lost, and the server keeps serving (issue #15's findings, one test or more each)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import websockets
from conftest import APPS, RunningServer, ServerFactory
from wsclient import Peer, refused

pytestmark = pytest.mark.anyio

APP = """
[server]
max_message_bytes = 65536

[routes."/ws".events]
echo = "hardening:echo"
lone_surrogate = "hardening:lone_surrogate"
emit_lone_surrogate = "hardening:emit_lone_surrogate"
holds_itself = "hardening:holds_itself"
exits = "hardening:exits"
interrupts = "hardening:interrupts"
cancels = "hardening:cancels"
hang = "hardening:hang"
close_long = "hardening:close_long"
slow = { handler = "hardening:hang", timeout = 0.5 }

[routes."/refused"]
middleware = ["hardening:refuse_long"]

[routes."/exits"]
middleware = ["hardening:exits_at_connect"]
"""
DEEP = "[" * 1000 + "]" * 1000
DEEP_FRAME = '{"event": "echo", "id": 1, "payload": ' + DEEP + "}"
WAIT = 5.0


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory):
    config = tmp_path_factory.mktemp("hardening") / "routes.toml"
    config.write_text(APP)
    server = RunningServer(config)
    yield server
    server.stop()


async def eventually(check: Callable[[], bool], timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("the condition did not come true in time")
        await asyncio.sleep(0.05)


def status(server: RunningServer) -> dict:
    return httpx.get(server.http + "/_vws/status", timeout=WAIT).json()


def raw_request(port: int, request: bytes) -> bytes:
    """Send ``request`` on a fresh TCP socket; what the server answered until it closed or
    went quiet for a second."""
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as sock:
        sock.sendall(request)
        sock.settimeout(1.0)
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except TimeoutError:
            pass
    return answer


def handshake(path: str, host: str, *extra: str) -> bytes:
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: {host}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version: 13",
        *extra,
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


# --- frames that used to drop their sender ----------------------------------------------------


async def test_deep_nesting_is_bad_json_and_the_sender_stays(app: RunningServer):
    async with await Peer.connect(app.url + "/ws") as peer:
        for _ in range(3):
            await peer.send(DEEP_FRAME)
            error = await peer.recv()
            assert error["event"] == "error"
            assert error["payload"]["code"] == "bad_json"
        await peer.send(DEEP)  # not even an object: the id cannot be salvaged either
        assert (await peer.recv())["payload"]["code"] == "bad_frame"
        await peer.nothing_pending()
    assert "RecursionError" not in app.log()


@pytest.mark.parametrize(
    "event",
    ["lone_surrogate", "emit_lone_surrogate", "holds_itself", "exits", "interrupts", "cancels"],
)
async def test_a_failing_handler_is_answered_handler_error(app: RunningServer, event: str):
    async with await Peer.connect(app.url + "/ws") as peer:
        reply = await peer.request(event)
        assert reply["event"] == "error", reply
        assert reply["payload"]["code"] == "handler_error"
        await peer.nothing_pending()
    assert app.process.poll() is None


async def test_middleware_calling_sys_exit_refuses_with_1011(app: RunningServer):
    assert (await refused(app.url + "/exits")).code == 1011
    async with await Peer.connect(app.url + "/ws") as peer:
        await peer.nothing_pending()


def test_a_module_calling_sys_exit_at_import_is_a_located_error(tmp_path: Path):
    (tmp_path / "routes.toml").write_text(
        '[routes."/ws".events]\necho = "hardening_exits_at_import:handler"\n'
    )
    result = subprocess.run(
        [sys.executable, "-m", "vws.cli", "check"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(APPS)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.startswith('routes.toml:2: routes."/ws".events.echo: ')
    assert "SystemExit: missing env var" in result.stderr


# --- handlers that never return ---------------------------------------------------------------


async def test_a_handler_past_its_timeout_is_answered_handler_timeout(app: RunningServer):
    async with await Peer.connect(app.url + "/ws") as peer:
        started = time.monotonic()
        reply = await peer.request("slow")
        took = time.monotonic() - started
        assert reply["payload"]["code"] == "handler_timeout"
        assert "0.5 s" in reply["payload"]["message"]
        assert 0.4 < took < 3.0
        await peer.nothing_pending()
    await eventually(lambda: "handler_timeout" in app.log() and "hang cancelled" in app.log())


async def test_a_client_that_leaves_during_a_handler_is_gone_at_once(app: RunningServer):
    await eventually(lambda: status(app)["connections"] == 0)
    peer = await Peer.connect(app.url + "/ws")
    await peer.send({"event": "hang", "id": 1})  # 30 s timeout: the default
    await eventually(lambda: status(app)["rooms"]["count"] == 1)  # it joined, then hung
    await peer.ws.close()
    started = time.monotonic()
    await eventually(lambda: status(app)["connections"] == 0, timeout=3.0)
    assert status(app)["rooms"]["count"] == 0
    assert time.monotonic() - started < 3.0
    await eventually(lambda: f"hang cancelled for {peer.id}" in app.log())


async def test_frames_sent_during_a_slow_handler_are_answered_in_order(app: RunningServer):
    async with await Peer.connect(app.url + "/ws") as peer:
        await peer.send({"event": "slow", "id": "s"})
        for n in range(5):
            await peer.send({"event": "echo", "payload": n, "id": n})
        replies = [await peer.recv() for _ in range(6)]
        assert replies[0]["payload"]["code"] == "handler_timeout"
        assert [r["payload"] for r in replies[1:]] == [0, 1, 2, 3, 4]


# --- close reasons ----------------------------------------------------------------------------


async def test_a_long_close_reason_still_closes_with_its_code(app: RunningServer):
    async with await Peer.connect(app.url + "/ws") as peer:
        await peer.send({"event": "close_long", "payload": "é" * 100})
        with pytest.raises(websockets.ConnectionClosed) as closed:
            while True:
                await peer.recv()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4000
    reason = closed.value.rcvd.reason
    assert len(reason.encode()) <= 123 and reason == "é" * len(reason)


async def test_a_long_refusal_reason_still_closes_with_its_code(app: RunningServer):
    close = await refused(app.url + "/refused")
    assert close.code == 4403
    reason = close.reason
    assert 100 < len(reason.encode()) <= 123 and reason == "é" * len(reason)


# --- DNS rebinding and the admin endpoints -----------------------------------------------------


@pytest.mark.parametrize("path", ["/_vws", "/_vws/status", "/metrics", "/_vws/health", "/"])
def test_a_foreign_host_name_gets_400_even_from_loopback(app: RunningServer, path: str):
    answer = httpx.get(app.http + path, headers={"Host": f"evil.example:{app.port}"})
    assert answer.status_code == 400
    assert "allowed_hosts" in answer.text
    assert "node" not in answer.text


def test_a_handshake_naming_a_foreign_host_is_refused(app: RunningServer):
    answer = raw_request(
        app.port,
        handshake("/ws", f"evil.example:{app.port}", f"Origin: http://evil.example:{app.port}"),
    )
    assert answer.startswith(b"HTTP/1.1 403"), answer[:200]
    assert "allowed_hosts" in app.log()


def test_loopback_names_are_served(app: RunningServer):
    for host in (f"localhost:{app.port}", f"127.0.0.1:{app.port}", "LOCALHOST"):
        assert httpx.get(app.http + "/_vws/status", headers={"Host": host}).status_code == 200
    answer = raw_request(app.port, handshake("/ws", f"localhost:{app.port}"))
    assert answer.startswith(b"HTTP/1.1 101"), answer[:200]


@pytest.mark.parametrize("header", ["True-Client-IP", "CF-Connecting-IP", "X-Real-IP"])
def test_a_local_proxy_header_makes_the_status_private(app: RunningServer, header: str):
    answer = httpx.get(app.http + "/_vws/status", headers={header: "203.0.113.9"})
    assert answer.status_code == 403


def test_the_origin_is_checked_against_the_allowed_hosts(start_server: ServerFactory):
    server = start_server(
        APP.replace("[server]", '[server]\nallowed_hosts = ["chat.example", "localhost"]')
    )
    port = server.port
    same = f"Origin: http://chat.example:{port}"
    assert raw_request(port, handshake("/ws", f"chat.example:{port}", same)).startswith(
        b"HTTP/1.1 101"
    )
    # A page of another name, even one whose Host and Origin agree, is refused.
    forged = f"Origin: http://evil.example:{port}"
    assert raw_request(port, handshake("/ws", f"evil.example:{port}", forged)).startswith(
        b"HTTP/1.1 403"
    )
    # The Host is allowed, but the page is not of it.
    assert raw_request(port, handshake("/ws", f"chat.example:{port}", forged)).startswith(
        b"HTTP/1.1 403"
    )
    # Allowed hosts admit the name, not the status page: that stays loopback-named only.
    status_answer = httpx.get(server.http + "/_vws/status", headers={"Host": "chat.example"})
    assert status_answer.status_code == 403


@pytest.mark.parametrize("path", ["/schema", "/schema/openapi.json", "/schema/swagger"])
def test_there_is_no_public_openapi(app: RunningServer, path: str):
    answer = httpx.get(app.http + path)
    assert answer.status_code == 404
    assert "swagger" not in answer.text.lower()


def test_the_status_page_says_its_charset_once(app: RunningServer):
    answer = httpx.get(app.http + "/_vws")
    assert answer.headers["content-type"] == "text/html; charset=utf-8"


def test_health_tells_strangers_only_the_state(start_server: ServerFactory):
    server = start_server(APP.replace("[server]", '[admin]\nkey = "k3y"\n\n[server]'))
    public = httpx.get(server.http + "/_vws/health").json()
    assert public == {"status": "ok", "backplane": {"state": "ok"}}
    full = httpx.get(server.http + "/_vws/health", headers={"Authorization": "Bearer k3y"})
    assert {"node", "clients"} <= full.json().keys()


# --- logs -------------------------------------------------------------------------------------


async def test_a_path_cannot_forge_a_log_line(app: RunningServer):
    nbsp = "%C2%A0"
    forged = nbsp.join(["2001-01-01T00:00:00.000Z", "INFO", "vws.runtime.connection", "connect"])
    try:
        async with websockets.connect(app.url + "/ws%0A" + forged) as ws:
            await ws.recv()
    except websockets.ConnectionClosed:
        pass
    await eventually(lambda: "\\n2001-01-01" in app.log())
    assert not any(line.startswith("2001-01-01") for line in app.log().splitlines())


# --- static files -----------------------------------------------------------------------------


def test_static_names_the_os_cannot_open_are_404(start_server: ServerFactory, tmp_path: Path):
    web = tmp_path / "web"
    web.mkdir()
    (web / "index.html").write_text("<p>hi</p>")
    os.symlink(web / "loop", web / "loop")
    server = start_server(APP + '\n[static]\ndirectory = "web"\n')
    for path in ("/" + "a" * 300, "/loop", "/loop/x", "/" + "b" * 300 + "/c"):
        assert httpx.get(server.http + path).status_code == 404, path
    assert httpx.get(server.http + "/").status_code == 200
    assert "Traceback" not in server.log()


# --- the publish API --------------------------------------------------------------------------

PUBLISH_APP = APP.replace(
    "[server]", '[admin]\nkey = "k3y"\nmax_publish_bytes = 12000000\n\n[server]'
)
AUTH = {"Authorization": "Bearer k3y", "Content-Type": "application/json"}


def test_publish_deep_nesting_is_400(start_server: ServerFactory):
    server = start_server(PUBLISH_APP)
    body = '{"path": "/ws", "broadcast": true, "event": "e", "payload": ' + DEEP + "}"
    answer = httpx.post(server.http + "/_vws/api/publish", content=body, headers=AUTH)
    assert answer.status_code == 400
    assert answer.json()["error"] == "bad_json"


def test_publish_takes_bodies_up_to_its_own_limit(start_server: ServerFactory):
    server = start_server(PUBLISH_APP)
    message = {"path": "/ws", "broadcast": True, "event": "big", "payload": "x" * 11_000_000}
    answer = httpx.post(
        server.http + "/_vws/api/publish", content=json.dumps(message), headers=AUTH, timeout=30
    )
    assert answer.status_code == 200, answer.text[:200]
    too_big = {**message, "payload": "x" * 12_000_000}
    answer = httpx.post(
        server.http + "/_vws/api/publish", content=json.dumps(too_big), headers=AUTH, timeout=30
    )
    assert answer.status_code == 413
    assert answer.json()["error"] == "too_large"
