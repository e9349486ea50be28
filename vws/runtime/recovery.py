"""Joining a room that keeps a history: what the client missed, then the live frames, with no
gap and no duplicate at the seam between the two.

The seam is the hard part. The client becomes a member first, so that nothing published from
then on can pass it by; but its live frames must not reach the socket before the replay of
what it missed. So a :class:`Holding` stands in the room for the client's outbox while the
history is read: live frames wait there with their offsets. Once the replay is queued and the
join acknowledged, the held frames the replay already carried are dropped, the rest follow in
order, and the outbox takes the holding's place in the room.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

from vws.backplane import Position, Recovery

if TYPE_CHECKING:
    from vws.runtime.client import Client


class _Positioned(msgspec.Struct):
    offset: int = 0
    epoch: str = ""


_positions = msgspec.json.Decoder(_Positioned)


class Holding:
    """Stands in a room for a joining client's outbox while the room's history is read."""

    __slots__ = ("client", "frames")

    def __init__(self, client: Client) -> None:
        #: The client, for the per-receiver hooks (as an outbox has it).
        self.client = client
        #: (offset, epoch, text) of each live frame that arrived meanwhile, in order.
        self.frames: list[tuple[int, str, str]] = []

    def put(self, text: str) -> None:
        try:
            found = _positions.decode(text)
        except msgspec.DecodeError:
            found = _Positioned()
        self.frames.append((found.offset, found.epoch, text))

    def after(self, recovery: Recovery | None) -> tuple[list[str], Position | None]:
        """The held frames to deliver after a join answered with ``recovery``, and the
        position to tell the client (the room's, or the one just before the first held frame
        when the history was read after it arrived).

        A recovered client already has, from the replay, every held frame up to the position
        the history was read at; anyone else gets every held frame.
        """
        if recovery is None:
            return [text for _, _, text in self.frames], None
        position = recovery.position
        if recovery.recovered:
            fresh = [
                text
                for offset, epoch, text in self.frames
                if epoch != position.epoch or offset > position.offset
            ]
            return fresh, position
        texts = [text for _, _, text in self.frames]
        if self.frames:
            offset, epoch, _ = self.frames[0]
            if epoch == position.epoch and offset <= position.offset:
                position = Position(offset - 1, epoch)
        return texts, position


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
