"""``vws connect``: its script mode against a real server, its interactive mode in a pty, and
the parsing and printing underneath."""

from __future__ import annotations

import itertools
import json
import os
import pty
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import DEMO_ADMIN_TOKEN, REPO, RunningServer, ServerFactory

from vws.cli.connect import BadLine, Command, Send, parse_line, pretty, show

TIMEOUT = 30.0
CLOSER = """
[routes."/ws".events]
close = "e2e_handlers:close"
echo = "e2e_handlers:echo"
"""


@pytest.fixture(scope="module")
def demo() -> Iterator[RunningServer]:
    server = RunningServer(REPO / "routes.toml", {"VWS_DEMO_ADMIN_TOKEN": DEMO_ADMIN_TOKEN})
    yield server
    server.stop()


def vws_connect(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vws.cli", "connect", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


def frames(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


def lines(*frames: dict[str, Any]) -> str:
    return "".join(json.dumps(frame) + "\n" for frame in frames)


def test_script_mode_sends_each_line_and_prints_each_frame(demo: RunningServer):
    done = vws_connect(
        demo.url + "/ws?name=Script",
        stdin=lines(
            {"event": "joinRoom", "room": "lobby", "id": 1},
            {"event": "chat", "payload": {"room": "lobby", "text": "hi", "name": "S"}, "id": "x"},
            {"event": "nope", "id": 3},
        ),
    )
    assert done.returncode == 0, done.stderr
    got = frames(done.stdout)
    me = got[0]["payload"]["client_id"]
    assert [frame["event"] for frame in got] == [
        "connected",
        "welcome",
        "ack",
        "presence:join",  # the demo's rooms keep a history: live frames follow the join's ack
        "chat",
        "ack",
        "error",
    ]
    ack, joined = got[2], got[3]
    assert ack == {"event": "ack", "payload": {**ack["payload"], "room": "lobby"}, "id": 1}
    assert set(ack["payload"]) == {"room", "offset", "epoch"}
    member = {"client_id": me, "user": None, "name": "Script"}
    assert joined["payload"] == {"room": "lobby", "member": member}
    assert "offset" not in joined  # presence notices are in the demo's history_skip
    assert got[4]["offset"] == ack["payload"]["offset"] + 1  # the chat line is kept
    assert got[5] == {"event": "ack", "payload": {"delivered": True}, "id": "x"}
    assert got[6]["id"] == 3 and got[6]["payload"]["code"] == "unknown_event"
    assert done.stderr == ""


def test_script_mode_reports_bad_lines_and_goes_on(demo: RunningServer):
    done = vws_connect(
        demo.url + "/ws",
        "--json",
        stdin='not json\n[1, 2]\n\n{"event": "presence", "payload": "lobby", "id": 7}\n',
    )
    assert done.returncode == 2
    assert "skipped an input line: not JSON: Expecting value at column 1" in done.stderr
    assert "skipped an input line: a frame is a JSON object" in done.stderr
    answer = frames(done.stdout)[-1]
    assert answer["id"] == 7 and answer["payload"]["code"] == "denied"


def test_a_foreign_origin_is_refused_with_403(demo: RunningServer):
    done = vws_connect(demo.url + "/ws", "--origin", "http://elsewhere.test")
    assert done.returncode == 1
    assert done.stderr == "vws connect: the server refused the handshake: HTTP 403\n"
    assert done.stdout == ""
    same = vws_connect(demo.url + "/ws", "--origin", demo.http)
    assert same.returncode == 0 and frames(same.stdout)[0]["event"] == "connected"


def test_headers_reach_the_middleware(demo: RunningServer):
    refused = vws_connect(demo.url + "/admins")
    assert refused.returncode == 1
    assert "closed the connection with 4401: a valid admin token is required" in refused.stderr
    allowed = vws_connect(
        demo.url + "/admins",
        "-H",
        f"Authorization: Bearer {DEMO_ADMIN_TOKEN}",
        stdin=lines({"event": "admin-message", "payload": "hi", "id": 1}),
    )
    assert allowed.returncode == 0, allowed.stderr
    assert frames(allowed.stdout)[-1] == {"event": "ack", "payload": None, "id": 1}
    bad = vws_connect(demo.url + "/admins", "-H", "no colon here")
    assert bad.returncode != 0 and "-H expects 'Name: value'" in bad.stderr


def test_nothing_listening_is_a_clear_error():
    from conftest import free_port

    done = vws_connect(f"ws://127.0.0.1:{free_port()}/ws", "--timeout", "5")
    assert done.returncode == 1
    assert done.stderr.startswith("vws connect: cannot connect to ws://127.0.0.1:")


def test_a_server_close_ends_the_script_even_with_stdin_open(start_server: ServerFactory):
    server = start_server(CLOSER)
    process = subprocess.Popen(
        [sys.executable, "-m", "vws.cli", "connect", server.url + "/ws"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdin is not None
    process.stdin.write(lines({"event": "close", "payload": {"code": 4403, "reason": "go"}}))
    process.stdin.flush()  # and stdin stays open
    try:
        process.wait(TIMEOUT)
    finally:
        process.kill()
        process.stdin.close()
    assert process.stdout is not None and process.stderr is not None
    out, err = process.stdout.read(), process.stderr.read()
    assert process.returncode == 1
    assert [frame["event"] for frame in frames(out)] == ["connected", "bye"]
    assert err == "vws connect: the server closed the connection with 4403: go\n"


def test_interactive_mode_in_a_terminal(demo: RunningServer, tmp_path: Path):
    history = tmp_path / "history"
    terminal = Terminal(
        [sys.executable, "-m", "vws.cli", "connect", demo.url + "/ws?name=Tty"],
        ["--history", str(history)],
    )
    try:
        terminal.expect("/help for commands")
        terminal.type("/join lobby")
        terminal.expect("answered in")
        assert "\x1b[32;1m← ack" in terminal.screen  # coloured
        terminal.type('/req presence "lobby"')
        terminal.expect('"count"')
        assert '"name"\x1b[0m: \x1b[32m"Tty"' in terminal.screen
        terminal.type("/nonsense")
        terminal.expect("unknown command /nonsense (try /help)")
        terminal.type('{"event": "message", "payload": "raw frame"}')
        terminal.expect("→ message")
        terminal.type("/close")
        assert terminal.wait() == 0
    finally:
        terminal.kill()
    assert "/join lobby" in history.read_text()


class Terminal:
    """A command in a pseudo-terminal, read with bounded waits."""

    def __init__(self, command: list[str], extra: list[str]) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child
            os.execvpe(command[0], command + extra, {**os.environ, "TERM": "xterm"})
        self.screen = ""

    def expect(self, text: str, timeout: float = TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.screen:
            left = deadline - time.monotonic()
            assert left > 0, f"{text!r} never showed; the screen:\n{self.screen}"
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready:
                self.screen += os.read(self.fd, 65536).decode("utf-8", "replace")

    def type(self, line: str) -> None:
        os.write(self.fd, line.encode() + b"\r")

    def wait(self, timeout: float = TIMEOUT) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with_status = os.waitpid(self.pid, os.WNOHANG)
            if with_status[0]:
                self.pid = 0
                return os.waitstatus_to_exitcode(with_status[1])
            with _quiet():
                if select.select([self.fd], [], [], 0.1)[0]:
                    self.screen += os.read(self.fd, 65536).decode("utf-8", "replace")
        raise AssertionError(f"vws connect did not exit; the screen:\n{self.screen}")

    def kill(self) -> None:
        if self.pid:
            os.kill(self.pid, 9)
            os.waitpid(self.pid, 0)
        os.close(self.fd)


class _quiet:
    """Reading a pty whose child has exited raises OSError (EIO): that is just the end."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, *_: Any) -> bool:
        return kind is OSError


# the parts without I/O


def test_parse_line():
    ids = itertools.count(1)
    assert parse_line("  ", ids) is None
    assert parse_line('{"event": "x"}', ids) == Send({"event": "x"})
    assert parse_line("/join lobby", ids) == Send(
        {"event": "joinRoom", "room": "lobby", "id": 1}, wait=True
    )
    assert parse_line("/leave lobby", ids) == Send(
        {"event": "leftRoom", "room": "lobby", "id": 2}, wait=True
    )
    assert parse_line('/req chat {"text": "hi"}', ids) == Send(
        {"event": "chat", "payload": {"text": "hi"}, "id": 3}, wait=True
    )
    assert parse_line("/emit ping", ids) == Send({"event": "ping", "payload": None})
    assert parse_line("/close", ids) == Command("close")
    assert parse_line("/help", ids) == Command("help")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{oops", "not JSON"),
        ("42", "a frame is a JSON object"),
        ("/join", "/join ROOM"),
        ("/req", "/req EVENT [JSON]"),
        ("/req chat {nope", "the payload is not JSON"),
        ("/frobnicate", "unknown command /frobnicate"),
    ],
)
def test_parse_line_refuses_with_a_reason(line: str, message: str):
    with pytest.raises(BadLine, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_line(line, itertools.count(1))


def test_pretty_printing():
    frame = {"event": "ack", "payload": {"ok": True, "n": 2, "s": "x"}, "id": 1}
    assert pretty(frame, colour=False) == json.dumps(frame, indent=2)
    painted = pretty(frame, colour=True)
    assert '\x1b[36m"ok"\x1b[0m: \x1b[35mtrue\x1b[0m' in painted
    assert '\x1b[36m"n"\x1b[0m: \x1b[33m2\x1b[0m' in painted
    assert '\x1b[36m"s"\x1b[0m: \x1b[32m"x"\x1b[0m' in painted
    assert show({"event": "error"}, "←", colour=True).startswith("\x1b[31;1m← error\x1b[0m")
    assert show(frame, "→", colour=False).startswith("→ ack {")
