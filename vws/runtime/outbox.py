"""A client's bounded send queue, drained by one writer task.

Handlers never wait on a socket: sending appends a pre-encoded frame here and returns. The
writer task moves frames to the socket one after another, so frames reach a client in the
order they were queued.

The slow-consumer policy acts only on a client whose socket has stopped draining: when the
queue holds ``limit`` frames *and* the writer is stuck waiting for the socket to accept more.
A burst queued by code running on the event loop (a handler sending 300 frames at once) grows
the queue past ``limit`` without harm, because the writer is not stuck: it simply has not run
yet, and it drains the burst as soon as the loop turns.

Writing without a task switch: when the writer is idle (nothing queued, no send in flight),
:meth:`Outbox.put` writes the frame itself, in the caller's task, instead of waking the writer.
Waking it would cost a future, a loop callback and a task step per frame, which is most of what
a fan-out to idle clients costs besides the socket write itself. The ASGI ``send`` is a
coroutine, but one that returns without suspending whenever the socket has room, so ``put``
steps it once by hand: if it finishes, the frame is written; if it suspends (the socket is
full), the writer task takes the half-done send over, finishes it, and everything queued after
it follows in order. Python 3.12's eager tasks do the same; vws supports 3.11.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

#: A send that suspended inside :meth:`Outbox.put`: its coroutine and what it yielded.
Suspended = tuple[Coroutine[Any, Any, None], Any]


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
        "_sending",
        "_suspended",
        "_waiter",
        "_write",
        "client",
        "dropped",
    )

    def __init__(
        self,
        send: Callable[[str], Coroutine[Any, Any, None]],
        *,
        limit: int,
        drop_oldest: bool,
        on_slow: Callable[[], None],
        write: Callable[[str], bool] | None = None,
    ) -> None:
        """
        Args:
            send: writes one text frame to the socket, waiting while the socket is full.
            write: writes one text frame if the socket takes it now, and says whether it did
                (a plain call, cheaper than stepping ``send``'s coroutine); None: only ``send``.
            limit: frames queued before the policy may act.
            drop_oldest: the policy; True drops the oldest queued frame, False gives up on
                the client and calls ``on_slow``.
            on_slow: called once, synchronously, when the client is given up on.
        """
        self._frames: deque[str] = deque()
        #: The client this outbox serves, for the hooks that decide per receiver (set by the
        #: connection; the fan-out's plain path never reads it).
        self.client: Any = None
        self._send = send
        self._write = write
        self._limit = limit
        self._drop_oldest = drop_oldest
        self._on_slow = on_slow
        self._waiter: asyncio.Future[None] | None = None
        self._blocked = False
        self._closed = False
        #: True while ``put`` is stepping a send: a re-entrant ``put`` must queue behind it.
        self._sending = False
        self._suspended: Suspended | None = None
        #: Frames discarded by the ``drop_oldest`` policy.
        self.dropped = 0

    def put(self, text: str) -> None:
        """Queue one frame, or write it at once if the writer is idle; never waits.

        Frames after :meth:`close` are discarded.
        """
        if self._closed:
            return
        if self._waiter is not None and not self._sending:
            self._write_now(text)  # the writer is idle: nothing is queued or in flight
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

    def _write_now(self, text: str) -> None:
        """Write one frame from the caller's task; hand it to the writer if the socket is full."""
        write = self._write
        if write is not None:
            try:
                if write(text):
                    return  # written: the usual case
            except Exception:
                self._fail()
                return
        coroutine = self._send(text)
        self._sending = True
        try:
            yielded = coroutine.send(None)
        except StopIteration:
            return  # written: the usual case
        except Exception:
            self._fail()  # the socket is gone; the reader hears of it from the server
            return
        finally:
            self._sending = False
        # Stuck on a full socket: the writer finishes this send before anything queued after it.
        self._suspended = (coroutine, yielded)
        self._blocked = True
        self._wake()

    def _fail(self) -> None:
        self._closed = True
        self._frames.clear()
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
            suspended = self._suspended
            if suspended is not None:
                self._suspended = None
                try:
                    await finish(*suspended)
                finally:
                    self._blocked = False
                continue
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


async def finish(coroutine: Coroutine[Any, Any, None], yielded: Any) -> None:
    """Drive a coroutine that suspended in :meth:`Outbox.put` to its end, as a task would.

    Each time it yields a future, wait until that future is done (whatever its outcome) and
    resume the coroutine, which reads the outcome itself; a bare ``yield`` (``sleep(0)``) just
    gets a turn of the loop. Raises what the coroutine raises.
    """
    try:
        while True:
            # A future-like object carries ``_asyncio_future_blocking``, as asyncio's Task checks.
            if getattr(yielded, "_asyncio_future_blocking", None) is not None:
                yielded._asyncio_future_blocking = False
                await asyncio.wait((yielded,))
            else:
                await asyncio.sleep(0)
            try:
                yielded = coroutine.send(None)
            except StopIteration:
                return
    finally:
        coroutine.close()
