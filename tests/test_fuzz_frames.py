"""A fuzzer of WebSocket frames against one real ``vws run``.

Hypothesis draws sequences of frames (text, binary, continuation, ping, pong, close and bad
opcodes; random FIN and reserved bits, unmasked frames, invalid UTF-8, payloads around
max_message_bytes, fragments interleaved with control frames, control frames over 125 bytes)
and sends each on a fresh raw connection, followed by a normal close frame. Whatever the
sequence, the server must answer with well-formed frames and a close frame carrying a code,
close the TCP connection only after that close frame, never go silent, and keep serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from conftest import RunningServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rawws import RawWebSocket, frame
from websockets.frames import Opcode
from wsclient import Peer

MAX_MESSAGE = 4096
APP = f"""
[server]
max_message_bytes = {MAX_MESSAGE}

[routes."/ws".events]
echo = "e2e_handlers:echo"
"""
#: How long the server has to end a connection after the client's close frame.
READ = 3.0


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    config = tmp_path_factory.mktemp("fuzz") / "routes.toml"
    config.write_text(APP)
    server = RunningServer(config)
    yield server
    server.stop()


@dataclass(frozen=True)
class Fuzzed:
    """One drawn frame; its repr is what Hypothesis shows for a failing sequence."""

    kind: str
    opcode: int
    data: bytes
    fin: bool = True
    rsv: tuple[bool, bool, bool] = (False, False, False)
    mask: bool = True

    def wire(self) -> bytes:
        return frame(self.opcode, self.data, fin=self.fin, rsv=self.rsv, mask=self.mask)

    def __repr__(self) -> str:
        flags = "" if self.fin else " fin=0"
        flags += f" rsv={''.join(str(int(b)) for b in self.rsv)}" if any(self.rsv) else ""
        flags += "" if self.mask else " unmasked"
        shown = self.data[:24] + (b"..." if len(self.data) > 24 else b"")
        return f"<{self.kind} 0x{self.opcode:x} {len(self.data)}B {shown!r}{flags}>"


#: True about one draw in ten.
rare = st.integers(0, 9).map(lambda n: n == 0)

data_payloads = st.one_of(
    st.integers(0, 10**6).map(
        lambda n: json.dumps({"event": "echo", "payload": n, "id": n}).encode()
    ),
    st.binary(max_size=64),
    st.binary(max_size=16).map(lambda b: b + b"\xc3"),  # a UTF-8 sequence cut short
    st.sampled_from(
        [b"\xff", b"\xed\xa0\x80", b"\xc0\xaf", b'{"event": "echo", "payload": "\xfe"}', b""]
    ),
    st.integers(MAX_MESSAGE - 8, MAX_MESSAGE + 600).map(lambda n: b"x" * n),
)
fitting = st.binary(max_size=125)
control_payloads = st.one_of(fitting, fitting, fitting, st.integers(126, 400).map(b"p".__mul__))
close_payloads = st.one_of(
    st.just(b""),
    st.binary(min_size=1, max_size=1),  # a code cut in half
    st.builds(
        lambda code, reason: struct.pack("!H", code) + reason,
        st.sampled_from([1000, 1001, 1002, 1004, 1005, 1006, 1015, 999, 2999, 3000, 4999, 5000]),
        st.one_of(st.binary(max_size=8), st.just(b"\xff\xfe"), st.just(b"r" * 124)),
    ),
)
DATA = {"text": Opcode.TEXT, "binary": Opcode.BINARY, "cont": Opcode.CONT}
CONTROL = {"ping": Opcode.PING, "pong": Opcode.PONG, "close": Opcode.CLOSE}
BAD_OPCODES = [0x3, 0x4, 0x5, 0x6, 0x7, 0xB, 0xC, 0xD, 0xE, 0xF]


@st.composite
def any_frame(draw: st.DrawFn) -> Fuzzed:
    """A frame of any kind with any flags: mostly wrong where it stands."""
    kind = draw(st.sampled_from([*DATA, *CONTROL, "bad"]))
    if kind in DATA:
        opcode, data, fin = DATA[kind], draw(data_payloads), draw(st.booleans())
    elif kind == "bad":
        opcode, data, fin = draw(st.sampled_from(BAD_OPCODES)), draw(control_payloads), True
    else:
        payloads = close_payloads if kind == "close" else control_payloads
        opcode, data, fin = CONTROL[kind], draw(payloads), not draw(rare)
    rsv = (draw(rare), draw(rare), draw(rare))
    return Fuzzed(kind, opcode, data, fin, rsv, mask=not draw(rare))


@st.composite
def control_frame(draw: st.DrawFn) -> Fuzzed:
    """A ping or a pong, now and then one over 125 bytes or fragmented."""
    kind = draw(st.sampled_from(["ping", "pong"]))
    return Fuzzed(kind, CONTROL[kind], draw(control_payloads), fin=not draw(rare))


@st.composite
def message(draw: st.DrawFn) -> list[Fuzzed]:
    """A text or binary message, whole or in fragments with control frames among them."""
    kind = draw(st.sampled_from(["text", "text", "binary"]))
    data = draw(data_payloads)
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=4)))
    parts = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
    out = []
    for n, part in enumerate(parts):
        if n and draw(rare):
            out.append(draw(control_frame()))
        opcode = DATA[kind] if n == 0 else Opcode.CONT
        out.append(Fuzzed(kind if n == 0 else "cont", opcode, part, fin=n == len(parts) - 1))
    return out


#: A connection's frames: mostly well-formed messages and control frames, with a frame that is
#: wrong in any way now and then.
sequences = st.lists(
    st.one_of(
        *[message()] * 4,
        *[control_frame().map(lambda f: [f])] * 2,
        st.builds(lambda data: [Fuzzed("close", Opcode.CLOSE, data)], close_payloads),
        any_frame().map(lambda f: [f]),
    ),
    min_size=1,
    max_size=6,
).map(lambda groups: [f for group in groups for f in group])


def may_close_without_code(sequence: list[Fuzzed]) -> bool:
    """Whether the client sent a well-formed empty close, which the server may echo empty."""
    return any(
        f.kind == "close" and not f.data and f.fin and f.mask and not any(f.rsv) for f in sequence
    )


async def echo_still_works(url: str) -> None:
    async with await Peer.connect(url + "/ws") as peer:
        await peer.nothing_pending()


@settings(
    max_examples=1200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(sequence=sequences)
def test_any_frame_sequence_is_answered_and_closed_with_a_code(
    fuzzed: RunningServer, sequence: list[Fuzzed]
):
    wire = b"".join(f.wire() for f in sequence) + frame(Opcode.CLOSE, struct.pack("!H", 1000))
    with RawWebSocket.connect(fuzzed.port) as ws:
        # the server may close early: what it sent before is still there to read
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            ws.send(wire)
        ending = ws.read_to_end(READ)
    seen = ending.describe()
    assert ending.how != "timeout", f"no end {READ} s after the client's close: {seen}"
    assert ending.close is not None, f"the TCP connection ended without a close frame: {seen}"
    code = ending.close.code
    assert 1000 <= code <= 4999 or (code == 1005 and may_close_without_code(sequence)), seen
    assert ending.parser_error is None, f"the server sent a malformed frame: {seen}"
    for got in ending.frames:
        if got.opcode is Opcode.TEXT:
            answer = json.loads(got.data)
            assert isinstance(answer, dict) and "event" in answer, answer
        else:
            assert got.opcode is not Opcode.BINARY, f"the server sent a binary frame: {seen}"
    assert fuzzed.process.poll() is None, "the server died"
    asyncio.run(echo_still_works(fuzzed.url))
