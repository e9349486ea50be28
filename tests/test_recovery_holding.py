"""#17: the seam of a resuming join, frame by frame (vws.runtime.recovery.Holding)."""

from __future__ import annotations

import json

from vws.backplane import Position
from vws.runtime.recovery import Holding


def frame(offset: int, epoch: str = "e") -> str:
    return json.dumps({"event": "x", "payload": offset, "offset": offset, "epoch": epoch})


def released(holding: Holding, after: Position | None) -> tuple[list[int], list[bool]]:
    got: list[int] = []
    settled: list[bool] = []
    holding.release(
        after, lambda text: got.append(json.loads(text)["payload"]), lambda: settled.append(True)
    )
    return got, settled


def test_a_recovered_client_gets_only_what_the_replay_did_not_carry_even_late_ones():
    holding = Holding(client=None)  # type: ignore[arg-type]
    for n in (8, 9, 10):
        holding.put(frame(n))
    told = holding.position(Position(10, "e"), recovered=True)
    assert told == Position(10, "e")
    got, settled = released(holding, told)
    assert (got, settled) == ([], [])  # 8-10 came with the replay
    holding.put(frame(10))  # positioned before the read, on its way here after it
    assert (got, settled) == ([], [])
    holding.put(frame(11))
    assert (got, settled) == ([11], [True])
    holding.put(frame(12))  # the outbox has the room back by now; the holding just passes
    assert got == [11, 12] and settled == [True]


def test_a_first_join_stands_just_before_the_first_frame_it_got():
    holding = Holding(client=None)  # type: ignore[arg-type]
    holding.put(frame(4))
    holding.put(frame(5))
    told = holding.position(Position(5, "e"), recovered=False)
    assert told == Position(3, "e")
    got, settled = released(holding, told)
    assert (got, settled) == ([4, 5], [True])


def test_with_nothing_held_the_read_position_is_where_it_stands():
    holding = Holding(client=None)  # type: ignore[arg-type]
    told = holding.position(Position(7, "e"), recovered=False)
    got, settled = released(holding, told)
    holding.put(frame(6))
    holding.put(frame(7))
    holding.put(frame(8))
    assert (told, got, settled) == (Position(7, "e"), [8], [True])


def test_a_new_epoch_passes_and_without_a_position_everything_does():
    holding = Holding(client=None)  # type: ignore[arg-type]
    got, settled = released(holding, Position(50, "old"))
    holding.put(frame(1, "new"))
    assert (got, settled) == ([1], [True])
    unknown = Holding(client=None)  # type: ignore[arg-type]
    unknown.put(frame(3))
    got, settled = released(unknown, None)  # the broker could not be read
    assert (got, settled) == ([3], [True])


def test_frames_without_a_position_pass_and_do_not_end_the_filter():
    holding = Holding(client=None)  # type: ignore[arg-type]
    unpositioned = json.dumps({"event": "typing", "payload": "t"})
    holding.put(unpositioned)
    holding.put(frame(6))
    assert holding.position(Position(6, "e"), recovered=False) == Position(5, "e")
    got: list[object] = []
    settled: list[bool] = []
    holding.release(
        Position(9, "e"),
        lambda t: got.append(json.loads(t)["payload"]),
        lambda: settled.append(True),
    )
    assert got == ["t"] and settled == []  # 6 is at or before 9
    holding.put(unpositioned)
    holding.put(frame(9))
    assert got == ["t", "t"] and settled == []
    holding.put(frame(10))
    assert got == ["t", "t", 10] and settled == [True]
