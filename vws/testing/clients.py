"""The test clients of vws.testing: frames in, waits with timeouts, errors that list what came."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    pass

#: Seconds a client waits for a frame, a reply or a close, unless told otherwise.
DEFAULT_TIMEOUT = 2.0
#: Seconds :meth:`TestClient.refute` watches a live client (an in-process one needs no wait).
LIVE_REFUTE_WINDOW = 0.2

Frame = dict[str, Any]
Match = Mapping[str, Any] | Callable[[Any], bool] | Any

_frame_ids = itertools.count(1)
_client_ports = itertools.count(50000)


class Refused(Exception):
    """The server refused the connection: ``code`` is the close code (403 for an HTTP 403)."""

    def __init__(self, code: int, reason: str = "") -> None:
        super().__init__(f"connection refused with {code}{f': {reason}' if reason else ''}")
        self.code = code
        self.reason = reason


class ErrorReply(Exception):
    """A :meth:`TestClient.request` was answered with an ``error`` frame."""

    def __init__(self, frame: Frame) -> None:
        payload = frame.get("payload") or {}
        self.code: str = payload.get("code", "")
        self.message: str = payload.get("message", "")
        self.frame = frame
        super().__init__(f"{self.code}: {self.message}")


class FrameTimeout(AssertionError):
    """Nothing matching arrived in time; the message lists what did arrive."""


def matches(value: Any, match: Match) -> bool:
    """Whether ``value`` fits ``match``: a callable is asked, a mapping must be a subset
    (recursively), anything else must be equal. ``None`` matches everything."""
    if match is None:
        return True
    if callable(match):
        return bool(match(value))
    if isinstance(match, Mapping):
        return isinstance(value, Mapping) and all(
            key in value and matches(value[key], expected) for key, expected in match.items()
        )
    return bool(value == match)


class TestClient:
    """One connected client of a test, in-process or over a real socket.

    Received frames wait in a mailbox: :meth:`expect` and :meth:`request` take the first frame
    that fits and leave the others for later calls. ``frames`` keeps every frame received.
    """

    __test__ = False  # not a pytest test class

    def __init__(self, name: str, timeout: float) -> None:
        self.name = name
        self.timeout = timeout
        #: The client id from the ``connected`` frame.
        self.id = ""
        #: Every frame received after ``connected``, in order.
        self.frames: list[Frame] = []
        self._mailbox: list[Frame] = []
        self._arrived = asyncio.Event()
        #: The close code once the connection is closed (by either side), else None.
        self.close_code: int | None = None
        self.close_reason = ""
        self._send_text: Callable[[str], Awaitable[None]] | None = None
        self._close: Callable[[int], Awaitable[None]] | None = None
        self._settle: Callable[[float], Awaitable[None]] | None = None

    def __repr__(self) -> str:
        return f"<TestClient {self.name} {self.id or '(not connected)'}>"

    # What the transports call.

    def _on_text(self, text: str) -> None:
        frame = json.loads(text)
        if not self.id and frame.get("event") == "connected":
            self.id = frame["payload"]["client_id"]
        else:
            self.frames.append(frame)
            self._mailbox.append(frame)
        self._arrived.set()

    def _on_close(self, code: int, reason: str = "") -> None:
        if self.close_code is None:
            self.close_code = code
            self.close_reason = reason
        self._arrived.set()

    # Sending.

    async def send(
        self,
        event: str,
        payload: Any = None,
        *,
        room: str | None = None,
        id: int | str | None = None,
    ) -> None:
        """Send one frame and return at once (nothing is awaited from the server)."""
        frame: Frame = {"event": event, "payload": payload}
        if room is not None:
            frame["room"] = room
        if id is not None:
            frame["id"] = id
        await self.send_raw(json.dumps(frame))

    async def send_raw(self, text: str) -> None:
        """Send a text frame as is (to test what a malformed frame gets)."""
        assert self._send_text is not None
        if self.close_code is not None:
            raise AssertionError(f"{self.name} is closed ({self.close_code}): cannot send")
        await self._send_text(text)

    async def request(
        self,
        event: str,
        payload: Any = None,
        *,
        room: str | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Send a frame with a fresh id and wait for its answer; the ``ack`` payload.

        Raises:
            ErrorReply: the answer was an ``error`` frame (``.code``, ``.message``).
            FrameTimeout: no answer in time.
        """
        __tracebackhide__ = True
        frame_id = next(_frame_ids)
        await self.send(event, payload, room=room, id=frame_id)
        reply = await self._take(
            lambda f: f.get("id") == frame_id and f.get("event") in ("ack", "error"),
            f"the answer to {event!r} (id {frame_id})",
            timeout,
        )
        if reply["event"] == "error":
            raise ErrorReply(reply)
        return reply.get("payload")

    async def join(self, room: str, *, timeout: float | None = None) -> Any:
        """Join ``room`` (``joinRoom``), waiting for the ack."""
        return await self.request("joinRoom", room=room, timeout=timeout)

    async def leave(self, room: str, *, timeout: float | None = None) -> Any:
        """Leave ``room`` (``leftRoom``), waiting for the ack."""
        return await self.request("leftRoom", room=room, timeout=timeout)

    # Receiving.

    async def expect(self, event: str, match: Match = None, *, timeout: float | None = None) -> Any:
        """Wait for a frame of ``event`` whose payload fits ``match``; its payload.

        ``match`` is a dict that must be a subset of the payload, a value it must equal, or a
        callable given the payload.
        """
        __tracebackhide__ = True
        frame = await self._take(
            lambda f: f.get("event") == event and matches(f.get("payload"), match),
            _describe(event, match),
            timeout,
        )
        return frame.get("payload")

    async def expect_error(self, code: str, *, timeout: float | None = None) -> Frame:
        """Wait for an ``error`` frame with ``code``; its payload (code and message)."""
        __tracebackhide__ = True
        payload: Frame = await self.expect("error", {"code": code}, timeout=timeout)
        return payload

    async def refute(self, event: str, match: Match = None, *, within: float | None = None) -> None:
        """Fail if a frame of ``event`` fitting ``match`` arrived, or arrives while the app works.

        An in-process client first waits until the app is idle (every handler done, every queue
        drained), so no time is guessed; ``within`` adds a wait for timers. A live client waits
        ``within`` seconds (0.2 by default).
        """
        __tracebackhide__ = True
        if self._settle is not None:
            await self._settle(self.timeout)
            if within:
                await asyncio.sleep(within)
                await self._settle(self.timeout)
        else:
            await asyncio.sleep(LIVE_REFUTE_WINDOW if within is None else within)
        found = [
            f for f in self._mailbox if f.get("event") == event and matches(f.get("payload"), match)
        ]
        if found:
            raise AssertionError(
                f"{self.name} received {_describe(event, match)}, which it should not have:\n"
                f"{_listing(found)}"
            )

    async def wait_closed(self, *, timeout: float | None = None) -> int:
        """Wait until the server closes the connection; the close code."""
        __tracebackhide__ = True
        limit = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        while self.close_code is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise FrameTimeout(
                    f"{self.name} waited {limit} s for the server to close; "
                    f"received so far:\n{_listing(self.frames)}"
                )
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                continue
        return self.close_code

    async def close(self, code: int = 1000) -> None:
        """Close from the client side and wait until the server has let go of the client."""
        if self.close_code is None and self._close is not None:
            await self._close(code)

    @property
    def pending(self) -> list[Frame]:
        """Frames received and not yet taken by :meth:`expect` or :meth:`request`."""
        return list(self._mailbox)

    async def _take(self, fits: Callable[[Frame], bool], what: str, timeout: float | None) -> Frame:
        __tracebackhide__ = True
        limit = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        while True:
            for index, frame in enumerate(self._mailbox):
                if fits(frame):
                    del self._mailbox[index]
                    return frame
            if self.close_code is not None:
                raise FrameTimeout(
                    f"{self.name} was closed ({self.close_code} {self.close_reason!r}) while "
                    f"waiting for {what}; received so far:\n{_listing(self.frames)}"
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise FrameTimeout(
                    f"{self.name} waited {limit} s for {what}; received so far:\n"
                    f"{_listing(self.frames)}"
                )
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                continue


def _describe(event: str, match: Match) -> str:
    if match is None:
        return f"a {event!r} frame"
    if callable(match):
        return f"a {event!r} frame accepted by {getattr(match, '__name__', match)!r}"
    return f"a {event!r} frame matching {match!r}"


def _listing(frames: list[Frame]) -> str:
    if not frames:
        return "  (nothing)"
    return "\n".join(f"  {index}. {json.dumps(frame)}" for index, frame in enumerate(frames, 1))
