"""The client registry and the wire format, without a broker."""

from __future__ import annotations

import pytest

from vws.backplane import Envelope, Target
from vws.backplane.registry import Registry
from vws.backplane.wire import Control, Op, decode, encode_control, encode_envelope


def test_snapshot_then_deltas_track_which_node_holds_each_client():
    registry = Registry()
    registry.snapshot("n1", ["a", "b"], now=0.0)
    registry.delta("n2", ["c"], (), now=0.0)
    assert registry.owner("a") == "n1" and registry.owner("c") == "n2"
    registry.delta("n1", ["d"], ["a"], now=1.0)
    assert registry.owner("a") is None and registry.owner("d") == "n1"
    registry.snapshot("n1", ["b"], now=2.0)  # a snapshot replaces what was known
    assert registry.owner("d") is None and registry.owner("b") == "n1"
    assert registry.owners == {"b": "n1", "c": "n2"}


def test_a_heartbeat_out_of_step_asks_for_one_snapshot_per_interval():
    registry = Registry()
    assert registry.heartbeat("n1", 0, now=0.0, every=1.0)  # never heard of: ask
    registry.snapshot("n1", ["a", "b"], now=0.1)
    assert not registry.heartbeat("n1", 2, now=0.5, every=1.0)  # in step
    assert registry.heartbeat("n1", 3, now=1.5, every=1.0)  # a delta was lost: ask
    assert not registry.heartbeat("n1", 3, now=1.6, every=1.0)  # asked already
    assert registry.heartbeat("n1", 3, now=2.6, every=1.0)


def test_silent_nodes_expire_with_their_clients_and_bye_forgets_at_once():
    registry = Registry()
    registry.snapshot("n1", ["a"], now=0.0)
    registry.snapshot("n2", ["b"], now=0.0)
    registry.heartbeat("n2", 1, now=5.0, every=1.0)
    assert registry.expire(now=8.0, timeout=5.0) == ["n1"]
    assert registry.owner("a") is None and registry.owner("b") == "n2"
    registry.forget("n2")
    assert registry.owners == {} and registry.peers == {}


def test_envelopes_and_controls_round_trip_and_foreign_bytes_are_refused():
    envelope = Envelope(Target.ROOM, "/ws", "lobby", "", '{"event":"x","payload":1}', "n1")
    assert decode(encode_envelope(envelope)) == envelope
    control = Control(Op.ADDED, "n1", ["a", "b"], 2)
    assert decode(encode_control(control)) == control
    for junk in (b"", b"Zzz", b"E\xc1", b"C[1"):
        with pytest.raises(ValueError):
            decode(junk)
