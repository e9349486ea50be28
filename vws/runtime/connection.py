"""One accepted client's life: reading frames, answering them, writing, closing, tearing down.

The handshake (Origin, route lookup, middleware, ``vws_connect``) happens in
:mod:`vws.edge.websocket`, which hands an accepted client here. From then on the order is fixed:
the client is registered, told its id, the ``connect`` handler runs, and every frame is decoded,
checked, dispatched and acknowledged in turn. The socket is reached only through a
:class:`Socket`: vws's own WebSocket protocol under ``vws run`` (:mod:`vws.edge.transport`),
which pushes each message in as it is parsed, or ASGI's ``receive``/``send``
(:mod:`vws.runtime.asgi`), for ``vws.testing`` and for apps that mount vws.

A client's frames are handled one at a time, which is what keeps them in order. While an async
handler (or a join's hooks) is suspended, the connection is *busy*: the node's watchdog
(:meth:`vws.runtime.node.Server.watch`) cancels it past its timeout, answering
``handler_timeout``, and the socket watches for the client leaving, so that a client who leaves
is seen at once: its handler is cancelled and it is unregistered, instead of lingering in its
rooms until the handler returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine, MutableMapping
from time import perf_counter
from typing import Any, Protocol

import msgspec

from vws import logs
from vws.errors import USER_CODE_FAILURES, Deny, ProtocolError
from vws.hooks.calling import refusal_failed
from vws.protocol import (
    CLIENT_RESERVED,
    CLOSE_SLOW,
    JOIN_EVENTS,
    LEAVE_EVENTS,
    ROOM_EVENTS,
    InboundFrame,
    check_room,
    check_since,
    close_reason,
    decode_frame,
    encode_frame,
    error_frame,
)
from vws.routing import Callback, EventRoute
from vws.runtime.client import Client
from vws.runtime.node import Server
from vws.runtime.outbox import Outbox
from vws.runtime.stats import UNKNOWN

logger = logging.getLogger("vws.runtime.connection")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
#: ASGI send; an ``async def`` in every server, so calling it gives a coroutine
#: (see vws.runtime.outbox).
Send = Callable[[dict[str, Any]], Coroutine[Any, Any, None]]


class Socket(Protocol):
    """What a connection needs of the WebSocket under it."""

    async def accept(self) -> None:
        """Complete the handshake (HTTP 101)."""

    async def refuse(self, status: int) -> None:
        """Refuse the handshake with an HTTP status; the WebSocket never opens."""

    def send_text(self, text: str) -> Coroutine[Any, Any, None]:
        """Write one text frame: a coroutine that returns without suspending while the socket
        takes data, so that the outbox can step it by hand (see :mod:`vws.runtime.outbox`)."""
        ...

    async def close(self, code: int, reason: str) -> None:
        """Send the close frame (the caller bounds the wait with ``close_timeout``)."""

    async def serve(self, connection: Connection) -> None:
        """Hand every message to ``connection`` (:meth:`Connection.handle` or, for the native
        socket, :meth:`~Connection.decode` and :meth:`~Connection.dispatch`) until the client
        is gone or the connection stops; set ``connection.close_code``."""

    def watch(self, connection: Connection) -> None:
        """The connection is busy in a handler: make sure its client leaving is noticed."""


async def call(callback: Callback, *args: Any) -> Any:
    result = callback.function(*args)
    if callback.is_async:
        result = await result
    return result


def _cancelling() -> bool:
    """Whether the current task has been asked to stop (not a handler raising CancelledError)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


class Connection:
    """An accepted, registered client and the two tasks that move its frames."""

    def __init__(self, server: Server, client: Client, socket: Socket) -> None:
        self.server = server
        self.client = client
        self.socket = socket
        settings = server.table.config.server
        self.close_timeout = settings.close_timeout
        #: A socket that can write without a coroutine (the native one) offers ``write_text``.
        write: Callable[[str], bool] | None = getattr(socket, "write_text", None)
        self.outbox = Outbox(
            self._send_text,
            limit=settings.send_queue,
            drop_oldest=settings.slow_consumer == "drop_oldest",
            on_slow=self._on_slow,
            write=self._counted(write) if write is not None else None,
        )
        self.outbox.client = client
        client.outbox = self.outbox
        self.writer: asyncio.Task[None] | None = None
        self.reader: asyncio.Task[Any] | None = None
        #: The task running the current handler: the reader, or a task of the native socket's.
        self.handling: asyncio.Task[Any] | None = None
        #: Closes the socket of a client given up on as a slow consumer.
        self.closer: asyncio.Task[None] | None = None
        self.close_code = 1005
        #: Done once the close frame is sent or given up on, or the client is gone. A future
        #: rather than an Event: an idle connection should not carry an Event's waiter deque.
        self._closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._stopping = False
        #: perf_counter() by which the running handler must finish; 0.0 while not busy.
        self.deadline = 0.0
        #: The seconds that deadline allowed, for the client's error message.
        self.timeout = 0.0
        #: Set just before the reader is cancelled: "timeout" (the watchdog) or "departed".
        self._interrupt: str | None = None
        # The message rate limit: a token bucket, and the refusals since the last message let in.
        route = server.table.routes.get(client.path)
        self.rate = route.rate if route is not None else 0.0
        self.burst = route.burst if route is not None else 1
        self._tokens = float(self.burst)
        self._refilled = perf_counter()
        self._refusals = 0
        self.max_fanout = settings.max_fanout
        self.slow_handler = settings.slow_handler

    def _send_text(self, text: str) -> Coroutine[Any, Any, None]:
        """The socket's send of one text frame, returned rather than awaited here: the outbox
        steps it directly, one coroutine layer fewer per frame (see :mod:`vws.runtime.outbox`)."""
        self.server.stats.written += 1
        return self.socket.send_text(text)

    def _counted(self, write: Callable[[str], bool]) -> Callable[[str], bool]:
        """The socket's immediate write (see :class:`~vws.runtime.outbox.Outbox`), counted."""
        stats = self.server.stats

        def write_text(text: str) -> bool:
            if write(text):
                stats.written += 1
                return True
            return False

        return write_text

    async def run(self, on_connect: Callback | None) -> None:
        server, client = self.server, self.client
        self.reader = self.handling = asyncio.current_task()
        self.writer = asyncio.get_running_loop().create_task(self._write())
        server.connections[client.client_id] = self
        server.hub.register(client.client_id, client.path, self.outbox)
        server.stats.connections_opened += 1
        logs.event(logger, "connect", client=client.client_id, path=client.path)
        self.outbox.put(
            encode_frame(
                "connected", {"client_id": client.client_id, "session_id": client.client_id}
            )
        )
        try:
            if on_connect is not None:
                self._busy(self._route_timeout())
                try:
                    await self._observe(on_connect, "connect")
                except asyncio.CancelledError:
                    if self._interrupted() != "timeout":
                        raise
                    logger.warning("connect handler %s timed out", on_connect.reference)
                finally:
                    self._idle()
            await self.socket.serve(self)
        except asyncio.CancelledError:
            if not self._stopping:
                raise
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
        finally:
            await self._teardown()

    async def _write(self) -> None:
        try:
            await self.outbox.run()
        except Exception:  # the socket is gone; the reader hears of it from the server
            self.outbox.close()

    def too_big(self, text: str) -> bool:
        """Whether a message is over ``max_message_bytes`` (the socket closes with 1009)."""
        limit = self.server.table.config.server.max_message_bytes
        return len(text) > limit // 4 and len(text.encode()) > limit

    def binary(self) -> None:
        """A binary message arrived: vws speaks JSON text only."""
        self._error("bad_frame", "binary frames are not supported: send JSON text", None)

    @property
    def stopping(self) -> bool:
        """The close frame could not be sent: stop reading, the socket is being dropped."""
        return self.client.closing and self._stopping

    async def handle(self, text: str) -> None:
        """Handle one text frame: decode, refuse or dispatch, then acknowledge or report."""
        frame = self.decode(text)
        if frame is not None:
            await self.dispatch(frame)

    def decode(self, text: str) -> InboundFrame | None:
        """The frame in ``text``; None when it was answered with an error already."""
        try:
            frame = decode_frame(text)
        except ProtocolError as error:
            self.server.stats.message(self.client.path, UNKNOWN)
            self._error(error.code, error.message, error.frame_id)
            return None
        self.server.stats.message(self.client.path, frame.event)
        if self.rate and not self._take():
            self._rate_limited(frame)
            return None
        return frame

    def _take(self) -> bool:
        """One token from the bucket, refilled at ``rate`` per second up to ``burst``."""
        now = perf_counter()
        tokens = min(self.burst, self._tokens + (now - self._refilled) * self.rate)
        self._refilled = now
        if tokens < 1.0:
            self._tokens = tokens
            return False
        self._tokens = tokens - 1.0
        self._refusals = 0
        return True

    def _rate_limited(self, frame: InboundFrame) -> None:
        """Refuse a message over the rate; close a client that keeps going (1008)."""
        self._error("rate_limited", f"over {self.rate:g} messages a second", frame.id)
        self._refusals += 1
        if self._refusals == self.burst:
            logs.event(logger, "rate_limited", logging.WARNING, client=self.client.client_id)
            self.closer = asyncio.get_running_loop().create_task(
                self.close(CLOSE_SLOW, "rate limit exceeded")
            )

    def immediate(self, frame: InboundFrame) -> bool:
        """Whether handling ``frame`` cannot suspend: a plain ``def`` handler, no join or
        leave, no ``vws_message`` or async ``vws_refused`` hooks. The native socket then runs
        :meth:`dispatch` inside the callback that parsed the frame, with no task at all."""
        hooks = self.server.hooks
        if hooks.message or hooks.async_refused or frame.event in ROOM_EVENTS:
            return False
        route = self.server.table.routes.get(self.client.path)
        target = route.events.get(frame.event) if route is not None else None
        return target is None or not (target.handler.is_async or target.thread)

    async def dispatch(self, frame: InboundFrame) -> None:
        """Refuse or run one decoded frame, then acknowledge or report."""
        server, client = self.server, self.client
        event, frame_id = frame.event, frame.id
        #: After a resuming join: lets the live frames held meanwhile follow the ack.
        release: Callable[[], None] | None = None
        try:
            if event in CLIENT_RESERVED:
                raise ProtocolError("reserved_event", f"{event!r} is reserved and cannot be sent")
            if server.hooks.message:
                self._busy(self._route_timeout())
                await self._message_hooks(event, frame.payload)
            if event in JOIN_EVENTS:
                room = check_room(frame.room, frame)
                since = check_since(frame.since)
                self._busy(self._route_timeout())
                result, release = await server.join_asked(client, room, since)
            elif event in LEAVE_EVENTS:
                room = check_room(frame.room, frame)
                self._busy(self._route_timeout())
                await server.leave(client, room, "asked")
                result = {"room": room}
            else:
                target, payload = self._target(event, frame.payload)
                handler = target.handler
                started = perf_counter()
                client.fanout_budget = self.max_fanout
                try:
                    if target.thread:  # a def handler the route runs off the event loop
                        self._busy(target.timeout, started)
                        result = await asyncio.to_thread(handler.function, client, payload)
                    else:
                        result = handler.function(client, payload)
                        if handler.is_async:
                            self._busy(target.timeout, started)
                            result = await result
                finally:
                    client.fanout_budget = None
                    took = perf_counter() - started
                    server.stats.handled(client.path, event, took)
                    if took > self.slow_handler and not (handler.is_async or target.thread):
                        server.held_the_loop(client.path, event, handler.reference, took)
        except ProtocolError as error:
            self._error(error.code, error.message, frame_id)
        except Deny as deny:
            self._error(deny.error_code, deny.reason, frame_id)
            await server.hooks.observe(
                "vws_refused",
                client=client,
                action="message",
                target=event,
                code=deny.error_code,
                reason=deny.reason,
            )
        except asyncio.CancelledError:
            reason = self._interrupted()
            if reason == "timeout":
                self._timed_out(event, frame_id)
            elif reason is None and not _cancelling():
                self._failed(event, frame_id)  # the handler raised CancelledError itself
            else:
                raise  # the client left, or the server is stopping
        except USER_CODE_FAILURES:
            self._failed(event, frame_id)
        else:
            if frame_id is not None:
                try:
                    ack = encode_frame("ack", result, frame_id)
                except TypeError:
                    logger.exception("handler for %r returned a value JSON cannot carry", event)
                    self._error("handler_error", f"the handler for {event!r} failed", frame_id)
                    return
                server.fanout.send_own(client.client_id, ack)
        finally:
            if release is not None:
                release()
            if self.deadline:
                self._idle()

    def _failed(self, event: str, frame_id: int | str | None) -> None:
        """A handler raised: log it with its traceback, tell the client ``handler_error``."""
        message = f"the handler for {event!r} failed"
        self._handler_fault("handler_error", message, event, frame_id, logging.ERROR, exc_info=True)

    def _timed_out(self, event: str, frame_id: int | str | None) -> None:
        timeout = self.timeout
        message = f"the handler for {event!r} did not finish within {timeout:g} s"
        self._handler_fault(
            "handler_timeout", message, event, frame_id, logging.WARNING, timeout=timeout
        )

    def _handler_fault(
        self,
        code: str,
        message: str,
        event: str,
        frame_id: int | str | None,
        level: int,
        **fields: Any,
    ) -> None:
        """Log a handler's failure as ``code``, count it, and tell the client."""
        path = self.client.path
        logs.event(logger, code, level, path=path, frame_event=event, **fields)
        self.server.stats.failed(path, event)
        self._error(code, message, frame_id)

    def _route_timeout(self) -> float:
        table = self.server.table
        route = table.routes.get(self.client.path)
        return route.timeout if route is not None else table.config.server.handler_timeout

    def _busy(self, timeout: float, started: float | None = None) -> None:
        """Mark the reader as waiting on a handler or hooks, for the watchdog to oversee."""
        self.timeout = timeout
        self.deadline = (perf_counter() if started is None else started) + timeout
        self.server.busy.add(self)

    def _idle(self) -> None:
        self.deadline = 0.0
        self.server.busy.discard(self)
        if self._interrupt == "timeout":  # the handler swallowed the cancel and returned
            self._interrupted()

    def _interrupted(self) -> str | None:
        """Why the watchdog cancelled the reader (None: it did not), with the cancel undone
        for a timeout, so that the reader goes on to the next frame."""
        reason, self._interrupt = self._interrupt, None
        if reason == "timeout":
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
        return reason

    def oversee(self, now: float) -> None:
        """The watchdog's look at a busy connection: cancel it past its deadline, and read
        ahead so that a departure is noticed while the handler is still running."""
        if self.handling is None or self._interrupt is not None or not self.deadline:
            return
        if now >= self.deadline:
            self._interrupt = "timeout"
            self.handling.cancel()
        else:
            self.socket.watch(self)

    def departed(self, code: int) -> None:
        """The socket saw the client leave while a handler runs: stop the handler now."""
        self.close_code = code
        if self.deadline and self.handling is not None and self._interrupt is None:
            self._interrupt = "departed"
            self._stopping = True
            self.handling.cancel()

    async def _message_hooks(self, event: str, payload: Any) -> None:
        try:
            await self.server.hooks.call(
                "vws_message", client=self.client, event=event, payload=payload
            )
        except Deny:
            raise
        except USER_CODE_FAILURES as error:
            refusal_failed(error, "the frame is refused", logger)
            raise Deny("refused by a plugin") from None

    def _target(self, event: str, payload: Any) -> tuple[EventRoute, Any]:
        """The handler of ``event`` on this client's route, and the payload it is given.

        A plain function rather than a coroutine: :meth:`dispatch` calls the handler itself, so
        a frame costs no coroutine beyond ``dispatch``'s own (and the handler's, if async).

        Raises:
            ProtocolError: ``unknown_event``, or ``invalid_payload`` when the schema refuses it.
        """
        route = self.server.table.routes.get(self.client.path)
        target = route.events.get(event) if route is not None else None
        if target is None:
            raise ProtocolError("unknown_event", f"no handler for {event!r} on {self.client.path}")
        if target.schema is not None:
            try:
                payload = msgspec.convert(payload, target.schema)
            except msgspec.ValidationError as exc:
                raise ProtocolError("invalid_payload", str(exc)) from None
        return target, payload

    def _error(self, code: str, message: str, frame_id: int | str | None) -> None:
        self.server.stats.error(self.client.path, code)
        self.server.fanout.send_own(self.client.client_id, error_frame(code, message, frame_id))

    async def _observe(self, callback: Callback, name: str) -> None:
        try:
            await call(callback, self.client)
        except USER_CODE_FAILURES:
            logger.exception("%s handler %s raised", name, callback.reference)

    def _on_slow(self) -> None:
        """The socket stopped draining and the queue is full: give up on this client now."""
        logger.warning(
            "client %s on %s is not reading: closing with 1008",
            self.client.client_id,
            self.client.path,
        )
        self.client.closing = True
        self.server.stats.slow_consumers += 1
        loop = asyncio.get_running_loop()
        # Unregistering now could change a room while its delivery loop is iterating it.
        loop.call_soon(self._unregister)
        if self.writer is not None:
            self.writer.cancel()
        self.closer = loop.create_task(self._close_socket(CLOSE_SLOW, "slow consumer"))

    async def close(self, code: int, reason: str = "") -> None:
        """Send what is queued, then the close frame; give up on a socket that will not drain."""
        if self.client.closing:
            await asyncio.shield(self._closed)
            return
        self.client.closing = True
        self.outbox.close()
        if self.writer is not None:
            done, _ = await asyncio.wait([self.writer], timeout=self.close_timeout)
            if not done:
                self.writer.cancel()
        await self._close_socket(code, reason)

    async def _close_socket(self, code: int, reason: str) -> None:
        self.close_code = code
        try:
            await asyncio.wait_for(
                self.socket.close(code, close_reason(reason)), self.close_timeout
            )
        except (TimeoutError, Exception):
            # The close frame could not be written: stop reading; the server drops the socket.
            self._stopping = True
            if self.reader is not None and self.reader is not asyncio.current_task():
                self.reader.cancel()
        finally:
            self._mark_closed()

    def _mark_closed(self) -> None:
        if not self._closed.done():
            self._closed.set_result(None)

    def _unregister(self) -> None:
        client = self.client
        if self.server.connections.get(client.client_id) is self:
            del self.server.connections[client.client_id]
            self.server.hub.unregister(client.client_id, client.path, client._rooms)

    async def _teardown(self) -> None:
        client, server = self.client, self.server
        client.closing = True
        self._idle()
        self.outbox.close()
        if self.writer is not None and not self.writer.done():
            self.writer.cancel()
        rooms = sorted(client._rooms)
        self._unregister()
        client._rooms.clear()
        self._mark_closed()
        for room in rooms:
            await server.hooks.observe(
                "vws_left_room", client=client, room=room, reason="disconnect"
            )
        logs.event(
            logger, "disconnect", client=client.client_id, path=client.path, code=self.close_code
        )
        await server.hooks.observe("vws_disconnect", client=client, code=self.close_code)
        route = server.table.routes.get(client.path)
        if route is not None and route.on_disconnect is not None:
            await self._observe(route.on_disconnect, "disconnect")
        if self.writer is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self.writer
