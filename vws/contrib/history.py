"""Replay a room's last frames to a client that joins it.

Only rooms matching one of ``rooms`` keep history. Each keeps its last ``max_frames`` frames
sent to the room (by a client's ``to_room``, ``vws.server().to_room`` or the publish API), as
they were after every other ``vws_emit`` plugin had its say (this one runs last), and forgets
frames older than ``max_age`` seconds. A joining client gets them, oldest first, before its
join is acknowledged, through :meth:`vws.Server.replay`: the ``vws_deliver`` hooks see each one
(``replay`` set) and may keep it from that client, as they may a live frame. At most
``max_rooms`` rooms keep history per server; the least recently written is dropped first.

History is kept by each node for the frames sent from it. For frames a reconnecting client
missed, with positions, across nodes, see routes.toml's recovery settings
(docs/delivery.md): this plugin is the simpler "last N frames on join".
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


#: One kept frame: when it was sent, what was sent (no sender: it may be long gone), and its
#: text as encoded then.
Kept = tuple[float, Outgoing, str]


class RoomLog:
    """The kept frames of one server's rooms: (path, room) → kept frames, oldest first."""

    def __init__(self) -> None:
        self.rooms: OrderedDict[tuple[str, str], deque[Kept]] = OrderedDict()

    def record(
        self, path: str, room: str, message: Outgoing, text: str, now: float, settings: Settings
    ) -> None:
        key = (path, room)
        frames = self.rooms.get(key)
        if frames is None or frames.maxlen != settings.max_frames:
            frames = self.rooms[key] = deque(frames or (), maxlen=settings.max_frames)
        self.rooms.move_to_end(key)
        frames.append((now, message, text))
        while len(self.rooms) > settings.max_rooms:
            self.rooms.popitem(last=False)

    def replay(self, path: str, room: str, now: float, settings: Settings) -> list[Kept]:
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
        return list(frames)


_logs: WeakKeyDictionary[Server, RoomLog] = WeakKeyDictionary()


def _log(server: Server) -> RoomLog:
    log = _logs.get(server)
    if log is None:
        log = _logs[server] = RoomLog()
    return log


def kept(room: str, settings: Settings) -> bool:
    return any(fnmatchcase(room, pattern) for pattern in settings.rooms)


@hookimpl(trylast=True)
def vws_emit(message: Outgoing, server: Server, settings: Settings) -> None:
    """Record room frames as they will be delivered; never changes them."""
    if message.kind != "room" or message.replay or not settings.rooms:
        return
    room = message.target or ""
    if message.event in settings.exclude_events or not kept(room, settings):
        return
    try:
        text = encode_frame(message.event, message.payload)
    except TypeError:
        return  # the fan-out reports the payload JSON cannot carry
    kept_message = message.replace(sender=None, replay=True)
    _log(server).record(message.path, room, kept_message, text, time.monotonic(), settings)


@hookimpl
def vws_joined_room(client: Client, room: str, server: Server, settings: Settings) -> None:
    if not kept(room, settings):
        return
    for _, message, text in _log(server).replay(client.path, room, time.monotonic(), settings):
        server.replay(client, message, text)
