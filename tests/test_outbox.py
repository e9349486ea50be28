"""Unit tests for vws.runtime.outbox.Outbox: a bounded send queue drained by one writer task."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import pytest

from vws.runtime.outbox import Outbox

TIMEOUT = 5.0


class FakeSocket:
    """Records what the writer sends; ``gate`` (when given) holds every send until it is set."""

    def __init__(self, gate: asyncio.Event | None = None, *, yields: bool = False) -> None:
        self.sent: list[str] = []
        self.gate = gate
        self.yields = yields
        #: Set once a send is waiting on the gate.
        self.waiting = asyncio.Event()
        #: Set each time a frame has been sent.
        self.progress = asyncio.Event()

    async def send(self, text: str) -> None:
        if self.gate is not None and not self.gate.is_set():
            self.waiting.set()
            await self.gate.wait()
        if self.yields:
            await asyncio.sleep(0)
        self.sent.append(text)
        self.progress.set()


class SlowCalls:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


def run(coroutine: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(coroutine, TIMEOUT))


def make(socket: FakeSocket, *, limit: int, drop_oldest: bool = False) -> tuple[Outbox, SlowCalls]:
    slow = SlowCalls()
    return Outbox(socket.send, limit=limit, drop_oldest=drop_oldest, on_slow=slow), slow


async def cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_frames_are_sent_in_order() -> None:
    async def main() -> None:
        socket = FakeSocket(yields=True)
        outbox, slow = make(socket, limit=1000)
        writer = asyncio.create_task(outbox.run())
        expected = [f"frame-{n}" for n in range(200)]
        for n, text in enumerate(expected):
            outbox.put(text)
            if n % 7 == 0:
                await asyncio.sleep(0)  # let the writer interleave with the producer
        outbox.close()
        await asyncio.wait_for(writer, TIMEOUT)
        assert socket.sent == expected
        assert slow.count == 0
        assert outbox.dropped == 0

    run(main())


def test_burst_before_the_writer_runs_is_all_delivered() -> None:
    async def main() -> None:
        socket = FakeSocket()
        outbox, slow = make(socket, limit=64)
        frames = [str(n) for n in range(300)]
        for text in frames:
            outbox.put(text)
        assert len(outbox) == 300  # queued past the limit: the writer is not stuck
        writer = asyncio.create_task(outbox.run())
        outbox.close()
        await asyncio.wait_for(writer, TIMEOUT)
        assert socket.sent == frames
        assert slow.count == 0
        assert outbox.dropped == 0

    run(main())


def test_burst_while_the_writer_is_idle_is_all_delivered() -> None:
    async def main() -> None:
        socket = FakeSocket()
        outbox, slow = make(socket, limit=64, drop_oldest=True)
        writer = asyncio.create_task(outbox.run())
        outbox.put("first")
        await asyncio.wait_for(socket.progress.wait(), TIMEOUT)
        assert socket.sent == ["first"]  # the writer drained it and is waiting again
        frames = [str(n) for n in range(300)]
        for text in frames:
            outbox.put(text)
        outbox.close()
        await asyncio.wait_for(writer, TIMEOUT)
        assert socket.sent == ["first", *frames]
        assert slow.count == 0
        assert outbox.dropped == 0

    run(main())


def test_disconnect_policy_gives_up_on_a_stuck_socket_once() -> None:
    async def main() -> None:
        gate = asyncio.Event()  # never set: the socket stopped draining
        socket = FakeSocket(gate)
        outbox, slow = make(socket, limit=4, drop_oldest=False)
        writer = asyncio.create_task(outbox.run())
        outbox.put("stuck")
        await asyncio.wait_for(socket.waiting.wait(), TIMEOUT)
        for n in range(4):
            outbox.put(f"queued-{n}")
        assert len(outbox) == 4
        assert slow.count == 0  # at the limit, not over it
        outbox.put("over")
        assert slow.count == 1
        assert outbox.closed
        assert len(outbox) == 0
        for n in range(10):
            outbox.put(f"after-{n}")
        assert slow.count == 1
        assert len(outbox) == 0
        assert outbox.dropped == 0
        assert socket.sent == []
        await cancel(writer)

    run(main())


def test_drop_oldest_keeps_the_newest_frames() -> None:
    async def main() -> None:
        gate = asyncio.Event()
        socket = FakeSocket(gate)
        outbox, slow = make(socket, limit=3, drop_oldest=True)
        writer = asyncio.create_task(outbox.run())
        outbox.put("in-flight")
        await asyncio.wait_for(socket.waiting.wait(), TIMEOUT)
        for n in range(10):
            outbox.put(str(n))
        assert len(outbox) == 3
        assert outbox.dropped == 7
        assert slow.count == 0
        assert not outbox.closed
        gate.set()  # the socket drains again
        outbox.close()
        await asyncio.wait_for(writer, TIMEOUT)
        assert socket.sent == ["in-flight", "7", "8", "9"]
        assert outbox.dropped == 7
        assert slow.count == 0

    run(main())


def test_close_flushes_queued_frames_then_run_returns() -> None:
    async def main() -> None:
        socket = FakeSocket(yields=True)
        outbox, _ = make(socket, limit=10)
        for text in ("a", "b", "c"):
            outbox.put(text)
        writer = asyncio.create_task(outbox.run())
        outbox.close()
        outbox.put("late")  # discarded: the outbox is closed
        await asyncio.wait_for(writer, TIMEOUT)
        assert socket.sent == ["a", "b", "c"]
        assert outbox.closed
        assert len(outbox) == 0

    run(main())


def test_close_wakes_an_idle_writer() -> None:
    async def main() -> None:
        socket = FakeSocket()
        outbox, _ = make(socket, limit=10)
        writer = asyncio.create_task(outbox.run())
        outbox.put("only")
        await asyncio.wait_for(socket.progress.wait(), TIMEOUT)
        await asyncio.sleep(0)
        assert not writer.done()  # waiting for more frames
        outbox.close()
        await asyncio.wait_for(writer, TIMEOUT)
        assert socket.sent == ["only"]

    run(main())


def test_close_while_a_send_is_pending_flushes_after_it() -> None:
    async def main() -> None:
        gate = asyncio.Event()
        socket = FakeSocket(gate)
        outbox, _ = make(socket, limit=10)
        writer = asyncio.create_task(outbox.run())
        outbox.put("1")
        await asyncio.wait_for(socket.waiting.wait(), TIMEOUT)
        outbox.put("2")
        outbox.close()
        assert not writer.done()
        gate.set()
        await asyncio.wait_for(writer, TIMEOUT)
        assert socket.sent == ["1", "2"]

    run(main())


def test_a_failing_send_ends_the_writer() -> None:
    async def main() -> None:
        async def broken(text: str) -> None:
            raise ConnectionResetError("gone")

        outbox = Outbox(broken, limit=4, drop_oldest=False, on_slow=SlowCalls())
        outbox.put("x")
        with pytest.raises(ConnectionResetError):
            await asyncio.wait_for(outbox.run(), TIMEOUT)

    run(main())


def test_a_frame_for_an_idle_writer_is_written_by_put_itself() -> None:
    async def main() -> None:
        socket = FakeSocket()
        outbox, _ = make(socket, limit=10)
        writer = asyncio.create_task(outbox.run())
        await asyncio.sleep(0)  # the writer is idle now
        outbox.put("now")
        assert socket.sent == ["now"]  # no turn of the loop was needed
        outbox.close()
        await asyncio.wait_for(writer, TIMEOUT)

    run(main())


def test_a_send_that_blocks_inside_put_is_finished_by_the_writer_in_order() -> None:
    async def main() -> None:
        gate = asyncio.Event()
        socket = FakeSocket(gate)
        outbox, slow = make(socket, limit=10)
        writer = asyncio.create_task(outbox.run())
        await asyncio.sleep(0)
        for text in ("1", "2", "3"):
            outbox.put(text)
        assert socket.sent == [] and len(outbox) == 2  # "1" is in flight, handed to the writer
        gate.set()
        outbox.close()
        await asyncio.wait_for(writer, TIMEOUT)
        assert socket.sent == ["1", "2", "3"]
        assert slow.count == 0

    run(main())


def test_the_policy_acts_when_a_send_blocked_inside_put() -> None:
    async def main() -> None:
        socket = FakeSocket(asyncio.Event())  # never drains
        outbox, slow = make(socket, limit=2)
        writer = asyncio.create_task(outbox.run())
        await asyncio.sleep(0)
        for text in ("stuck", "a", "b"):
            outbox.put(text)
        assert slow.count == 0
        outbox.put("over")
        assert slow.count == 1 and outbox.closed
        await cancel(writer)

    run(main())


def test_a_send_failing_inside_put_closes_the_outbox_and_ends_the_writer() -> None:
    async def main() -> None:
        async def broken(text: str) -> None:
            raise ConnectionResetError("gone")

        outbox = Outbox(broken, limit=4, drop_oldest=False, on_slow=SlowCalls())
        writer = asyncio.create_task(outbox.run())
        await asyncio.sleep(0)
        outbox.put("x")
        assert outbox.closed
        await asyncio.wait_for(writer, TIMEOUT)

    run(main())


def test_a_socket_that_takes_the_frame_now_is_written_without_its_coroutine() -> None:
    async def main() -> None:
        socket = FakeSocket()
        written: list[str] = []
        full = False

        def write(text: str) -> bool:
            if full:
                return False
            written.append(text)
            return True

        outbox = Outbox(socket.send, limit=4, drop_oldest=False, on_slow=SlowCalls(), write=write)
        writer = asyncio.get_running_loop().create_task(outbox.run())
        await asyncio.sleep(0)  # the writer goes idle
        outbox.put("a")
        assert (written, socket.sent) == (["a"], [])
        full = True  # the socket is full: the frame takes the coroutine path, in order
        outbox.put("b")
        outbox.put("c")
        outbox.close()
        await writer
        assert (written, socket.sent) == (["a"], ["b", "c"])

    run(main())
