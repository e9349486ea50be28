"""Unit tests for vws.runtime.rooms.Rooms: per-path room membership."""

from __future__ import annotations

from vws.runtime.rooms import Rooms


def test_add_twice_is_false_the_second_time() -> None:
    rooms: Rooms[str] = Rooms()
    assert rooms.add("/ws", "lobby", "c1", "one") is True
    assert rooms.add("/ws", "lobby", "c1", "one again") is False
    assert list(rooms.members("/ws", "lobby")) == ["one"]


def test_discard_of_a_non_member_is_false() -> None:
    rooms: Rooms[str] = Rooms()
    assert rooms.discard("/ws", "lobby", "c1") is False  # no such room
    rooms.add("/ws", "lobby", "c1", "one")
    assert rooms.discard("/ws", "lobby", "c2") is False  # room exists, not a member
    assert rooms.discard("/other", "lobby", "c1") is False  # same name, other path
    assert list(rooms.members("/ws", "lobby")) == ["one"]


def test_discard_of_a_member_is_true_once() -> None:
    rooms: Rooms[str] = Rooms()
    rooms.add("/ws", "lobby", "c1", "one")
    rooms.add("/ws", "lobby", "c2", "two")
    assert rooms.discard("/ws", "lobby", "c1") is True
    assert rooms.discard("/ws", "lobby", "c1") is False
    assert list(rooms.members("/ws", "lobby")) == ["two"]


def test_empty_room_is_forgotten() -> None:
    rooms: Rooms[str] = Rooms()
    rooms.add("/ws", "lobby", "c1", "one")
    rooms.add("/ws", "lobby", "c2", "two")
    rooms.add("/ws", "other", "c1", "one")
    assert ("/ws", "lobby") in rooms
    assert len(rooms) == 2
    rooms.discard("/ws", "lobby", "c1")
    assert ("/ws", "lobby") in rooms
    rooms.discard("/ws", "lobby", "c2")
    assert ("/ws", "lobby") not in rooms
    assert len(rooms) == 1
    assert rooms.names() == [("/ws", "other")]
    assert list(rooms.members("/ws", "lobby")) == []


def test_rooms_are_per_path() -> None:
    rooms: Rooms[str] = Rooms()
    assert rooms.add("/ws", "lobby", "c1", "ws-one") is True
    assert rooms.add("/admin", "lobby", "c1", "admin-one") is True  # a different room
    rooms.add("/admin", "lobby", "c2", "admin-two")
    assert list(rooms.members("/ws", "lobby")) == ["ws-one"]
    assert list(rooms.members("/admin", "lobby")) == ["admin-one", "admin-two"]
    assert sorted(rooms.names()) == [("/admin", "lobby"), ("/ws", "lobby")]
    rooms.discard("/ws", "lobby", "c1")
    assert ("/ws", "lobby") not in rooms
    assert list(rooms.members("/admin", "lobby")) == ["admin-one", "admin-two"]


def test_members_are_in_join_order() -> None:
    rooms: Rooms[int] = Rooms()
    for n in (5, 3, 9, 1, 7):
        rooms.add("/ws", "r", f"c{n}", n)
    assert list(rooms.members("/ws", "r")) == [5, 3, 9, 1, 7]
    rooms.discard("/ws", "r", "c9")
    rooms.add("/ws", "r", "c9", 9)  # rejoining goes to the end
    rooms.add("/ws", "r", "c3", 3)  # already a member: keeps its place
    assert list(rooms.members("/ws", "r")) == [5, 3, 1, 7, 9]


def test_unknown_room_has_no_members() -> None:
    rooms: Rooms[str] = Rooms()
    assert list(rooms.members("/ws", "nowhere")) == []
    assert len(rooms) == 0
    assert rooms.names() == []
    assert ("/ws", "nowhere") not in rooms


def test_members_of_the_same_id_on_two_rooms() -> None:
    rooms: Rooms[str] = Rooms()
    rooms.add("/ws", "a", "c1", "one")
    rooms.add("/ws", "b", "c1", "one")
    rooms.discard("/ws", "a", "c1")
    assert list(rooms.members("/ws", "b")) == ["one"]
    assert rooms.names() == [("/ws", "b")]
