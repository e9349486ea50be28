"""Replay a room's last frames to a client that joins it.

Only rooms matching one of ``rooms`` keep history. Each keeps its last ``max_frames`` frames
sent with ``to_room``, as encoded after every other ``vws_emit`` plugin had its say (this one
runs last), and forgets frames older than ``max_age`` seconds. A joining client gets them, oldest
first, before its join is acknowledged. At most ``max_rooms`` rooms keep history per server; the
least recently written is dropped first.

History is kept by each node for the frames its own clients sent.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Annotated
from weakref import WeakKeyDictionary

import msgspec
from msgspec import Meta

from vws import Client, Outgoing, hookimpl
from vws.protocol import encode_frame
from vws.runtime.node import server_of

if TYPE_CHECKING:
    from vws.runtime.node import Server


class Settings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``[plugins.settings.history]``."""

    #: Rooms (shell patterns) that keep history; none unless listed.
    rooms: tuple[str, ...] = ()
    max_frames: Annotated[int, Meta(ge=1, le=10_000)] = 50
    #: Seconds a frame is kept; 0 keeps frames until ``max_frames`` pushes them out.
    max_age: Annotated[float, Meta(ge=0)] = 300.0
    max_rooms: Annotated[int, Meta(ge=1)] = 1000
    #: Events never kept (presence frames describe the moment, not the room).
    exclude_events: tuple[str, ...] = ("presence:join", "presence:leave")


class RoomLog:
    """The kept frames of one server's rooms: (path, room) → (time, encoded frame)."""

    def __init__(self) -> None:
        self.rooms: OrderedDict[tuple[str, str], deque[tuple[float, str]]] = OrderedDict()

    def record(self, path: str, room: str, text: str, now: float, settings: Settings) -> None:
        key = (path, room)
        frames = self.rooms.get(key)
        if frames is None or frames.maxlen != settings.max_frames:
            frames = self.rooms[key] = deque(frames or (), maxlen=settings.max_frames)
        self.rooms.move_to_end(key)
        frames.append((now, text))
        while len(self.rooms) > settings.max_rooms:
            self.rooms.popitem(last=False)

    def replay(self, path: str, room: str, now: float, settings: Settings) -> list[str]:
        """The frames still fresh, oldest first (older ones are forgotten on the way)."""
        key = (path, room)
        frames = self.rooms.get(key)
        if frames is None:
            return []
        if settings.max_age:
            while frames and frames[0][0] < now - settings.max_age:
                frames.popleft()
            if not frames:
                del self.rooms[key]
                return []
        return [text for _, text in frames]


_logs: WeakKeyDictionary[Server, RoomLog] = WeakKeyDictionary()


def _log(server: Server) -> RoomLog:
    log = _logs.get(server)
    if log is None:
        log = _logs[server] = RoomLog()
    return log


def kept(room: str, settings: Settings) -> bool:
    return any(fnmatchcase(room, pattern) for pattern in settings.rooms)


@hookimpl(trylast=True)
def vws_emit(message: Outgoing, settings: Settings) -> None:
    """Record room frames as they will be delivered; never changes them."""
    if message.kind != "room" or message.sender is None or not settings.rooms:
        return
    room = message.target or ""
    if message.event in settings.exclude_events or not kept(room, settings):
        return
    try:
        text = encode_frame(message.event, message.payload)
    except TypeError:
        return  # the fan-out reports the payload JSON cannot carry
    _log(server_of(message.sender)).record(message.path, room, text, time.monotonic(), settings)


@hookimpl
def vws_joined_room(client: Client, room: str, settings: Settings) -> None:
    if not kept(room, settings):
        return
    server = server_of(client)
    for text in _log(server).replay(client.path, room, time.monotonic(), settings):
        server.fanout.send_own(client.client_id, text)
