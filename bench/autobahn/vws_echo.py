"""An echo server on vws's own WebSocket layer, for the Autobahn|Testsuite fuzzing client.

Autobahn checks a server's framing by sending messages it expects back byte for byte, so this
serves vws's :class:`~vws.edge.transport.WebSocketProtocol` and
:class:`~vws.edge.transport.HttpProtocol` exactly as ``vws run`` does, parser and policy and
close handling included, with one change: a complete message is written back as it came
instead of going to a vws connection. The limits are opened wide (case group 9 sends 16 MiB
messages and thousands of frames), since what is tested here is the protocol, not the policy.

Run: ``python -m bench.autobahn.vws_echo --port 9001``.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import uvicorn
from websockets.frames import Frame, Opcode
from websockets.http11 import Request

from vws.cli.run import UVICORN_SPEED, protocols
from vws.edge.app import create_app, load_server
from vws.edge.transport import WebSocketProtocol

ROUTES = """
[server]
max_message_bytes = 16777216
max_fragments = 1000000
max_frame_rate = 100000000
rate = "off"
ping_interval = 0

[routes."/".events]
echo = "bench.autobahn.vws_echo:echo"
"""


def echo(client: object, payload: object) -> object:
    """The route needs an event to be a route; messages never reach it (see EchoProtocol)."""
    return payload


class EchoProtocol(WebSocketProtocol):
    """vws's protocol, answering every message with itself, with no vws connection behind it
    (which would greet the client with a ``connected`` frame the suite does not expect)."""

    def _request(self, request: Request) -> None:
        self.response = self.parser.accept(request)
        if self.response.status_code != 101:
            self._bad_handshake()
            return
        self.loop.create_task(self.accept())

    def _message(self, data: bytes | bytearray | memoryview) -> None:
        if self._text:
            try:
                bytes(data).decode()
            except UnicodeDecodeError:
                self._fail(1007, "invalid UTF-8")
                return
        opcode = Opcode.TEXT if self._text else Opcode.BINARY
        self.transport.write(Frame(opcode, bytes(data)).serialize(mask=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=9001)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="vws-echo-"))
    (folder / "routes.toml").write_text(ROUTES)
    app = create_app(load_server(folder / "routes.toml"))
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        **(UVICORN_SPEED | protocols() | {"ws": EchoProtocol}),
        ws_max_size=16777216,
        lifespan="on",
        log_level="warning",
    )


if __name__ == "__main__":
    main()
