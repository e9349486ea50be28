"""Room membership, per path, as plain bookkeeping.

Rooms belong to a path: ``lobby`` on ``/ws`` and ``lobby`` on ``/admin`` are different rooms, so
a room is keyed by ``(path, name)``. A room exists while it has members and is forgotten when
its last member leaves. Members are kept in join order, which makes delivery order repeatable.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Generic, TypeVar

Member = TypeVar("Member")
RoomKey = tuple[str, str]


class Rooms(Generic[Member]):
    """Who is in which room, keyed by member id."""

    __slots__ = ("_rooms",)

    def __init__(self) -> None:
        self._rooms: dict[RoomKey, dict[str, Member]] = {}

    def add(self, path: str, room: str, member_id: str, member: Member) -> bool:
        """Put a member in a room; False when it was there already."""
        members = self._rooms.setdefault((path, room), {})
        if member_id in members:
            return False
        members[member_id] = member
        return True

    def replace(self, path: str, room: str, member_id: str, member: Member) -> bool:
        """Put ``member`` where a member of that id is (its place in the order kept); False
        when there is none."""
        members = self._rooms.get((path, room))
        if members is None or member_id not in members:
            return False
        members[member_id] = member
        return True

    def discard(self, path: str, room: str, member_id: str) -> bool:
        """Take a member out of a room; False when it was not there. Empty rooms are forgotten."""
        key = (path, room)
        members = self._rooms.get(key)
        if members is None or members.pop(member_id, None) is None:
            return False
        if not members:
            del self._rooms[key]
        return True

    def members(self, path: str, room: str) -> Collection[Member]:
        """The members of a room, in join order (empty when the room does not exist)."""
        members = self._rooms.get((path, room))
        return members.values() if members is not None else ()

    def __contains__(self, key: RoomKey) -> bool:
        return key in self._rooms

    def __len__(self) -> int:
        return len(self._rooms)

    def names(self) -> list[RoomKey]:
        """Every room that has members, as ``(path, name)``."""
        return list(self._rooms)
