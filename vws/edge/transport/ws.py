"""vws's own WebSocket protocol for ``vws run``: websockets' sans-I/O parser, vws's policy.

uvicorn hands an upgraded connection to the class its ``ws`` setting names; this is vws's. It
parses with :class:`websockets.server.ServerProtocol` and is itself the connection's
:class:`~vws.runtime.connection.Socket`: each complete text message goes straight to the
:class:`~vws.runtime.connection.Connection`, with no ASGI message, no queue and, when the
handler is a plain ``def``, no task: the frame is decoded, handled and acknowledged inside the
``data_received`` that parsed it. A frame whose handling may suspend (an ``async def``
handler, a join, ``vws_message`` hooks) runs in a task, and reading pauses until it is done,
so that frames are still handled one at a time, in order.

The policy a client cannot get around:

- **Frames.** At most ``max_frame_rate`` frames a second of any kind (empty continuations and
  pings included) and ``max_fragments`` continuations in one message; past either, close 1008.
  One connection streaming empty frames cannot hold the event loop.
- **Back-pressure.** While the socket's write buffer is full, reading pauses: pings get no
  pong and frames are not read until the client reads what it was sent, so a client that
  sends and never reads cannot grow the server's memory.
- **Closing.** A close frame is written, the write side is shut (half-close), and the socket
  lingers, reading and discarding, until the client closes or ``close_timeout`` passes.
  Closing a socket with unread data makes the kernel send a reset, which loses the close frame
  and its code (1009, 1008, 1011) on the way.
- **Errors.** A protocol error (invalid UTF-8: 1007; a bad frame: 1002) closes the connection
  with its code and is logged once, at info, without a traceback.
- **Handshake.** One that the parser refuses gets an HTTP answer (400, 431), never silence;
  one that does not complete within ``handshake_timeout`` of the TCP accept is dropped.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections import deque
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import unquote

from websockets.exceptions import InvalidState
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.server import ServerProtocol

try:
    from websockets.speedups import apply_mask
except ImportError:  # websockets built without its C extension
    from websockets.utils import apply_mask

from vws import logs
from vws.edge.transport.guard import plain_response
from vws.edge.transport.state import Edge, edge_of
from vws.edge.websocket import handshake
from vws.protocol import CLOSE_SLOW
from vws.runtime.outbox import finish

if TYPE_CHECKING:
    from uvicorn.config import Config
    from uvicorn.server import ServerState

    from vws.runtime.connection import Connection

logger = logging.getLogger("vws.edge.transport")

#: websockets logs each connection's close at info; vws logs its own disconnect line.
_quiet = logging.getLogger("vws.edge.transport.websockets")
_quiet.setLevel(logging.WARNING)

BAD_REQUEST = plain_response(400, "Bad Request", "this is not a valid WebSocket handshake\n")
#: Seconds a flooding client's socket stays open after its close frame is sent.
FLOOD_LINGER = 1.0
#: Messages parsed while the connection is busy or not yet serving; past this, reading pauses.
PENDING_LIMIT = 64

# Why reading is paused (a bit each): it resumes when none is left.
_WRITE, _PENDING, _CLOSED = 1, 2, 4


#: The last text framed, and its frame: a fan-out writes one text to many sockets in a row.
_framed: tuple[str, bytes] = ("", b"")


def _text_frame(text: str) -> bytes:
    """The bytes of an unmasked text frame of ``text``, framed once however many receive it."""
    global _framed
    if _framed[0] is text:
        return _framed[1]
    data = Frame(Opcode.TEXT, text.encode()).serialize(mask=False)
    _framed = (text, data)
    return data


class Parser(ServerProtocol):
    """websockets' server parser, but a close in the middle of a fragmented message ends the
    message instead of failing the connection with 1002: RFC 6455 lets control frames come
    between fragments, and a client giving up on a message may close (Autobahn case 7.1.5)."""

    def recv_frame(self, frame: Frame) -> None:
        if frame.opcode is Opcode.CLOSE:
            self.current_size = None
        super().recv_frame(frame)


class WebSocketProtocol(asyncio.Protocol):
    """One upgraded connection: parser, policy, and the vws connection's socket."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        edge = edge_of(config)
        if edge is None:
            raise RuntimeError("vws's WebSocket protocol serves only apps made by vws")
        self.edge: Edge = edge
        self.loop = _loop or asyncio.get_event_loop()
        self.connections = server_state.connections
        self.tasks = server_state.tasks
        self.root_path = config.root_path
        settings = edge.settings
        handoff, edge.handoff = edge.handoff, None
        #: What the guard counted this connection under (it was counted by the HTTP protocol).
        self.counted: str | None = None
        self.admitted = handoff is not None
        self.counted, deadline = handoff or (None, self.loop.time() + settings.handshake_timeout)
        self.parser = Parser(max_size=settings.max_message_bytes, logger=_quiet)
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.client: tuple[str, int] | None = None
        self.server_address: tuple[str, int | None] | None = None
        self.connection: Connection | None = None
        self.accepted = False
        self.close_sent = False
        self.lost = False
        self.close_code = 1006
        self._pending: deque[str] = deque()
        self._busy: asyncio.Task[None] | None = None
        self._gone: asyncio.Future[None] | None = None
        self._paused = 0
        self._drained: asyncio.Future[None] | None = None
        self._parts: list[bytes | bytearray | memoryview] = []
        self._text = True
        self._fragments = 0
        self._window = 0.0
        self._frames = 0
        self._last_rx = 0.0
        self._logged = False
        self._eof = False
        self._timer: asyncio.TimerHandle | None = self.loop.call_at(deadline, self._timed_out)
        self._linger: asyncio.TimerHandle | None = None
        self._ping: asyncio.TimerHandle | None = None
        self._pong_wait: bytes | None = None

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.connections.add(self)  # type: ignore[arg-type]  # uvicorn calls shutdown() on it
        self.client = transport.get_extra_info("peername")
        self.server_address = transport.get_extra_info("sockname")

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.connections.discard(self)
        for timer in (self._timer, self._linger, self._ping):
            if timer is not None:
                timer.cancel()
        if self.admitted:
            self.edge.guard.release(self.counted)
            self.admitted = False
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)
        self._client_gone()

    def pause_writing(self) -> None:
        self._pause(_WRITE)

    def resume_writing(self) -> None:
        self._resume(_WRITE)
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    def data_received(self, data: bytes) -> None:
        parser = self.parser
        parser.max_message_size = self.edge.settings.max_message_bytes  # reloadable
        if self.accepted:
            used = self._fast(data)
            if used == len(data):
                return
            data = data[used:]
        parser.receive_data(data)
        events = parser.events_received()
        if events and self.accepted and not self._count(len(events)):
            return
        for event in events:
            if type(event) is Frame:
                self._frame(event)
            elif isinstance(event, Request):
                self._request(event)
            if self.close_sent:
                break
        if self.transport.is_closing():
            return
        if parser.parser_exc is not None and not self.close_sent:
            self._protocol_error(parser.parser_exc)
        elif parser.handshake_exc is not None and not self.accepted:
            self._bad_handshake()
        else:
            self._flush()

    def eof_received(self) -> bool | None:
        # The client half-closed: finish the close now (asyncio closes the transport after).
        self.parser.receive_eof()
        self._flush()
        return None

    # Frames in.

    def _fast(self, data: bytes) -> int:
        """Read the frames every client sends most, whole unfragmented masked text frames of
        up to 64 KiB, straight from ``data``; how many bytes were used.

        websockets' parser is a chain of generators that costs more than the rest of an echo
        put together. It is used for everything else, and it stays right: it is left waiting
        at a frame boundary with nothing buffered, which is where this stops when it meets a
        frame it does not take (another opcode, a fragment, reserved bits, a partial frame).
        """
        parser = self.parser
        if parser.reader.buffer or parser.current_size is not None or self.close_sent:
            return 0
        size, limit = len(data), self.edge.settings.max_message_bytes
        view = memoryview(data)
        pos = frames = 0
        texts = []
        while pos + 6 <= size and data[pos] == 0x81:
            length = data[pos + 1] ^ 0x80  # the mask bit must be set: clients always mask
            if length < 126:
                start = pos + 6
            elif length == 126 and pos + 8 <= size:
                length = (data[pos + 2] << 8) | data[pos + 3]
                start = pos + 8
            else:
                break  # unmasked (> 127 after the xor), 64-bit lengths, or a partial header
            end = start + length
            if end > size or length > limit:
                break
            texts.append(apply_mask(view[start:end], data[start - 4 : start]))
            frames += 1
            pos = end
        if not frames or not self._count(frames):
            return pos if frames else 0
        self._text = True
        for text in texts:
            self._message(text)
        return pos

    def _count(self, frames: int) -> bool:
        """Count frames against ``max_frame_rate``; False when the client was closed for it."""
        now = self.loop.time()
        self._last_rx = now
        if now - self._window >= 1.0:
            self._window, self._frames = now, 0
        self._frames += frames
        if self._frames > self.edge.settings.max_frame_rate:
            self._fail(CLOSE_SLOW, "too many frames", flood=True)
            return False
        return True

    def _frame(self, frame: Frame) -> None:
        opcode = frame.opcode
        if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
            self._text = opcode is Opcode.TEXT
            if frame.fin:
                self._message(frame.data)
            else:
                self._parts = [frame.data]
                self._fragments = 0
        elif opcode is Opcode.CONT:
            self._fragments += 1
            if self._fragments > self.edge.settings.max_fragments:
                self._fail(CLOSE_SLOW, "too many fragments", flood=True)
                return
            self._parts.append(frame.data)
            if frame.fin:
                data = b"".join(self._parts)
                self._parts = []
                self._message(data)
        elif opcode is Opcode.PONG:
            if self._pong_wait is not None and frame.data == self._pong_wait:
                self._pong_wait = None
        elif opcode is Opcode.CLOSE:
            self._parts = []
            close = self.parser.close_rcvd
            self.close_code = close.code if close is not None else 1005
            self._client_gone()
        elif opcode is Opcode.PING:
            self._flush()  # the parser queued the pong: it goes before any later reply

    def _message(self, data: bytes | bytearray | memoryview) -> None:
        if self.close_sent:
            return  # a message after the close frame was sent, or after one that failed
        if not self._text:
            if self.connection is not None:
                self.connection.binary()
            return
        try:
            text = bytes(data).decode()
        except UnicodeDecodeError as exc:
            self._log_error(1007, f"invalid UTF-8: {exc.reason} at position {exc.start}")
            self._fail(1007, "invalid UTF-8")
            return
        if self.connection is None or self._busy is not None or self._pending:
            self._queue(text)
        else:
            self._handle(self.connection, text)

    def _queue(self, text: str) -> None:
        self._pending.append(text)
        if len(self._pending) >= PENDING_LIMIT:
            self._pause(_PENDING)

    def _handle(self, connection: Connection, text: str) -> None:
        """Handle one message now, or start the task that handles it (reading pauses)."""
        if connection.client.closing:
            return
        frame = connection.decode(text)
        if frame is None:
            return
        if connection.immediate(frame):
            coroutine = connection.dispatch(frame)
            try:
                yielded = coroutine.send(None)
            except StopIteration:
                return  # handled, acknowledged, done: the usual case
            task = self.loop.create_task(finish(coroutine, yielded))
        else:
            task = self.loop.create_task(connection.dispatch(frame))
        # Reading goes on (a close frame or the end of the stream must be seen while the
        # handler runs): later messages queue, and reading pauses once PENDING_LIMIT wait.
        self._busy = task
        connection.handling = task
        task.add_done_callback(self._dispatched)

    def _dispatched(self, task: asyncio.Task[None]) -> None:
        self._busy = None
        if not task.cancelled() and task.exception() is not None:
            logger.error("handling a frame failed", exc_info=task.exception())
        connection = self.connection
        if connection is None:
            return
        connection.handling = connection.reader
        self._drain(connection)

    def _drain(self, connection: Connection) -> None:
        pending = self._pending
        while pending and self._busy is None and not self.lost:
            self._handle(connection, pending.popleft())
        if self._busy is None:
            self._resume(_PENDING)

    # Reading paused for a reason, resumed when none is left.

    def _pause(self, reason: int) -> None:
        if not self._paused and not self.close_sent:
            self.transport.pause_reading()
        self._paused |= reason

    def _resume(self, reason: int) -> None:
        if self._paused & reason:
            self._paused &= ~reason
            if not self._paused and not self.transport.is_closing():
                self.transport.resume_reading()

    # Frames out.

    def _flush(self) -> None:
        for data in self.parser.data_to_send():
            if data:
                self.transport.write(data)
            elif not self.transport.is_closing():  # the parser's end of stream
                self._end()

    def _end(self) -> None:
        """The parser is done with the stream: half-close, then close once the client does
        (or when the linger runs out)."""
        self._write_eof()
        if self.parser.close_rcvd is not None or self.parser.state.name == "CLOSED":
            self.transport.close()
        elif self._linger is None:
            self._linger = self.loop.call_later(self.edge.settings.close_timeout, self._abort)

    def _write_eof(self) -> None:
        if not self._eof and not self.transport.is_closing() and self.transport.can_write_eof():
            self._eof = True
            self.transport.write_eof()

    def _abort(self) -> None:
        self._linger = None
        self.transport.abort()

    def _fail(self, code: int, reason: str, *, flood: bool = False) -> None:
        """Close the connection for what the client did, with ``code``.

        A ``flood`` (too many frames) is not read any further: what it goes on sending would
        only cost the event loop, and the close frame is already on its way to it.
        """
        if self.close_sent:
            return
        self.close_code = code
        self.parser.fail(code, reason)
        self._closing(read=not flood)
        self._flush()
        self._client_gone()

    def _closing(self, *, read: bool = True) -> None:
        """A close frame is on its way: read again (to discard), so that the socket is never
        closed with unread data, and give the client ``close_timeout`` to answer. Without
        ``read``, reading stops and the linger is one second at most."""
        self.close_sent = True
        linger = self.edge.settings.close_timeout
        if not read:
            if not self._paused:
                self.transport.pause_reading()
            self._paused |= _CLOSED  # never cleared: reading stays off
            linger = min(linger, FLOOD_LINGER)
        elif self._paused:
            self._paused = 0
            self.transport.resume_reading()
        if self._linger is None:
            self._linger = self.loop.call_later(linger, self._abort)

    def _protocol_error(self, exc: Exception) -> None:
        close = self.parser.close_sent
        code = close.code if close is not None else 1002
        self._log_error(code, str(exc))
        self.close_code = code
        self._closing()
        self._flush()
        self._client_gone()

    def _log_error(self, code: int, reason: str) -> None:
        if not self._logged:
            self._logged = True
            client = self.connection.client.client_id if self.connection else None
            logs.event(logger, "protocol_error", client=client, code=code, reason=reason[:200])

    # The handshake.

    def _request(self, request: Request) -> None:
        response = self.parser.accept(request)
        if response.status_code != 101:
            self.close_sent = True  # answered: nothing more is read or written
            self.parser.send_response(response)
            for data in self.parser.data_to_send():
                if data:
                    self.transport.write(data)
            self.transport.close()
            return
        self.response = response
        raw_path, _, query = request.path.partition("?")
        client = self.client
        scope: dict[str, Any] = {
            "type": "websocket",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1",
            "scheme": "ws",
            "server": self.server_address,
            "client": (self.counted or client[0], client[1]) if client else None,
            "root_path": self.root_path,
            "path": self.root_path + unquote(raw_path),
            "raw_path": (self.root_path + raw_path).encode("latin-1"),
            "query_string": query.encode("latin-1"),
            "headers": [
                (key.lower().encode("latin-1"), value.encode("latin-1"))
                for key, value in request.headers.raw_items()
            ],
            "subprotocols": [],
            "state": {},
        }
        task = self.loop.create_task(handshake(self.edge.server, scope, self))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _bad_handshake(self) -> None:
        """The parser refused the request. websockets queues 414 or 431 itself; for anything
        else it only ends the stream, and the client would wait for an answer for ever."""
        writes = self.parser.data_to_send()
        answered = any(writes)
        for data in writes:
            if data:
                self.transport.write(data)
        if not answered:
            self.transport.write(BAD_REQUEST)
        self.transport.close()

    def _timed_out(self) -> None:
        self._timer = None
        if not self.accepted and not self.transport.is_closing():
            logs.event(logger, "handshake_timeout", client=self.client[0] if self.client else None)
            self.transport.close()
        idle = self.edge.settings.idle_timeout
        if self.accepted and idle:
            self._check_idle()

    def _check_idle(self) -> None:
        idle = self.edge.settings.idle_timeout
        self._timer = None
        if not idle or self.close_sent:
            return
        quiet = self.loop.time() - self._last_rx
        if quiet >= idle and self.connection is not None:
            self.loop.create_task(self.connection.close(1001, "idle"))
            return
        self._timer = self.loop.call_later(max(0.05, idle - quiet), self._check_idle)

    # Socket: what the vws connection calls.

    async def accept(self) -> None:
        if self.lost or self.transport.is_closing():
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.accepted = True
        self._last_rx = self._window = self.loop.time()
        self.parser.send_response(self.response)
        self._flush()
        self._keepalive()
        if self.edge.settings.idle_timeout:
            self._check_idle()

    async def refuse(self, status: int) -> None:
        if self.lost:
            return
        self.parser.send_response(self.parser.reject(status, "the handshake was refused\n"))
        self._flush()
        self.transport.close()

    def write_text(self, text: str) -> bool:
        """Write one text frame now if the socket takes data; False if it is full."""
        if self._paused & _WRITE:
            return False
        if self.close_sent or self.lost:
            raise ConnectionError("the socket is closed")
        self.transport.write(_text_frame(text))
        return True

    def send_text(self, text: str) -> Coroutine[Any, Any, None]:
        return self._send(text)

    async def _send(self, text: str) -> None:
        if self._paused & _WRITE:
            while self._paused & _WRITE and not self.lost:
                self._drained = self.loop.create_future()
                await self._drained
        if self.close_sent or self.lost:
            raise ConnectionError("the socket is closed")
        self.transport.write(_text_frame(text))

    async def close(self, code: int, reason: str) -> None:
        if self.close_sent or self.lost:
            return
        self.close_code = code
        try:
            self.parser.send_close(code, reason)
        except InvalidState:
            return
        self._closing()
        self._flush()
        self._write_eof()
        # Wait until the close frame has left the buffer (the caller bounds the wait).
        while self._paused & _WRITE and not self.lost:
            self._drained = self.loop.create_future()
            await self._drained

    async def serve(self, connection: Connection) -> None:
        self.connection = connection
        if self.lost or self.close_sent:
            connection.close_code = self.close_code
            return
        self._gone = self.loop.create_future()
        self._drain(connection)
        try:
            await self._gone
        finally:
            connection.close_code = self.close_code
            self._gone = None

    def watch(self, connection: Connection) -> None:
        pass  # connection_lost and the close frame tell of the client leaving as they happen

    def _client_gone(self) -> None:
        connection = self.connection
        if connection is not None:
            connection.departed(self.close_code)
        if self._gone is not None and not self._gone.done():
            self._gone.set_result(None)

    # Keepalive pings, and uvicorn's shutdown.

    def _keepalive(self) -> None:
        interval = self.edge.settings.ping_interval
        if interval:
            self._ping = self.loop.call_later(interval, self._send_ping)

    def _send_ping(self) -> None:
        self._ping = None
        if self.close_sent or self.lost:
            return
        settings = self.edge.settings
        if self._pong_wait is not None and settings.ping_timeout:
            self._fail(1011, "keepalive ping timeout")
            return
        self._pong_wait = secrets.token_bytes(4)
        self.parser.send_ping(self._pong_wait)
        self._flush()
        self._ping = self.loop.call_later(
            min(settings.ping_interval, settings.ping_timeout or settings.ping_interval),
            self._send_ping if not settings.ping_timeout else self._ping_due,
        )

    def _ping_due(self) -> None:
        self._ping = None
        if self._pong_wait is not None:
            self._fail(1011, "keepalive ping timeout")
            return
        interval = self.edge.settings.ping_interval
        timeout = self.edge.settings.ping_timeout
        self._ping = self.loop.call_later(max(0.0, interval - timeout), self._send_ping)

    def shutdown(self) -> None:
        """uvicorn is stopping: close with 1012 (service restart) through the connection, so
        that its teardown runs; a connection still in its handshake is dropped."""
        if self.connection is not None and not self.close_sent and not self.lost:
            task = self.loop.create_task(self.connection.close(1012, "server restarting"))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        elif not self.accepted:
            self.transport.close()
