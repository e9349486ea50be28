"""``vws connect URL``: a terminal client for any vws server.

At a terminal it is interactive: frames in and out are pretty-printed JSON in colour, the line
editor keeps a history file, and slash commands do the protocol's chores (``/join``, ``/leave``,
``/req`` fills in an ``id`` and waits for its answer). Anywhere else, or with ``--json``, it is a
filter for scripts: every stdin line is one JSON frame sent as it is, every frame received is
one JSON line on stdout; at the end of stdin it waits for the answers to the frames that carried
an ``id`` (each within ``--timeout``), then closes.

Exit status: 0 after a normal close, 1 when the connection could not be made or the server
closed it with an error code, 2 when an input line was not a JSON object (it is reported on
stderr and skipped, the rest still runs).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import re
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO, cast

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.typing import Origin

from vws.cli import add_command

#: Close codes that end a session normally (the client's close, a server going away).
NORMAL_CLOSES = frozenset({1000, 1001})
HELP = """commands:
  {"event": ..., ...}     send this frame as it is
  /emit EVENT [JSON]      send an event without an id
  /req EVENT [JSON]       send it with an id and wait for the ack or error
  /join ROOM, /leave ROOM join or leave a room (waits for the ack)
  /close                  close the connection and quit (so does Ctrl-D)
  /help                   this text"""


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sub = add_command(
        commands,
        "connect",
        "connect to a vws server: an interactive client, or one JSON frame per line for scripts",
        run,
        config=False,
    )
    sub.add_argument("url", help="the WebSocket URL, e.g. ws://127.0.0.1:8000/ws")
    sub.add_argument(
        "-H",
        "--header",
        action="append",
        default=[],
        metavar="'NAME: VALUE'",
        help="a header to send with the handshake (repeatable)",
    )
    sub.add_argument("--origin", help="the Origin header, as a browser on that origin sends it")
    sub.add_argument(
        "--json",
        action="store_true",
        help="one JSON frame per line on stdin and stdout (the default when stdin is no terminal)",
    )
    sub.add_argument(
        "--timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="how long to wait for the handshake and for each answer (default: 10)",
    )
    sub.add_argument(
        "--history",
        default=str(Path.home() / ".vws_connect_history"),
        metavar="FILE",
        help="the interactive line history (default: ~/.vws_connect_history)",
    )
    sub.add_argument("--no-color", action="store_true", help="no colours (also NO_COLOR=1)")


# sans-I/O: what a typed line means, and how a frame is shown


@dataclass(frozen=True, slots=True)
class Send:
    """Send ``frame``; with ``wait``, wait for the answer to its id."""

    frame: dict[str, Any]
    wait: bool = False


@dataclass(frozen=True, slots=True)
class Command:
    name: str  # "close" or "help"


class BadLine(ValueError):
    """A line that means nothing; its message says what was expected."""


def parse_json_frame(line: str) -> dict[str, Any]:
    try:
        frame = json.loads(line)
    except json.JSONDecodeError as error:
        raise BadLine(f"not JSON: {error.msg} at column {error.colno}") from None
    if not isinstance(frame, dict):
        raise BadLine('a frame is a JSON object: {"event": ..., "payload": ...}')
    return frame


def parse_line(line: str, ids: itertools.count[int]) -> Send | Command | None:
    """What an interactive line asks for (None for a blank line).

    Raises:
        BadLine: the line is neither a JSON object nor a known command.
    """
    line = line.strip()
    if not line:
        return None
    if not line.startswith("/"):
        return Send(parse_json_frame(line))
    name, _, rest = line[1:].partition(" ")
    rest = rest.strip()
    if name in {"close", "quit", "help"}:
        return Command("help" if name == "help" else "close")
    if name in {"join", "leave"}:
        if not rest:
            raise BadLine(f"/{name} ROOM")
        event = "joinRoom" if name == "join" else "leftRoom"
        return Send({"event": event, "room": rest, "id": next(ids)}, wait=True)
    if name in {"req", "emit"}:
        event, _, payload_text = rest.partition(" ")
        if not event:
            raise BadLine(f"/{name} EVENT [JSON]")
        try:
            payload = json.loads(payload_text) if payload_text.strip() else None
        except json.JSONDecodeError as error:
            raise BadLine(f"the payload is not JSON: {error.msg}") from None
        frame: dict[str, Any] = {"event": event, "payload": payload}
        if name == "req":
            frame["id"] = next(ids)
        return Send(frame, wait=name == "req")
    raise BadLine(f"unknown command /{name} (try /help)")


_TOKENS = re.compile(
    r'(?P<key>"(?:\\.|[^"\\])*"(?=\s*:))|(?P<string>"(?:\\.|[^"\\])*")'
    r"|(?P<number>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)|(?P<literal>\btrue\b|\bfalse\b|\bnull\b)"
)
_COLOURS = {"key": "36", "string": "32", "number": "33", "literal": "35"}


def paint(text: str, code: str, colour: bool) -> str:
    return f"\x1b[{code}m{text}\x1b[0m" if colour else text


def pretty(frame: Any, colour: bool) -> str:
    """``frame`` as indented JSON, its keys and values coloured when ``colour``."""
    text = json.dumps(frame, indent=2, ensure_ascii=False)
    if not colour:
        return text
    return _TOKENS.sub(lambda m: paint(m[0], _COLOURS[m.lastgroup or "key"], True), text)


def show(frame: Any, direction: str, colour: bool) -> str:
    """One frame as the interactive mode prints it, with an arrow for its direction."""
    event = frame.get("event") if isinstance(frame, dict) else None
    tint = {"error": "31;1", "ack": "32;1", "connected": "34;1"}.get(str(event), "1")
    head = paint(f"{direction} {event}", tint, colour)
    return f"{head} {pretty(frame, colour)}"


# the I/O


def parse_headers(raw: list[str]) -> list[tuple[str, str]]:
    headers = []
    for item in raw:
        name, sep, value = item.partition(":")
        if not sep or not name.strip():
            raise SystemExit(f"vws connect: -H expects 'Name: value', got {item!r}")
        headers.append((name.strip(), value.strip()))
    return headers


def run(args: argparse.Namespace) -> int:
    scheme, sep, _ = args.url.partition("://")
    if not sep or scheme.lower() not in {"ws", "wss"}:
        # websockets' own words for it ("... isn't a valid URI: scheme isn't ws or wss") read
        # as a failed connection; this is a mistyped command
        print(f"vws connect: expected a ws:// or wss:// URL, got {args.url}", file=sys.stderr)
        return 2
    headers = parse_headers(args.header)
    interactive = not args.json and sys.stdin.isatty()
    colour = interactive and not args.no_color and not os.environ.get("NO_COLOR")
    session = Session(args.url, headers, args.origin, args.timeout, colour)
    try:
        if interactive:
            return asyncio.run(session.interactive(args.history))
        return asyncio.run(session.script(sys.stdin, sys.stdout))
    except KeyboardInterrupt:
        return 130


class Session:
    """One connection and what was asked of it."""

    def __init__(
        self,
        url: str,
        headers: list[tuple[str, str]],
        origin: str | None,
        timeout: float,
        colour: bool,
    ) -> None:
        self.url = url
        self.headers = headers
        self.origin = origin
        self.timeout = timeout
        self.colour = colour
        self.ids = itertools.count(1)
        #: id → the future its answer resolves
        self.waiting: dict[Any, asyncio.Future[dict[str, Any] | None]] = {}
        self.bad_input = False

    async def open(self) -> ClientConnection | None:
        try:
            return await connect(
                self.url,
                additional_headers=self.headers,
                origin=cast(Origin | None, self.origin),  # Origin is a NewType of str
                open_timeout=self.timeout,
                max_size=None,
            )
        except InvalidStatus as error:
            status = error.response.status_code
            self.fail(f"the server refused the handshake: HTTP {status}")
        except (InvalidHandshake, OSError, TimeoutError) as error:
            self.fail(f"cannot connect to {self.url}: {str(error) or type(error).__name__}")
        return None

    def fail(self, message: str) -> None:
        print(f"vws connect: {message}", file=sys.stderr)

    def closed_status(self, ws: ClientConnection) -> int:
        code = ws.close_code if ws.close_code is not None else 1006
        if code in NORMAL_CLOSES:
            return 0
        reason = f": {ws.close_reason}" if ws.close_reason else ""
        self.fail(f"the server closed the connection with {code}{reason}")
        return 1

    def answer(self, frame: Any) -> None:
        """Resolve the wait for this frame's id, if it answers one."""
        if isinstance(frame, dict) and frame.get("event") in {"ack", "error"}:
            future = self.waiting.pop(frame.get("id"), None)
            if future is not None and not future.done():
                future.set_result(frame)

    def abandon(self) -> None:
        """The connection has closed: no answer will come, so no wait goes on to its timeout
        (the close, reported next, says why)."""
        for future in self.waiting.values():
            if not future.done():
                future.set_result(None)
        self.waiting.clear()

    def expect_answer(self, frame: dict[str, Any]) -> asyncio.Future[dict[str, Any] | None] | None:
        frame_id = frame.get("id")
        if frame_id is None:
            return None
        future = asyncio.get_running_loop().create_future()
        self.waiting[frame_id] = future
        return future

    # scripts: one JSON per line

    async def script(self, stdin: TextIO, stdout: TextIO) -> int:
        ws = await self.open()
        if ws is None:
            return 1

        #: Set once the server's first frame (``connected``) is printed: a script whose stdin
        #: is empty still sees it, rather than a close that raced it.
        greeted = asyncio.Event()

        async def receive() -> None:
            with contextlib.suppress(ConnectionClosed):
                async for message in ws:
                    text = message if isinstance(message, str) else message.decode("utf-8")
                    stdout.write(text + "\n")
                    stdout.flush()
                    greeted.set()
                    with contextlib.suppress(ValueError):
                        self.answer(json.loads(text))
            self.abandon()

        reader = asyncio.create_task(receive())
        answers: list[asyncio.Future[dict[str, Any] | None]] = []
        lines = asyncio.Queue[str | None]()
        loop = asyncio.get_running_loop()
        # a daemon thread, not the executor: a server that closes first must not wait for stdin
        threading.Thread(target=_feed, args=(stdin, lines, loop), daemon=True).start()
        try:
            while True:
                next_line = asyncio.ensure_future(lines.get())
                await asyncio.wait({next_line, reader}, return_when=asyncio.FIRST_COMPLETED)
                if not next_line.done():
                    next_line.cancel()
                    break  # the server closed the connection
                line = next_line.result()
                if line is None:
                    break
                if not line.strip():
                    continue
                try:
                    frame = parse_json_frame(line)
                except BadLine as error:
                    self.bad_input = True
                    self.fail(f"skipped an input line: {error}")
                    continue
                future = self.expect_answer(frame)
                if future is not None:
                    answers.append(future)
                try:
                    await ws.send(json.dumps(frame))
                except ConnectionClosed:
                    break
            if answers and not reader.done():
                got = await asyncio.gather(*(_within(future, self.timeout) for future in answers))
                unanswered = got.count(None)
                if unanswered and ws.close_code is None:
                    self.fail(f"{unanswered} frame(s) got no answer within {self.timeout} s")
            if ws.close_code is None and not reader.done():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(greeted.wait(), self.timeout)
            if ws.close_code is None:
                await ws.close()
            await reader
        finally:
            reader.cancel()
        status = self.closed_status(ws)
        return status or (2 if self.bad_input else 0)

    # at a terminal

    async def interactive(self, history: str) -> int:
        editor = _LineEditor(history)
        ws = await self.open()
        if ws is None:
            return 1
        out = _Printer(editor, self.colour)

        async def receive() -> None:
            with contextlib.suppress(ConnectionClosed):
                async for message in ws:
                    try:
                        frame = json.loads(message)
                    except ValueError:
                        out.line(f"← (not JSON) {message!r}")
                        continue
                    out.line(show(frame, "←", self.colour))
                    self.answer(frame)
            self.abandon()
            out.line(paint(f"closed: {ws.close_code} {ws.close_reason}".rstrip(), "2", self.colour))

        reader = asyncio.create_task(receive())
        out.line(paint(f"connected to {self.url} — /help for commands", "2", self.colour))
        try:
            while not reader.done():
                line = await asyncio.to_thread(editor.read, "vws> ")
                if line is None or reader.done():
                    break
                try:
                    action = parse_line(line, self.ids)
                except BadLine as error:
                    out.line(paint(str(error), "31", self.colour))
                    continue
                if action is None:
                    continue
                if isinstance(action, Command):
                    if action.name == "help":
                        out.line(HELP)
                        continue
                    break
                await self.send_and_show(ws, action, out)
        finally:
            editor.save()
            if ws.close_code is None:
                await ws.close()
            await reader
        return self.closed_status(ws)

    async def send_and_show(self, ws: ClientConnection, action: Send, out: _Printer) -> None:
        future = self.expect_answer(action.frame) if action.wait else None
        started = time.perf_counter()
        try:
            await ws.send(json.dumps(action.frame))
        except ConnectionClosed:
            return
        out.line(show(action.frame, "→", self.colour))
        if future is None:
            return
        answer = await _within(future, self.timeout)
        took = f"{(time.perf_counter() - started) * 1000:.0f} ms"
        if answer is None and ws.close_code is not None:
            return  # the connection closed: the reader reports it
        if answer is None:
            self.waiting.pop(action.frame["id"], None)
            out.line(paint(f"no answer within {self.timeout} s", "31", self.colour))
        else:
            out.line(paint(f"answered in {took}", "2", self.colour))


async def _within(future: asyncio.Future[dict[str, Any] | None], seconds: float) -> Any:
    try:
        return await asyncio.wait_for(future, seconds)
    except TimeoutError:
        return None


def _feed(stdin: TextIO, lines: asyncio.Queue[str | None], loop: asyncio.AbstractEventLoop) -> None:
    """Read stdin in a thread (it blocks), handing each line to the event loop; None at EOF."""
    for line in stdin:
        loop.call_soon_threadsafe(lines.put_nowait, line)
    loop.call_soon_threadsafe(lines.put_nowait, None)


class _LineEditor:
    """``input()`` with readline's editing and a history file, where readline exists."""

    def __init__(self, history: str) -> None:
        self.history = history
        self.reading = False
        try:
            import readline
        except ImportError:  # pragma: no cover - Windows
            self.readline = None
            return
        self.readline = readline
        with contextlib.suppress(OSError):
            readline.read_history_file(history)
        readline.set_history_length(1000)

    def read(self, prompt: str) -> str | None:
        self.reading = True
        try:
            return input(prompt)
        except EOFError:
            return None
        finally:
            self.reading = False

    def buffer(self) -> str:
        return self.readline.get_line_buffer() if self.readline else ""

    def save(self) -> None:
        if self.readline is not None:
            with contextlib.suppress(OSError):
                self.readline.write_history_file(self.history)


class _Printer:
    """Prints above the prompt, then redraws the prompt and what was typed so far."""

    def __init__(self, editor: _LineEditor, colour: bool) -> None:
        self.editor = editor
        self.colour = colour

    def line(self, text: str) -> None:
        prompt = f"vws> {self.editor.buffer()}" if self.editor.reading else ""
        sys.stdout.write(f"\r\x1b[K{text}\n{prompt}")
        sys.stdout.flush()
