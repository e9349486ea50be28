"""The history plugin: a joining client gets the room's last frames before its ack, only for
rooms that opted in, bounded in count, age and rooms."""

from __future__ import annotations

import pytest
from wsclient import Peer

from vws import Outgoing
from vws.contrib.history import RoomLog, Settings, kept

pytestmark = pytest.mark.anyio

APP = """
[plugins]
load = ["presence", "history", "e2e_plugins"]

[plugins.settings.presence]
notify = true

[plugins.settings.history]
rooms = ["news-*"]
max_frames = 3

[routes."/ws".events]
to_room = "e2e_handlers:to_room"
echo = "e2e_handlers:echo"
"""


async def test_a_joiner_gets_the_last_frames_before_its_ack(start_server):
    server = start_server(APP)
    url = server.url + "/ws"
    async with await Peer.connect(url) as a:
        await a.call("joinRoom", room="news-1")
        for i in range(5):
            await a.call("to_room", {"event": "story", "room": "news-1", "payload": i})
        # e2e_plugins upper-cases "shout": history keeps what was delivered, after rewriting
        await a.call("to_room", {"event": "shout", "room": "news-1", "payload": "x"})
        async with await Peer.connect(url) as b:
            assert await b.call("joinRoom", room="news-1") == {"room": "news-1"}
            assert b.before == [
                {"event": "story", "payload": 3},
                {"event": "story", "payload": 4},
                {"event": "shout", "payload": "X"},
                # live, not history: presence frames are never kept
                {
                    "event": "presence:join",
                    "payload": {"room": "news-1", "member": {"client_id": b.id, "user": None}},
                },
            ]
            await b.nothing_pending()


async def test_rooms_that_did_not_opt_in_keep_nothing(start_server):
    server = start_server(APP)
    url = server.url + "/ws"
    async with await Peer.connect(url) as a:
        await a.call("joinRoom", room="chat")
        await a.call("to_room", {"event": "story", "room": "chat", "payload": 1})
        async with await Peer.connect(url) as b:
            await b.call("joinRoom", room="chat")
            assert [f["event"] for f in b.before] == ["presence:join"]


def _frame(text: str) -> tuple[Outgoing, str]:
    return Outgoing(kind="room", event=text, path="/ws", target="r", replay=True), text


def _texts(log: RoomLog, path: str, room: str, now: float, settings: Settings) -> list[str]:
    return [text for _, _, text in log.replay(path, room, now, settings)]


def test_frames_older_than_max_age_are_forgotten():
    settings = Settings(rooms=("*",), max_frames=10, max_age=60.0)
    log = RoomLog()
    log.record("/ws", "r", *_frame("old"), now=0.0, settings=settings)
    log.record("/ws", "r", *_frame("new"), now=50.0, settings=settings)
    assert _texts(log, "/ws", "r", now=59.0, settings=settings) == ["old", "new"]
    assert _texts(log, "/ws", "r", now=61.0, settings=settings) == ["new"]
    assert _texts(log, "/ws", "r", now=200.0, settings=settings) == []
    assert ("/ws", "r") not in log.rooms  # an emptied room is dropped
    forever = Settings(rooms=("*",), max_age=0)
    log.record("/ws", "r", *_frame("kept"), now=0.0, settings=forever)
    assert _texts(log, "/ws", "r", now=1e9, settings=forever) == ["kept"]


def test_count_and_rooms_are_bounded_and_rooms_are_per_path():
    settings = Settings(rooms=("*",), max_frames=2, max_rooms=2)
    log = RoomLog()
    for i in range(5):
        log.record("/ws", "a", *_frame(f"a{i}"), now=0.0, settings=settings)
    assert _texts(log, "/ws", "a", 0.0, settings) == ["a3", "a4"]
    log.record("/other", "a", *_frame("other"), now=0.0, settings=settings)
    assert _texts(log, "/other", "a", 0.0, settings) == ["other"]
    log.record(
        "/ws", "b", *_frame("b0"), now=0.0, settings=settings
    )  # a third room: the oldest goes
    assert _texts(log, "/ws", "a", 0.0, settings) == []
    assert _texts(log, "/ws", "b", 0.0, settings) == ["b0"]


def test_room_patterns():
    settings = Settings(rooms=("news-*", "log"))
    assert kept("news-1", settings) and kept("log", settings)
    assert not kept("news", settings) and not kept("logs", settings)
    assert not kept("anything", Settings())
