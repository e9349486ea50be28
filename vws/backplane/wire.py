"""What crosses the broker: envelopes, and the control messages that keep the nodes in step.

Each message is one byte naming its type followed by its msgpack encoding, so a receiver
tells the two apart without trying to decode either.
"""

from __future__ import annotations

from enum import IntEnum

import msgspec
from msgspec import Struct

from vws.backplane.base import Envelope

ENVELOPE = ord("E")
CONTROL = ord("C")


class Op(IntEnum):
    HELLO = 0  #: a node (re)joined: every other node sends it a snapshot
    SNAPSHOT = 1  #: the sender holds exactly ``clients``
    ADDED = 2  #: the sender gained ``clients``
    REMOVED = 3  #: the sender lost ``clients``
    HEARTBEAT = 4  #: the sender is alive with ``count`` clients
    SYNC = 5  #: the sender asks the receiver for a snapshot
    BYE = 6  #: the sender is stopping


class Control(Struct, frozen=True, array_like=True):
    op: Op
    node: str
    clients: list[str] = []
    count: int = 0


_encoder = msgspec.msgpack.Encoder()
_envelopes = msgspec.msgpack.Decoder(Envelope)
_controls = msgspec.msgpack.Decoder(Control)


def encode_envelope(envelope: Envelope) -> bytes:
    return b"E" + _encoder.encode(envelope)


def encode_control(control: Control) -> bytes:
    return b"C" + _encoder.encode(control)


def decode(data: bytes) -> Envelope | Control:
    """One message as received.

    Raises:
        ValueError: not a message of this format (another app on the same channels?).
    """
    if not data:
        raise ValueError("empty message")
    body = memoryview(data)[1:]
    try:
        if data[0] == ENVELOPE:
            return _envelopes.decode(body)
        if data[0] == CONTROL:
            return _controls.decode(body)
    except msgspec.DecodeError as exc:
        raise ValueError(str(exc)) from None
    raise ValueError(f"unknown message type {data[:1]!r}")
