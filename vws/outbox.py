"""A client's bounded send queue, drained by one writer task.

Handlers never wait on a socket: sending appends a pre-encoded frame here and returns. The
writer task moves frames to the socket one after another, so frames reach a client in the
order they were queued.

The slow-consumer policy acts only on a client whose socket has stopped draining: when the
queue holds ``limit`` frames *and* the writer is stuck waiting for the socket to accept more.
A burst queued by code running on the event loop (a handler sending 300 frames at once) grows
the queue past ``limit`` without harm, because the writer is not stuck: it simply has not run
yet, and it drains the burst as soon as the loop turns.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable


class Outbox:
    """Frames waiting for one client's socket."""

    __slots__ = (
        "_blocked",
        "_closed",
        "_drop_oldest",
        "_frames",
        "_limit",
        "_on_slow",
        "_send",
        "_waiter",
        "dropped",
    )

    def __init__(
        self,
        send: Callable[[str], Awaitable[None]],
        *,
        limit: int,
        drop_oldest: bool,
        on_slow: Callable[[], None],
    ) -> None:
        """
        Args:
            send: writes one text frame to the socket, waiting while the socket is full.
            limit: frames queued before the policy may act.
            drop_oldest: the policy; True drops the oldest queued frame, False gives up on
                the client and calls ``on_slow``.
            on_slow: called once, synchronously, when the client is given up on.
        """
        self._frames: deque[str] = deque()
        self._send = send
        self._limit = limit
        self._drop_oldest = drop_oldest
        self._on_slow = on_slow
        self._waiter: asyncio.Future[None] | None = None
        self._blocked = False
        self._closed = False
        #: Frames discarded by the ``drop_oldest`` policy.
        self.dropped = 0

    def put(self, text: str) -> None:
        """Queue one frame; never waits. Frames after :meth:`close` are discarded."""
        if self._closed:
            return
        frames = self._frames
        if self._blocked and len(frames) >= self._limit:
            if not self._drop_oldest:
                self._closed = True
                frames.clear()
                self._wake()
                self._on_slow()
                return
            frames.popleft()
            self.dropped += 1
        frames.append(text)
        self._wake()

    def close(self) -> None:
        """Accept no more frames; the writer stops once what is queued has been written."""
        self._closed = True
        self._wake()

    @property
    def closed(self) -> bool:
        return self._closed

    def __len__(self) -> int:
        return len(self._frames)

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    async def run(self) -> None:
        """The writer task: write frames until closed and empty, or until the socket fails."""
        frames = self._frames
        send = self._send
        loop = asyncio.get_running_loop()
        while True:
            if not frames:
                if self._closed:
                    return
                self._waiter = loop.create_future()
                await self._waiter
                continue
            text = frames.popleft()
            # Only seen as True by another task while ``send`` waits for the socket: a send
            # that the socket accepts at once completes without yielding to the loop.
            self._blocked = True
            try:
                await send(text)
            finally:
                self._blocked = False
