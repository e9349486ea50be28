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


def positioned_parts(envelope: Envelope) -> tuple[bytes, bytes]:
    """The encoding of ``envelope`` positioned, less its text: the bytes before the text and the
    bytes after it. A broker script that builds the positioned text puts it between them as a
    msgpack string, and the result decodes as the positioned envelope; no other byte of the
    envelope is encoded twice.
    """
    head = _encoder.encode((envelope.kind, envelope.path, envelope.target, envelope.exclude))
    tail = _encoder.encode((envelope.origin, envelope.user, True))
    # Each tuple is a msgpack fixarray (one header byte); the envelope is one array of 8 fields.
    return b"E\x98" + head[1:], tail[1:]


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
