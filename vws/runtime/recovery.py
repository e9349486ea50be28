"""Joining a room that keeps a history: what the client missed, then the live frames, with no
gap and no duplicate at the seam between the two.

The seam is the hard part. The client becomes a member first, so that nothing published from
then on can pass it by; but its live frames must not reach the socket before the replay of
what it missed. So a :class:`Holding` stands in the room for the client's outbox while the
history is read: live frames wait there with their offsets.

Where the client then stands (:meth:`Holding.position`): after a recovery, at the end of the
replay. Otherwise just before the first live frame it got, or, when none came yet, at the
room's position as read. Once the replay is queued and the join acknowledged, the holding lets
through only the frames after that position. Frames the broker positioned before the read may
still be on their way to this node after it, so the holding keeps standing in the room,
dropping those, until the first frame after the position arrives; then it gives the room the
client's outbox, and live frames flow as for any member.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec

from vws.backplane import Position

if TYPE_CHECKING:
    from vws.runtime.client import Client


class _Positioned(msgspec.Struct):
    offset: int = 0
    epoch: str = ""


_positions = msgspec.json.Decoder(_Positioned)


class Holding:
    """Stands in a room for a joining client's outbox while the room's history is read, then
    filters out what the client has already, until the live frames catch up."""

    __slots__ = ("_after", "_deliver", "_settle", "client", "frames")

    def __init__(self, client: Client) -> None:
        #: The client, for the per-receiver hooks (as an outbox has it).
        self.client = client
        #: (offset, epoch, text) of each live frame that arrived while the history was read.
        self.frames: list[tuple[int, str, str]] = []
        self._after: Position | None = None
        self._deliver: Callable[[str], None] | None = None
        self._settle: Callable[[], None] | None = None

    def position(self, read: Position, recovered: bool) -> Position:
        """Where the client stands once the join is acknowledged, given the room's position as
        the history read found it (and the replay, when ``recovered``, brought it to)."""
        positioned = [(offset, epoch) for offset, epoch, _ in self.frames if epoch]
        if recovered or not positioned:
            return read
        offset, epoch = positioned[0]
        return Position(offset - 1, epoch)

    def put(self, text: str) -> None:
        found = _read(text)
        if self._deliver is None:
            self.frames.append((found.offset, found.epoch, text))
        else:
            self._pass(found.offset, found.epoch, text)

    def release(
        self,
        after: Position | None,
        deliver: Callable[[str], None],
        settle: Callable[[], None],
    ) -> None:
        """From now on give ``deliver`` the frames after ``after`` (every frame when None),
        the held ones first; once one has passed, call ``settle`` (which gives the room the
        client's outbox in this holding's place)."""
        self._after, self._deliver, self._settle = after, deliver, settle
        held, self.frames = self.frames, []
        if after is None:
            for _, _, text in held:
                deliver(text)
            settle()
            return
        for offset, epoch, text in held:
            self._pass(offset, epoch, text)

    def _pass(self, offset: int, epoch: str, text: str) -> None:
        after = self._after
        if after is not None and epoch and epoch == after.epoch and offset <= after.offset:
            return  # the replay carried it, or it is from before where the client stands
        assert self._deliver is not None and self._settle is not None
        self._deliver(text)
        if self._after is not None and epoch:  # (a frame without position, of an event in
            # history_skip, says nothing of where the positioned ones have got to)
            self._after = None  # live frames have caught up: they come in order from here
            self._settle()


def _read(text: str) -> _Positioned:
    try:
        return _positions.decode(text)
    except msgspec.DecodeError:
        return _Positioned()


def acknowledgement(
    room: str, asked: bool, recovered: bool, position: Position | None
) -> dict[str, Any]:
    """The payload of a ``joinRoom`` ack: the room; ``recovered`` when the client sent
    ``since``; and the position the client stands at, when the room keeps a history and the
    broker could tell it."""
    answer: dict[str, Any] = {"room": room}
    if asked:
        answer["recovered"] = recovered
    if position is not None:
        answer["offset"] = position.offset
        answer["epoch"] = position.epoch
    return answer
