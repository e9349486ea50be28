"""Hostile clients against a real ``vws run``: floods, slow and silent sockets, oversized
heads and messages, broken frames and too many connections (issue #14's edge contract).

Each attack is made over raw sockets (tests/rawws.py), targets 127.0.0.1 only and stops by
itself within seconds; each test asserts what the contract says the attacker gets, and that
everybody else is still served.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import select
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from conftest import STARTUP_TIMEOUT, RunningServer, ServerFactory
from rawws import (
    RawWebSocket,
    connect_tcp,
    frame,
    handshake,
    http_exchange,
    read_http_answer,
    status_of,
)
from websockets.frames import Opcode
from wsclient import Peer

pytestmark = pytest.mark.anyio

EVENTS = """
[routes."/ws".events]
echo = "e2e_handlers:echo"
blob = "e2e_handlers:blob"
"""
WAIT = 5.0
#: How long each flood runs.
FLOOD = 3.0
MB = 1024 * 1024


def routes(**settings: Any) -> str:
    """A routes.toml with these ``[server]`` settings and the echo and blob events."""
    lines = [f"{key} = {json.dumps(value)}" for key, value in settings.items()]
    return "[server]\n" + "\n".join(lines) + "\n" + EVENTS


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """One server on the default settings, for the tests that need nothing else."""
    config = tmp_path_factory.mktemp("hostile") / "routes.toml"
    config.write_text(routes())
    server = RunningServer(config)
    yield server
    server.stop()


def log_since(server: RunningServer, mark: int) -> str:
    return "".join(server.lines[mark:])


def eventually(check: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.05)


def rss(pid: int) -> int:
    """The resident set of process ``pid`` in bytes, from /proc/PID/status."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS in /proc/{pid}/status")


def no_traceback(log: str) -> None:
    at = log.find("Traceback")
    assert at < 0, "a traceback in the log:\n" + log[max(0, at - 400) : at + 1200]


def settle(server: RunningServer) -> None:
    """Wait until the server's log holds everything it did before now: a fresh connection's
    connect line comes after it."""
    with RawWebSocket.connect(server.port) as ws:
        eventually(lambda: any(ws.client_id in line for line in server.lines), "a connect line")


async def still_served(server: RunningServer) -> None:
    async with await Peer.connect(server.url + "/ws") as peer:
        await peer.nothing_pending()
    assert server.process.poll() is None, "the server died"


# --- 1. a continuation flood ------------------------------------------------------------------


def continuation_flood(port: int, seconds: float) -> list[tuple[int | None, float, str]]:
    """Open a text message (FIN=0), then send empty continuation frames as fast as the socket
    takes them until the server closes (for at most :data:`FLOOD` seconds); connect and do it
    again for ``seconds``. Each connection's close code, how long after its first frame the
    close frame arrived (inf: none did), and what it read.

    Run in a process of its own, so that the control client's latencies are the server's, not
    those of a test process busy attacking."""
    burst = memoryview(b"".join(frame(Opcode.CONT, b"", fin=False) for _ in range(2000)))
    endings: list[tuple[int | None, float, str]] = []
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        with RawWebSocket.connect(port) as ws:
            ws.send_frame(Opcode.TEXT, b'{"event": "echo", "payload": "', fin=False)
            started = time.monotonic()
            ws.sock.setblocking(False)
            pending = burst
            while ws.ending.close is None and ws.ending.how == "timeout":
                if time.monotonic() > started + FLOOD:
                    break
                readable, writable, _ = select.select([ws.sock], [ws.sock], [], 0.05)
                if readable:
                    ws.read_some(0)
                elif writable:
                    try:
                        pending = pending[ws.sock.send(pending) :] or burst
                    except BlockingIOError:
                        pass
                    except (BrokenPipeError, ConnectionResetError):
                        break
            closed_at = time.monotonic() - started if ws.ending.close else None
            ws.sock.settimeout(WAIT)
            ending = ws.read_to_end(WAIT)  # the close frame may still be on its way
            if closed_at is None:
                closed_at = time.monotonic() - started if ending.close else float("inf")
            endings.append((ending.code, closed_at, ending.describe()))
    return endings


async def test_a_continuation_flood_is_closed_1008_and_others_are_served(
    start_server: ServerFactory,
):
    server = start_server(routes())
    with ProcessPoolExecutor(1, get_context("spawn")) as attacker:
        # the process is up before the clock runs
        await asyncio.wait_for(asyncio.wrap_future(attacker.submit(int)), STARTUP_TIMEOUT)
        async with await Peer.connect(server.url + "/ws") as control:
            attack = asyncio.wrap_future(attacker.submit(continuation_flood, server.port, FLOOD))
            latencies = []
            while not attack.done():
                sent = time.perf_counter()
                assert await control.call("echo", len(latencies)) == len(latencies)
                latencies.append(time.perf_counter() - sent)
                # 50 echoes a second: well inside the default rate and max_frame_rate
                await asyncio.sleep(0.02)
            endings = await attack
    assert endings, "the attacker never got connected"
    codes = Counter(code for code, _, _ in endings)
    assert codes.keys() == {1008}, f"the attacker's connections ended: {codes}; e.g. " + next(
        (seen for code, _, seen in endings if code != 1008), ""
    )
    slowest_close = max(closed_at for _, closed_at, _ in endings)
    assert slowest_close < FLOOD, f"a close frame took {slowest_close:.2f} s to come"
    worst = max(latencies)
    assert worst < 0.2, (
        f"an echo took {worst * 1000:.0f} ms during the flood ({len(latencies)} echoes, "
        f"median {sorted(latencies)[len(latencies) // 2] * 1000:.1f} ms, "
        f"{len(endings)} attacking connections)"
    )
    await still_served(server)


# --- 2. pings from a client that never reads ----------------------------------------------------

KEEPALIVE = {"ping_interval": 0.5, "ping_timeout": 0.5, "close_timeout": 1.0}
#: Past the keepalive's own timeouts: its ping, the pong's wait, the close frame's wait and the
#: linger after it, plus a second of slack.
CLOSED_WITHIN = 0.5 + 0.5 + 1.0 + 1.0 + 1.0


@pytest.mark.parametrize(
    "settings",
    [
        pytest.param({**KEEPALIVE, "max_frame_rate": 1_000_000}, id="frame-rate-unlimited"),
        pytest.param(KEEPALIVE, id="frame-rate-default"),
    ],
)
def test_pings_from_a_client_that_never_reads_do_not_grow_the_server(
    start_server: ServerFactory, settings: dict[str, Any]
):
    server = start_server(routes(**settings))
    pid = server.process.pid
    ws = RawWebSocket.connect(server.port, rcvbuf=2048)
    pings = memoryview(b"".join(frame(Opcode.PING, os.urandom(125)) for _ in range(500)))
    before = peak = rss(pid)
    started = time.monotonic()
    closed_at = None
    sampled = started
    ws.sock.setblocking(False)
    watch = select.poll()  # not POLLIN: the pongs pile up unread, as the attacker wants
    watch.register(ws.sock, select.POLLRDHUP | select.POLLERR | select.POLLHUP)
    pending = pings
    try:
        while closed_at is None and time.monotonic() < started + FLOOD:
            if watch.poll(0):
                closed_at = time.monotonic()
                break
            try:
                pending = pending[ws.sock.send(pending) :] or pings
            except BlockingIOError:
                select.select([], [ws.sock], [], 0.05)
            except (BrokenPipeError, ConnectionResetError):
                closed_at = time.monotonic()
            if time.monotonic() - sampled > 0.1:
                sampled, peak = time.monotonic(), max(peak, rss(pid))
        while closed_at is None and time.monotonic() < started + CLOSED_WITHIN:
            if watch.poll(100):
                closed_at = time.monotonic()
            peak = max(peak, rss(pid))
    finally:
        ws.close()
    growth = peak - before
    assert growth < 10 * MB, f"the server grew {growth / MB:.1f} MB under the ping flood"
    assert closed_at is not None, (
        f"the server had not closed the never-reading socket {CLOSED_WITHIN} s after the "
        "flood began"
    )
    assert server.process.poll() is None


# --- 3. slow and silent connections, and running out of file descriptors -----------------------


@pytest.fixture
def slow_server(start_server: ServerFactory) -> RunningServer:
    return start_server(routes(handshake_timeout=2.0))


def wait_closed(sock: socket.socket, timeout: float, drip: bytes = b"") -> tuple[bytes, float]:
    """Wait for the server to end ``sock``, sending one byte of ``drip`` each second meanwhile;
    what it answered and how long after the call it closed (inf: it did not)."""
    started = time.monotonic()
    answer = b""
    while time.monotonic() - started < timeout:
        if drip:
            try:
                sock.send(drip[:1])
            except (BrokenPipeError, ConnectionResetError):
                return answer, time.monotonic() - started
            drip = drip[1:]
        readable, _, _ = select.select([sock], [], [], 1.0)
        if readable:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                return answer, time.monotonic() - started
            if not chunk:
                return answer, time.monotonic() - started
            answer += chunk
    return answer, float("inf")


def test_slowloris_is_closed_at_the_handshake_timeout(slow_server: RunningServer):
    with connect_tcp(slow_server.port) as sock:
        request = handshake("/ws", f"127.0.0.1:{slow_server.port}")
        answer, took = wait_closed(sock, 2.0 + 2.0, drip=request)
    assert 1.9 <= took <= 3.0, f"closed after {took:.2f} s (handshake_timeout = 2.0)"
    assert status_of(answer) == 408, f"a part-sent request was answered {answer[:100]!r}"


def test_a_silent_connection_is_closed_at_the_handshake_timeout(slow_server: RunningServer):
    with connect_tcp(slow_server.port) as sock:
        answer, took = wait_closed(sock, 2.0 + 2.0)
    assert 1.9 <= took <= 3.0, f"closed after {took:.2f} s (handshake_timeout = 2.0)"
    assert answer == b"" or status_of(answer) == 408, f"answered {answer[:100]!r}"


@pytest.fixture
def limited_server(tmp_path: Path) -> Iterator[RunningServer]:
    config = tmp_path / "routes.toml"
    config.write_text(routes(handshake_timeout=2.0))
    server = RunningServer(config, nofile=256)
    yield server
    server.stop()


def test_idle_sockets_past_the_fd_limit_get_503_and_then_clients_connect(
    limited_server: RunningServer,
):
    server = limited_server
    limits = Path(f"/proc/{server.process.pid}/limits").read_text()
    assert re.search(r"Max open files\s+256\s+256", limits), limits
    admitted_at_most = 256 - 64  # max_connections = 0: the soft limit less 64
    sockets = [connect_tcp(server.port) for _ in range(300)]
    ended: set[socket.socket] = set()
    answers: dict[socket.socket, bytes] = {sock: b"" for sock in sockets}
    deadline = time.monotonic() + 2.0 + 2.0
    try:
        while len(ended) < len(sockets) and time.monotonic() < deadline:
            waiting = [sock for sock in sockets if sock not in ended]
            readable, _, _ = select.select(waiting, [], [], 0.2)
            for sock in readable:
                try:
                    chunk = sock.recv(65536)
                except ConnectionResetError:
                    chunk = b""
                if chunk:
                    answers[sock] += chunk
                else:
                    ended.add(sock)
    finally:
        for sock in sockets:
            sock.close()
    outcomes = Counter(status_of(answer) for answer in answers.values())
    assert len(ended) == len(sockets), (
        f"{len(sockets) - len(ended)} idle sockets were still open 4 s after they connected "
        f"(handshake_timeout = 2.0); answers so far: {outcomes}"
    )
    assert outcomes[503] >= len(sockets) - admitted_at_most, (
        f"past the automatic max_connections ({admitted_at_most}) the answers were {outcomes}"
    )
    assert set(outcomes) <= {503, None, 408}, outcomes
    asyncio.run(still_served(server))
    assert "Too many open files" not in server.log()
    no_traceback(server.log())


# --- 4. oversized request heads ----------------------------------------------------------------


def test_a_64_mb_header_is_answered_431(plain: RunningServer):
    mark = len(plain.lines)
    head = f"GET /_vws/health HTTP/1.1\r\nHost: 127.0.0.1:{plain.port}\r\nX-Big: ".encode()
    chunk = b"a" * 65536
    total = 64 * MB
    sent = 0
    answer = b""
    how = "timeout"
    deadline = time.monotonic() + 15.0
    with connect_tcp(plain.port) as sock:
        sock.sendall(head)
        sock.setblocking(False)
        while time.monotonic() < deadline:
            readable, writable, _ = select.select([sock], [sock] if sent < total else [], [], 0.2)
            if readable:
                answer, how = read_http_answer(sock, deadline - time.monotonic())
                break
            if writable:
                try:
                    sent += sock.send(chunk)
                except BlockingIOError:
                    pass
                except (BrokenPipeError, ConnectionResetError) as exc:
                    how = type(exc).__name__
                    answer, _ = read_http_answer(sock, 1.0)
                    break
    assert status_of(answer) == 431, (
        f"after {sent / MB:.1f} MB of one header the server answered {answer[:120]!r} "
        f"(read ended by {how})"
    )
    assert sent < total, "the whole 64 MB went in before any answer"
    settle(plain)
    no_traceback(log_since(plain, mark))


def many_headers(port: int, count: int) -> bytes:
    extra = [f"X-Filler-{n}: {n}" for n in range(count - 5)]  # handshake() sends five
    return handshake("/ws", f"127.0.0.1:{port}", *extra)


def test_129_headers_on_a_handshake_are_answered_431(plain: RunningServer):
    mark = len(plain.lines)
    answer, how = http_exchange(plain.port, many_headers(plain.port, 129))
    assert status_of(answer) == 431, f"answered {answer[:120]!r}, read ended by {how}"
    settle(plain)
    no_traceback(log_since(plain, mark))


def test_129_headers_past_the_parser_not_the_cap_are_answered_431(start_server: ServerFactory):
    """With the caps raised, websockets' own parser (128 headers) is what refuses."""
    server = start_server(routes(max_headers=1000, max_header_bytes=1 * MB))
    answer, how = http_exchange(server.port, many_headers(server.port, 129))
    assert status_of(answer) == 431, f"answered {answer[:120]!r}, read ended by {how}"
    settle(server)
    no_traceback(server.log())


def test_an_8_kib_header_line_on_a_handshake_is_answered_431(plain: RunningServer):
    mark = len(plain.lines)
    request = handshake("/ws", f"127.0.0.1:{plain.port}", "X-Long: " + "a" * 8200)
    answer, how = http_exchange(plain.port, request)
    assert status_of(answer) == 431, f"answered {answer[:120]!r}, read ended by {how}"
    settle(plain)
    no_traceback(log_since(plain, mark))


# --- 5. a message over max_message_bytes -------------------------------------------------------


def test_an_oversized_message_is_closed_1009_every_time(start_server: ServerFactory):
    server = start_server(routes(max_message_bytes=1024))
    endings = []
    for _ in range(50):
        with RawWebSocket.connect(server.port) as ws:
            ws.send_frame(Opcode.TEXT, b"x" * 1025)
            endings.append(ws.read_to_end(WAIT))
    codes = Counter(ending.code for ending in endings)
    assert codes == {1009: 50}, f"close codes over 50 tries: {codes}; e.g. " + next(
        (e.describe() for e in endings if e.code != 1009), ""
    )


# --- 6. a room member that never reads ---------------------------------------------------------


async def test_a_member_that_never_reads_gets_1008_not_a_reset(start_server: ServerFactory):
    server = start_server(routes(send_queue=8, rate="0", close_timeout=2.0))
    slow = RawWebSocket.connect(server.port, rcvbuf=4096)
    try:
        slow.send_json({"event": "joinRoom", "room": "slow", "id": 1})
        while (answer := slow.recv_json()).get("id") != 1:
            pass
        assert answer["event"] == "ack", answer
        blob = {"event": "blob", "payload": {"room": "slow", "size": 16384}}
        sent = 0
        async with (
            await Peer.connect(server.url + "/ws") as publisher,
            httpx.AsyncClient(base_url=server.http) as http,
        ):
            deadline = time.monotonic() + 15.0
            while time.monotonic() < deadline:
                for _ in range(20):
                    await publisher.send(blob)
                sent += 20
                totals = (await http.get("/_vws/status")).json()["totals"]
                if totals["slow_consumers"]:
                    break
            else:
                raise AssertionError(f"{sent} blobs published, and no slow consumer was cut")
        ending = slow.read_to_end(10.0)
    finally:
        slow.close()
    assert ending.code == 1008, f"after {sent} blobs the slow member read: {ending.describe()}"
    assert ending.how == "eof", f"the connection ended by {ending.how}: {ending.describe()}"
    await still_served(server)


# --- 7. broken frames --------------------------------------------------------------------------

BROKEN = [
    pytest.param(frame(Opcode.TEXT, b'{"event": "echo", "payload": "\xff"}'), 1007, id="utf-8"),
    pytest.param(frame(Opcode.TEXT, b'{"event": "echo"}', mask=False), 1002, id="unmasked"),
    pytest.param(frame(Opcode.TEXT, b"{}", rsv=(False, True, False)), 1002, id="reserved-bit"),
    pytest.param(frame(0x3, b"{}"), 1002, id="bad-opcode"),
]


@pytest.mark.parametrize(("broken", "code"), BROKEN)
def test_a_protocol_error_closes_with_its_code_and_logs_one_info_line(
    plain: RunningServer, broken: bytes, code: int
):
    mark = len(plain.lines)
    with RawWebSocket.connect(plain.port) as ws:
        ws.send(broken + broken)  # a second offence on the same connection logs nothing more
        ending = ws.read_to_end(WAIT)
    assert ending.code == code, ending.describe()
    assert ending.how == "eof", ending.describe()
    client = ws.client_id

    def disconnected() -> bool:
        return any(client in line and " disconnect " in line for line in plain.lines[mark:])

    eventually(disconnected, f"a disconnect line for {client}")
    about = [
        line
        for line in log_since(plain, mark).splitlines()
        if client in line and not re.search(r" (connect|disconnect) ", line)
    ]
    assert len(about) == 1, f"lines about {client}'s error: {about}"
    assert " INFO " in about[0], about[0]
    no_traceback(log_since(plain, mark))


# --- 8. connection caps ------------------------------------------------------------------------


@pytest.mark.parametrize("setting", ["max_connections_per_ip", "max_connections"])
async def test_the_connection_past_a_cap_gets_503(start_server: ServerFactory, setting: str):
    server = start_server(routes(**{setting: 3}))
    peers = [await Peer.connect(server.url + "/ws") for _ in range(3)]
    try:
        answer, how = http_exchange(server.port, handshake("/ws", f"127.0.0.1:{server.port}"))
        assert status_of(answer) == 503, f"the 4th connection got {answer[:120]!r} ({how})"
        await peers.pop().ws.close()

        def admitted() -> bool:
            got, _ = http_exchange(server.port, handshake("/ws", f"127.0.0.1:{server.port}"))
            return status_of(got) == 101

        await asyncio.to_thread(eventually, admitted, "a place came free")
    finally:
        for peer in peers:
            await peer.ws.close()
    logged = re.search(rf"refused .*reason={setting}(?!_)", server.log())
    assert logged, f"no refusal naming {setting} in the log:\n{server.log()[-2000:]}"


# --- 9. the message rate limit -----------------------------------------------------------------


async def answers_to(
    peer: Peer, count: int, *, until_closed: bool = False, timeout: float = 10.0
) -> tuple[list[dict], int | None]:
    """Send ``count`` echo frames at once (ids 1..count); the answers to them in order, and the
    close code if the server closed (None: still open when every frame was answered, or, with
    ``until_closed``, when ``timeout`` ran out)."""
    for n in range(1, count + 1):
        await peer.send({"event": "echo", "payload": n, "id": n})
    answers: list[dict] = []
    deadline = time.monotonic() + timeout
    try:
        while until_closed or len(answers) < count:
            got = await peer.recv(deadline - time.monotonic())
            if "id" in got:
                answers.append(got)
    except TimeoutError:
        pass
    except websockets.ConnectionClosed as closed:
        return answers, closed.rcvd.code if closed.rcvd else None
    return answers, None


def kinds(answers: list[dict]) -> list[str]:
    return [a["event"] if a["event"] == "ack" else a["payload"]["code"] for a in answers]


async def test_a_burst_past_the_bucket_is_refused_then_closed(start_server: ServerFactory):
    server = start_server(routes(rate="10/s", burst=5))
    async with await Peer.connect(server.url + "/ws") as peer:
        answers, code = await answers_to(peer, 20, until_closed=True, timeout=WAIT)
    seen = kinds(answers)
    refused = len(seen) - 5
    assert seen == ["ack"] * 5 + ["rate_limited"] * refused, f"{seen}, closed {code}"
    assert refused >= 5, f"{seen}, closed {code}"
    assert [a["id"] for a in answers] == list(range(1, len(answers) + 1)), answers
    assert code == 1008, f"after {refused} refusals in a row the connection closed with {code}"


async def test_the_default_rate_limit_refuses_after_about_200(start_server: ServerFactory):
    server = start_server(routes())
    async with await Peer.connect(server.url + "/ws") as peer:
        answers, code = await answers_to(peer, 1000)
    seen = kinds(answers)
    assert "rate_limited" in seen, f"1000 frames at once: {Counter(seen)}, closed {code}"
    first_refusal = seen.index("rate_limited")
    assert 200 <= first_refusal <= 260, f"the first refusal was answer {first_refusal}"
    assert seen.count("ack") <= 300, Counter(seen)
    assert set(seen) == {"ack", "rate_limited"}, Counter(seen)


async def test_a_route_can_lift_the_rate_limit(start_server: ServerFactory):
    toml = routes().replace(
        '[routes."/ws".events]',
        '[routes."/ws"]\nrate = "1000/s"\nburst = 1000\n\n[routes."/ws".events]',
    )
    server = start_server(toml)
    async with await Peer.connect(server.url + "/ws") as peer:
        answers, code = await answers_to(peer, 1000)
    assert Counter(kinds(answers)) == {"ack": 1000}, (Counter(kinds(answers)), code)


# --- 10. handshakes websockets' parser refuses --------------------------------------------------


@pytest.mark.parametrize(
    ("omit", "extra"),
    [
        pytest.param(("Sec-WebSocket-Key",), (), id="no-key"),
        pytest.param(("Sec-WebSocket-Key",), ("Sec-WebSocket-Key: c2hvcnQ=",), id="short-key"),
        pytest.param(("Sec-WebSocket-Version",), ("Sec-WebSocket-Version: 8",), id="version-8"),
        pytest.param(("Sec-WebSocket-Version",), (), id="no-version"),
        pytest.param(("Upgrade",), ("Upgrade: h2c",), id="upgrade-h2c"),
    ],
)
def test_a_handshake_the_parser_refuses_gets_an_http_4xx(
    plain: RunningServer, omit: tuple[str, ...], extra: tuple[str, ...]
):
    mark = len(plain.lines)
    request = handshake("/ws", f"127.0.0.1:{plain.port}", *extra, omit=omit)
    answer, how = http_exchange(plain.port, request)
    status = status_of(answer)
    assert status is not None and 400 <= status < 500, f"answered {answer[:120]!r} ({how})"
    settle(plain)
    no_traceback(log_since(plain, mark))
