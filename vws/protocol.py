"""The wire protocol: client frames in, server frames out, as plain functions.

Nothing here touches a socket. Decoding turns text into an :class:`InboundFrame` or raises
:class:`~vws.errors.ProtocolError` with the error code the client will be told; encoding turns
an event and payload into the text of one frame, which the caller can send to any number of
clients without encoding it again.
"""

from __future__ import annotations

import json
from collections.abc import Generator
from typing import Annotated, Any, NoReturn

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

from vws.errors import ProtocolError

#: Event names a client may never send and routes.toml may never declare as events.
PROTOCOL_EVENTS = frozenset(
    {"joinRoom", "leftRoom", "join-room", "left-room", "connected", "ack", "error"}
)
#: Lifecycle names: declared like events, but called on connect and disconnect.
LIFECYCLE_EVENTS = frozenset({"connect", "disconnect"})
RESERVED_EVENTS = PROTOCOL_EVENTS | LIFECYCLE_EVENTS

MAX_EVENT_LENGTH = 128
MAX_ROOM_LENGTH = 200

JOIN_EVENTS = frozenset({"joinRoom", "join-room"})
LEAVE_EVENTS = frozenset({"leftRoom", "left-room"})
ROOM_EVENTS = JOIN_EVENTS | LEAVE_EVENTS
#: Names a client may not send: server-only frames and lifecycle hooks.
CLIENT_RESERVED = (PROTOCOL_EVENTS | LIFECYCLE_EVENTS) - JOIN_EVENTS - LEAVE_EVENTS

#: Error codes of the wire protocol (SPEC section 1); other codes count as ``_unknown``.
ERROR_CODES = frozenset(
    {
        "bad_json",
        "bad_frame",
        "unknown_event",
        "reserved_event",
        "invalid_payload",
        "bad_room",
        "too_many_rooms",
        "room_full",
        "join_denied",
        "leave_denied",
        "denied",
        "rate_limited",
        "handler_error",
        "handler_timeout",
    }
)

#: Close codes vws sends (besides 1000 and 1001): see docs/protocol.md.
CLOSE_SLOW = 1008
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL = 1011
CLOSE_NO_ROUTE = 4404
#: RFC 6455 §5.5: a control frame's body is at most 125 bytes, two of them the close code.
MAX_CLOSE_REASON_BYTES = 123

FrameId = int | str


class InboundFrame(Struct):
    """One client frame. Unknown fields are ignored, so clients may add their own."""

    event: Annotated[str, Meta(min_length=1, max_length=MAX_EVENT_LENGTH)]
    payload: Any = None
    room: Any = UNSET
    id: FrameId | None = None
    #: On ``joinRoom``: where the client was in the room, to get what it missed.
    since: Any = UNSET


class OutboundFrame(Struct, omit_defaults=True):
    """One server frame: ``{"event": ..., "payload": ...}``, plus ``"id"`` on replies."""

    event: str
    payload: Any
    id: FrameId | UnsetType = UNSET


_decoder = msgspec.json.Decoder(InboundFrame)
_loose_decoder = msgspec.json.Decoder()


class Sent:
    """What :meth:`vws.Client.emit`, ``to_room`` and ``broadcast`` return: nothing of use, but
    ``await client.emit(...)`` then says what is wrong instead of Python's "object NoneType
    can't be used in 'await' expression". One constant a method, so sending allocates nothing;
    a handler that returns it has its ack carry null, as the None it stands for did."""

    __slots__ = ("_method",)

    def __init__(self, method: str) -> None:
        self._method = method

    def __await__(self) -> Generator[Any, None, NoReturn]:
        raise TypeError(f"{self._method}() is not a coroutine: call it without await")


def _enc_hook(value: Any) -> Any:
    """msgspec calls this only for a type it cannot encode: the one it takes is :class:`Sent`."""
    if isinstance(value, Sent):
        return None
    raise TypeError(f"Encoding objects of type {type(value).__name__} is unsupported")


_encoder = msgspec.json.Encoder(enc_hook=_enc_hook)


def decode_frame(text: str | bytes) -> InboundFrame:
    """Decode one client frame.

    Raises:
        ProtocolError: ``bad_json`` for text that is not JSON, ``bad_frame`` for JSON that is
            not a valid frame. Its ``frame_id`` carries the frame's ``id`` when one was readable.
    """
    try:
        return _decoder.decode(text)
    except msgspec.ValidationError as exc:
        raise ProtocolError("bad_frame", _frame_message(str(exc)), _salvage_id(text)) from None
    except msgspec.DecodeError as exc:
        raise ProtocolError("bad_json", f"the frame is not valid JSON: {exc}") from None
    except RecursionError:  # msgspec gives up on deep nesting with Python's own error
        raise ProtocolError("bad_json", "the frame is nested too deeply") from None


def _frame_message(message: str) -> str:
    message = message.replace("`", "")
    if "$.id" in message:
        return f"id must be an integer or a string ({message})"
    if "event" in message:
        return f"event must be a string of 1 to {MAX_EVENT_LENGTH} characters ({message})"
    return f"a frame is a JSON object with an event ({message})"


def _salvage_id(text: str | bytes) -> FrameId | None:
    """The ``id`` of a frame that failed validation, so its error can still be matched."""
    try:
        value = _loose_decoder.decode(text)
    except (msgspec.DecodeError, RecursionError):
        return None
    if isinstance(value, dict):
        frame_id = value.get("id")
        if isinstance(frame_id, str) or (
            isinstance(frame_id, int) and not isinstance(frame_id, bool)
        ):
            return frame_id
    return None


#: Longest epoch a client may send back (vws's are 11 characters).
MAX_EPOCH_LENGTH = 64


def check_since(since: Any) -> tuple[int, str] | None:
    """The ``since`` of a ``joinRoom``: ``{"offset": N, "epoch": "..."}`` as (offset, epoch), or
    None when the frame has none.

    Raises:
        ProtocolError: ``bad_frame`` when it is not such an object.
    """
    if since is UNSET or since is None:
        return None
    if isinstance(since, dict):
        offset, epoch = since.get("offset"), since.get("epoch", "")
        if (
            type(offset) is int
            and offset >= 0
            and type(epoch) is str
            and len(epoch) <= MAX_EPOCH_LENGTH
        ):
            return offset, epoch
    raise ProtocolError(
        "bad_frame", 'since must be {"offset": a whole number >= 0, "epoch": a string}'
    )


def check_room(room: Any, frame: InboundFrame | None = None) -> str:
    """The room name of a room event; ``frame``, when given, is the frame it came in.

    Raises:
        ProtocolError: ``bad_room`` when it is missing, not a string, empty or too long. A
            frame that put its room inside its payload, as other events carry their data, is
            shown the frame it should have sent.
    """
    if type(room) is str and 0 < len(room) <= MAX_ROOM_LENGTH:
        return room
    if room is UNSET:
        payload = None if frame is None else frame.payload
        if isinstance(payload, dict) and "room" in payload:
            assert frame is not None
            named = payload["room"]
            example = named if type(named) is str and 0 < len(named) <= MAX_ROOM_LENGTH else "lobby"
            right = json.dumps({"event": frame.event, "room": example})
            raise ProtocolError("bad_room", f"this event needs a room: send {right}")
        raise ProtocolError("bad_room", "this event needs a room")
    raise ProtocolError("bad_room", f"room must be a string of 1 to {MAX_ROOM_LENGTH} characters")


def encode_frame(event: str, payload: Any = None, frame_id: FrameId | UnsetType = UNSET) -> str:
    """The text of one server frame.

    Raises:
        TypeError: the payload holds something JSON cannot carry: an unknown type, a string
            with a lone surrogate, a container that holds itself. msgspec raises a different
            error for each; callers need one to catch.
    """
    try:
        return _encoder.encode(OutboundFrame(event, payload, frame_id)).decode()
    except TypeError:
        raise
    except (ValueError, RecursionError) as exc:
        raise TypeError(f"the payload cannot be sent as JSON: {exc}") from None


def close_reason(reason: str) -> str:
    """``reason`` cut to what a close frame can carry: 123 bytes of UTF-8, whole characters.

    A longer reason makes the close frame invalid, and the client would see the socket
    dropped (1006) instead of the code it was meant to read.
    """
    data = reason.encode("utf-8", "replace")  # a lone surrogate cannot be sent either
    return data[:MAX_CLOSE_REASON_BYTES].decode("utf-8", "ignore")


def error_frame(code: str, message: str, frame_id: FrameId | None = None) -> str:
    """The text of an ``error`` frame."""
    payload = {"code": code, "message": message}
    return encode_frame("error", payload, UNSET if frame_id is None else frame_id)
