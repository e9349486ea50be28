"""Unit tests for vws.protocol: decoding client frames, encoding server frames."""

from __future__ import annotations

import json
from typing import Any

import pytest
from msgspec import UNSET

from vws.errors import ProtocolError
from vws.protocol import check_room, decode_frame, encode_frame, error_frame


def protocol_error(text: str | bytes) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        decode_frame(text)
    return info.value


# --- decode_frame: valid frames ------------------------------------------------------------


def test_minimal_frame_defaults() -> None:
    frame = decode_frame('{"event": "message"}')
    assert frame.event == "message"
    assert frame.payload is None
    assert frame.id is None
    assert frame.room is UNSET


@pytest.mark.parametrize(
    "payload", [None, 0, 1.5, "text", [1, "a", None], {"nested": {"k": [True, False]}}, True]
)
def test_payload_is_any_json_value(payload: Any) -> None:
    frame = decode_frame(json.dumps({"event": "e", "payload": payload}))
    assert frame.payload == payload
    assert type(frame.payload) is type(payload)


@pytest.mark.parametrize("frame_id", [0, 7, -3, 2**53, "abc", ""])
def test_id_integer_or_string(frame_id: int | str) -> None:
    frame = decode_frame(json.dumps({"event": "e", "id": frame_id}))
    assert frame.id == frame_id
    assert type(frame.id) is type(frame_id)


def test_null_id_is_absent() -> None:
    assert decode_frame('{"event": "e", "id": null}').id is None


def test_room_is_kept_for_room_events() -> None:
    frame = decode_frame('{"event": "joinRoom", "room": "lobby", "id": 1}')
    assert (frame.event, frame.room, frame.id) == ("joinRoom", "lobby", 1)


def test_unknown_fields_are_ignored() -> None:
    frame = decode_frame('{"event": "e", "payload": 1, "extra": {"x": 1}, "ts": 123}')
    assert (frame.event, frame.payload) == ("e", 1)
    assert not hasattr(frame, "extra")


def test_bytes_are_decoded_too() -> None:
    assert decode_frame(b'{"event": "e", "payload": "\xc3\xa9"}').payload == "\u00e9"


def test_event_of_128_characters_is_valid() -> None:
    assert decode_frame(json.dumps({"event": "x" * 128})).event == "x" * 128


def test_event_length_counts_characters_not_bytes() -> None:
    name = "\u00e9" * 128  # 256 bytes in UTF-8
    assert decode_frame(json.dumps({"event": name}, ensure_ascii=False)).event == name


# --- decode_frame: errors ------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "not json", '{"event": "e"', "{'event': 'e'}", "\xff"])
def test_bad_json(text: str) -> None:
    error = protocol_error(text)
    assert error.code == "bad_json"
    assert error.frame_id is None
    assert error.message
    assert str(error) == error.message


@pytest.mark.parametrize("text", ["[]", '["event"]', '"event"', "42", "null", "true"])
def test_not_an_object_is_bad_frame(text: str) -> None:
    error = protocol_error(text)
    assert error.code == "bad_frame"
    assert error.frame_id is None


@pytest.mark.parametrize(
    "frame",
    [
        {"payload": 1},
        {"event": None},
        {"event": 5},
        {"event": ["e"]},
        {"event": {"name": "e"}},
        {"event": ""},
        {"event": "x" * 129},
    ],
)
def test_bad_event_is_bad_frame(frame: dict[str, Any]) -> None:
    error = protocol_error(json.dumps(frame))
    assert error.code == "bad_frame"
    assert "event" in error.message
    assert error.frame_id is None


@pytest.mark.parametrize("frame_id", [1.5, 1.0, True, False, [1], {"a": 1}])
def test_bad_id_is_bad_frame(frame_id: Any) -> None:
    error = protocol_error(json.dumps({"event": "e", "id": frame_id}))
    assert error.code == "bad_frame"
    assert "id" in error.message
    assert error.frame_id is None  # nothing usable to echo


@pytest.mark.parametrize(
    ("frame", "frame_id"),
    [
        ({"id": 7}, 7),
        ({"event": 5, "id": "abc"}, "abc"),
        ({"event": "", "id": 0}, 0),
        ({"event": "x" * 129, "id": -1}, -1),
        ({"event": None, "id": ""}, ""),
    ],
)
def test_usable_id_is_salvaged_from_a_bad_frame(frame: dict[str, Any], frame_id: int | str) -> None:
    error = protocol_error(json.dumps(frame))
    assert error.code == "bad_frame"
    assert error.frame_id == frame_id
    assert type(error.frame_id) is type(frame_id)


def test_salvaged_id_from_bytes() -> None:
    assert protocol_error(b'{"event": 1, "id": 9}').frame_id == 9


# --- check_room ----------------------------------------------------------------------------


@pytest.mark.parametrize("room", ["lobby", "r", "x" * 200, "room with spaces", "\u00e9" * 200])
def test_valid_rooms(room: str) -> None:
    assert check_room(room) == room


def test_room_read_from_a_frame() -> None:
    assert check_room(decode_frame('{"event": "joinRoom", "room": "lobby"}').room) == "lobby"


def test_missing_room() -> None:
    with pytest.raises(ProtocolError) as info:
        check_room(decode_frame('{"event": "joinRoom"}').room)
    assert info.value.code == "bad_room"


@pytest.mark.parametrize("room", [None, 1, 1.5, True, ["lobby"], {"name": "lobby"}, "", "x" * 201])
def test_bad_rooms(room: Any) -> None:
    with pytest.raises(ProtocolError) as info:
        check_room(room)
    assert info.value.code == "bad_room"
    assert info.value.message


def test_bad_room_from_a_decoded_frame() -> None:
    frame = decode_frame(json.dumps({"event": "joinRoom", "room": "x" * 201}))
    with pytest.raises(ProtocolError) as info:
        check_room(frame.room)
    assert info.value.code == "bad_room"


# --- encode_frame / error_frame ------------------------------------------------------------


def test_encoded_frame_is_compact_json_with_event_and_payload() -> None:
    text = encode_frame("message", {"text": "hi", "n": [1, 2]})
    assert text == '{"event":"message","payload":{"text":"hi","n":[1,2]}}'
    assert isinstance(text, str)


@pytest.mark.parametrize("payload", [0, "", [], {}, False, "\u00e9", 1.25])
def test_falsy_and_unicode_payloads_are_written(payload: Any) -> None:
    decoded = json.loads(encode_frame("e", payload))
    assert decoded == {"event": "e", "payload": payload}


@pytest.mark.parametrize("frame_id", [0, 42, "", "abc"])
def test_id_is_written_when_given(frame_id: int | str) -> None:
    text = encode_frame("ack", {"ok": True}, frame_id)
    assert json.loads(text) == {"event": "ack", "payload": {"ok": True}, "id": frame_id}
    assert " " not in text


def test_payload_is_always_written_even_when_none() -> None:
    assert encode_frame("e") == '{"event":"e","payload":null}'
    assert encode_frame("e", None) == '{"event":"e","payload":null}'
    assert encode_frame("ack", None, 3) == '{"event":"ack","payload":null,"id":3}'


def test_no_id_key_when_not_given() -> None:
    assert "id" not in json.loads(encode_frame("e", 1))


def test_round_trip_through_the_decoder() -> None:
    frame = decode_frame(encode_frame("e", {"a": [1, None]}, 5))
    assert (frame.event, frame.payload, frame.id) == ("e", {"a": [1, None]}, 5)


@pytest.mark.parametrize("payload", [object(), {"a": 1j}, [object()], len, 1j])
def test_unencodable_payload_raises_type_error(payload: Any) -> None:
    with pytest.raises(TypeError):
        encode_frame("e", payload)


def test_error_frame_without_id() -> None:
    text = error_frame("bad_json", "the frame is not valid JSON")
    assert json.loads(text) == {
        "event": "error",
        "payload": {"code": "bad_json", "message": "the frame is not valid JSON"},
    }
    assert text.startswith('{"event":"error","payload":{"code":"bad_json"')


@pytest.mark.parametrize("frame_id", [0, 9, "", "req-1"])
def test_error_frame_with_id(frame_id: int | str) -> None:
    decoded = json.loads(error_frame("unknown_event", "no such event", frame_id))
    assert decoded == {
        "event": "error",
        "payload": {"code": "unknown_event", "message": "no such event"},
        "id": frame_id,
    }


def test_error_frame_from_a_protocol_error() -> None:
    error = protocol_error('{"event": 3, "id": "q1"}')
    decoded = json.loads(error_frame(error.code, error.message, error.frame_id))
    assert decoded["id"] == "q1"
    assert decoded["payload"]["code"] == "bad_frame"
