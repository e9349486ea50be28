"""Raw-socket clients for the hostile tests: WebSocket frames and HTTP requests no well-behaved
client would send, and an exact account of what the server answered.

Frames are built with websockets' own :class:`~websockets.frames.Frame` and the server's bytes
are parsed by websockets' sans-I/O :class:`~websockets.client.ClientProtocol`, so nothing here
parses a frame by hand: a test sees the frames, the close frame and how the TCP connection
ended (EOF, a reset, or still open when its time ran out).
"""

from __future__ import annotations

import json
import select
import socket
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from websockets.client import ClientProtocol
from websockets.exceptions import ProtocolError
from websockets.frames import Close, Frame, Opcode
from websockets.http11 import Response
from websockets.uri import parse_uri

WAIT = 5.0
HOST = "127.0.0.1"


class UncheckedFrame(Frame):
    """A frame whose serialisation skips websockets' own validity check, so that reserved
    bits, a bad opcode, a fragmented control frame or one over 125 bytes can be sent."""

    def check(self) -> None:
        return None


def frame(
    opcode: int,
    data: bytes = b"",
    *,
    fin: bool = True,
    rsv: tuple[bool, bool, bool] = (False, False, False),
    mask: bool = True,
) -> bytes:
    """One frame's bytes as a client sends it (masked unless ``mask`` is false); anything
    websockets would refuse to send goes through :class:`UncheckedFrame`."""
    try:
        code: int = Opcode(opcode)
    except ValueError:
        code = opcode
    checked = Frame(code, data, fin, *rsv)
    try:
        checked.check()
    except ProtocolError:
        return UncheckedFrame(code, data, fin, *rsv).serialize(mask=mask, extensions=[])
    return checked.serialize(mask=mask, extensions=[])


def close_payload(code: int, reason: str = "") -> bytes:
    return Close(code, reason).serialize()


def handshake(path: str, host: str, *extra: str, omit: tuple[str, ...] = ()) -> bytes:
    """A WebSocket upgrade request; ``omit`` drops the headers of those names."""
    lines = [
        f"Host: {host}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version: 13",
    ]
    kept = [line for line in lines if line.split(":", 1)[0] not in omit]
    return ("\r\n".join([f"GET {path} HTTP/1.1", *kept, *extra]) + "\r\n\r\n").encode()


def status_of(answer: bytes) -> int | None:
    """The status code of an HTTP answer's first line (None: not an HTTP answer)."""
    if not answer.startswith(b"HTTP/1."):
        return None
    parts = answer.split(b"\r\n", 1)[0].split(b" ", 2)
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None


def connect_tcp(port: int, *, rcvbuf: int | None = None, timeout: float = WAIT) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:  # before connect(), so the window the server sees is small too
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(timeout)
    sock.connect((HOST, port))
    return sock


def read_http_answer(sock: socket.socket, timeout: float = WAIT) -> tuple[bytes, str]:
    """What the server answered on ``sock``: its bytes up to the end of the headers (or of the
    stream), and how the read ended: "answer", "eof", "reset" or "timeout"."""
    deadline = time.monotonic() + timeout
    answer = b""
    while b"\r\n\r\n" not in answer:
        left = deadline - time.monotonic()
        if left <= 0:
            return answer, "timeout"
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            return answer, "timeout"
        except ConnectionResetError:
            return answer, "reset"
        if not chunk:
            return answer, "eof"
        answer += chunk
    return answer, "answer"


def http_exchange(port: int, request: bytes, timeout: float = WAIT) -> tuple[bytes, str]:
    """Send ``request`` on a fresh connection; the answer's head and how the read ended."""
    with connect_tcp(port, timeout=timeout) as sock:
        sock.sendall(request)
        return read_http_answer(sock, timeout)


class HandshakeRefused(Exception):
    def __init__(self, response: Response | None) -> None:
        self.response = response
        status = response.status_code if response is not None else None
        super().__init__(f"the upgrade was answered {status}, not 101")


@dataclass
class Ending:
    """What was read from a connection until it ended (or the time to read ran out)."""

    frames: list[Frame] = field(default_factory=list)
    #: The close frame the server sent, if one arrived.
    close: Close | None = None
    #: "eof", "reset" or "timeout" (still open).
    how: str = "timeout"
    #: Payload bytes of the data frames (text, binary, continuation) read.
    received_bytes: int = 0
    #: A protocol error in what the server sent, as websockets' client parser saw it.
    parser_error: str | None = None

    @property
    def code(self) -> int | None:
        return self.close.code if self.close is not None else None

    def describe(self) -> str:
        kinds = [f.opcode.name for f in self.frames[-5:]]
        close = f"close {self.close.code} {self.close.reason!r}" if self.close else "no close frame"
        extra = f", parser error {self.parser_error}" if self.parser_error else ""
        return (
            f"{close}, connection ended by {self.how}, {len(self.frames)} frames "
            f"(last: {kinds}){extra}"
        )


class RawWebSocket:
    """An upgraded connection over a plain socket: send any bytes, read what the server sent.

    ``connect`` completes the upgrade and reads vws's ``connected`` frame (``client_id``).
    """

    def __init__(self, sock: socket.socket, protocol: ClientProtocol) -> None:
        self.sock = sock
        self.protocol = protocol
        self.events: deque[Frame] = deque()
        self.ending = Ending()
        self.hello: dict[str, Any] = {}
        self.client_id = ""

    @classmethod
    def connect(
        cls,
        port: int,
        path: str = "/ws",
        *,
        rcvbuf: int | None = None,
        timeout: float = WAIT,
        hello: bool = True,
    ) -> RawWebSocket:
        sock = connect_tcp(port, rcvbuf=rcvbuf, timeout=timeout)
        protocol = ClientProtocol(parse_uri(f"ws://{HOST}:{port}{path}"), max_size=None)
        protocol.send_request(protocol.connect())
        sock.sendall(b"".join(protocol.data_to_send()))
        raw = cls(sock, protocol)
        response = raw._read_response(timeout)
        if protocol.handshake_exc is not None or response is None:
            sock.close()
            raise HandshakeRefused(response)
        if hello:
            raw.hello = raw.recv_json(timeout)
            assert raw.hello.get("event") == "connected", raw.hello
            raw.client_id = raw.hello["payload"]["client_id"]
        return raw

    def _read_response(self, timeout: float) -> Response | None:
        deadline = time.monotonic() + timeout
        while True:
            if self.events:
                first = self.events.popleft()
                return first if isinstance(first, Response) else None
            if not self.read_some(deadline - time.monotonic()):
                return None

    def read_some(self, timeout: float) -> bool:
        """Read once (waiting up to ``timeout``; 0: only what is there) and parse; False when
        nothing came."""
        if self.ending.how != "timeout" or timeout < 0:
            return False
        ready, _, _ = select.select([self.sock], [], [], timeout)
        if not ready:
            return False
        try:
            data = self.sock.recv(262144)
        except ConnectionResetError:
            self.ending.how = "reset"
            return False
        if data:
            self.protocol.receive_data(data)
        else:
            self.ending.how = "eof"
            self.protocol.receive_eof()
        for event in self.protocol.events_received():
            self.events.append(event)
            if isinstance(event, Frame) and event.opcode is Opcode.CLOSE and not self.ending.close:
                self.ending.close = Close.parse(event.data) if event.data else Close(1005, "")
        if self.protocol.parser_exc is not None:
            self.ending.parser_error = repr(self.protocol.parser_exc)
        return True

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_frame(self, opcode: int, data: bytes = b"", *, fin: bool = True) -> None:
        self.send(frame(opcode, data, fin=fin))

    def send_json(self, message: Any) -> None:
        self.send_frame(Opcode.TEXT, json.dumps(message).encode())

    def recv_frame(self, timeout: float = WAIT) -> Frame | None:
        """The next frame from the server (None: the connection ended or time ran out)."""
        deadline = time.monotonic() + timeout
        while not self.events:
            if not self.read_some(deadline - time.monotonic()):
                return None
        got = self.events.popleft()
        self._note(got)
        return got

    def recv_json(self, timeout: float = WAIT) -> dict[str, Any]:
        """The next text frame, decoded (pings and pongs are skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.recv_frame(deadline - time.monotonic())
            if got is None:
                raise AssertionError(f"no text frame came: {self.ending.describe()}")
            if got.opcode is Opcode.TEXT:
                return json.loads(got.data)
            if got.opcode is Opcode.CLOSE:
                raise AssertionError(f"closed instead: {self.ending.describe()}")

    def _note(self, got: Frame) -> None:
        self.ending.frames.append(got)
        if got.opcode in (Opcode.TEXT, Opcode.BINARY, Opcode.CONT):
            self.ending.received_bytes += len(got.data)

    def read_to_end(self, timeout: float = WAIT) -> Ending:
        """Read every frame until the server ends the connection or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        while True:
            while self.events:
                self._note(self.events.popleft())
            if not self.read_some(deadline - time.monotonic()):
                break
        while self.events:
            self._note(self.events.popleft())
        return self.ending

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawWebSocket:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()
