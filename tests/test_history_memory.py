"""#17: positions and resumes on the in-memory backplane, and the rule every store answers by."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from vws.backplane import Envelope, MemoryBackplane, Position, Retention, Target
from vws.backplane.base import positioned_text, recover

pytestmark = pytest.mark.anyio

KEEP = Retention(size=5, ttl=0)


def frames(*offsets: int) -> list[tuple[int, str]]:
    return [(n, f"t{n}") for n in offsets]


def test_a_resume_is_recovered_only_with_every_frame_after_it():
    now = Position(7, "e")
    assert recover(frames(5, 6, 7), now, Position(4, "e")).frames == ["t5", "t6", "t7"]
    assert recover(frames(5, 6, 7), now, Position(6, "e")).frames == ["t7"]
    caught_up = recover(frames(5, 6, 7), now, Position(7, "e"))
    assert caught_up.recovered and caught_up.frames == []
    assert not recover(frames(5, 6, 7), now, Position(3, "e")).recovered  # 4 has left
    assert not recover(frames(5, 6, 7), now, Position(8, "e")).recovered  # never reached
    lost = recover(frames(5, 6, 7), now, Position(6, "other"))
    assert (lost.recovered, lost.frames, lost.position) == (False, [], now)


def test_the_whole_history_is_asked_for_with_offset_0_and_no_epoch():
    assert recover(frames(1, 2), Position(2, "e"), Position(0, "")).frames == ["t1", "t2"]
    assert not recover(frames(2, 3), Position(3, "e"), Position(0, "")).recovered
    assert recover([], Position(0, ""), Position(0, "")).recovered


def test_a_positioned_text_is_the_frame_with_its_room_and_position():
    text = positioned_text('{"event":"e","payload":[1]}', 'a "room"', 3, "xyz")
    assert json.loads(text) == {
        "event": "e",
        "payload": [1],
        "room": 'a "room"',
        "offset": 3,
        "epoch": "xyz",
    }


async def test_nodes_of_one_bus_share_positions_and_get_them_in_order():
    one, two = MemoryBackplane("one", "hist"), MemoryBackplane("two", "hist")
    got: dict[str, list[Envelope]] = {"one": [], "two": []}
    await one.start(got["one"].append, ())
    await two.start(got["two"].append, ())
    try:
        one.watch_room("/ws", "r")
        two.watch_room("/ws", "r")
        for i, node in enumerate([one, two, one]):
            text = json.dumps({"event": "e", "payload": i}, separators=(",", ":"))
            node.publish_positioned(Envelope(Target.ROOM, "/ws", "r", "", text), KEEP)
        for name in ("one", "two"):  # the publishing node gets its own too, positioned
            offsets = [json.loads(e.text)["offset"] for e in got[name]]
            assert offsets == [1, 2, 3] and all(e.positioned for e in got[name])
        epoch = json.loads(got["one"][0].text)["epoch"]
        resumed = await two.history("/ws", "r", Position(1, epoch), KEEP)
        assert [json.loads(t)["payload"] for t in resumed.frames] == [1, 2]
        assert resumed.position == Position(3, epoch) and resumed.recovered
        first = await one.history("/ws", "r", None, KEEP)
        assert (first.frames, first.position, first.recovered) == ([], Position(3, epoch), False)
    finally:
        await one.stop()
        await two.stop()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The memory backplane's clock, moved by hand: ``clock[0] += seconds``."""
    now = [1000.0]
    monkeypatch.setattr("vws.backplane.memory.time.monotonic", lambda: now[0])
    return now


@pytest.fixture
async def node() -> AsyncIterator[MemoryBackplane]:
    """One memory node on a bus of its own."""
    solo = MemoryBackplane("solo")
    await solo.start(lambda _: None, ())
    yield solo
    await solo.stop()


async def test_size_bounds_the_history_and_an_idle_room_past_its_ttl_starts_a_new_epoch(
    clock: list[float], node: MemoryBackplane
):
    short = Retention(size=2, ttl=60)
    say(node, 4, short)
    kept = await node.history("/ws", "r", Position(0, ""), short)
    assert not kept.recovered and kept.position.offset == 4  # 1 and 2 are gone
    epoch = kept.position.epoch
    assert len((await node.history("/ws", "r", Position(2, epoch), short)).frames) == 2
    clock[0] += 61
    after = await node.history("/ws", "r", Position(4, epoch), short)
    assert not after.recovered and after.position.offset == 0
    assert after.position.epoch not in ("", epoch)  # the read began a new history
    say(node, 1, short)
    fresh = await node.history("/ws", "r", Position(0, ""), short)
    assert fresh.recovered and fresh.position.offset == 1 and fresh.position.epoch != epoch


async def test_a_join_before_the_first_frame_is_told_of_a_history_lost_while_away(
    clock: list[float], node: MemoryBackplane
):
    """Joined an empty room, away while frames came and the room then idled past its ttl, and
    more came: resuming from the join is not recovered (the new frames are not all it missed)."""
    brief = Retention(size=10, ttl=60)
    joined = (await node.history("/ws", "r", None, brief)).position
    assert joined.offset == 0 and joined.epoch
    say(node, 3, brief)
    assert (await node.history("/ws", "r", joined, brief)).recovered
    clock[0] += 61
    say(node, 2, brief)
    resumed = await node.history("/ws", "r", joined, brief)
    assert not resumed.recovered and resumed.position.offset == 2


def say(node: MemoryBackplane, count: int, retention: Retention) -> None:
    """Send ``count`` frames to room ``r`` of ``/ws``."""
    for i in range(count):
        node.publish_positioned(Envelope(Target.ROOM, "/ws", "r", "", f'{{"i":{i}}}'), retention)
