"""SPEC §1 end to end: a real ``vws run`` and real WebSocket clients."""

from __future__ import annotations

import json

import pytest
import websockets
from conftest import RunningServer
from wsclient import Peer

pytestmark = pytest.mark.anyio


async def test_connected_is_the_first_frame_with_one_unguessable_id(demo_server: RunningServer):
    async with (
        await Peer.connect(demo_server.url + "/ws") as a,
        await Peer.connect(demo_server.url + "/ws") as b,
    ):
        payload = a.hello["payload"]
        assert a.hello == {"event": "connected", "payload": payload}
        assert payload["client_id"] == payload["session_id"]
        assert len(payload["client_id"]) >= 16
        assert a.id != b.id


async def test_connect_handler_frames_follow_connected(demo_server: RunningServer):
    async with await Peer.connect(demo_server.url + "/ws?greet=1") as a:
        hello = await a.recv()
        assert hello == {"event": "hello", "payload": {"path": "/ws", "state": {}}}


async def test_ack_carries_the_id_and_the_handler_return_value(demo_server: RunningServer):
    async with await Peer.connect(demo_server.url + "/ws") as a:
        await a.send({"event": "echo", "payload": {"n": 1}, "id": 7})
        assert await a.recv() == {"event": "ack", "payload": {"n": 1}, "id": 7}
        await a.send({"event": "echo_async", "payload": [1, 2], "id": "req-1"})
        assert await a.recv() == {"event": "ack", "payload": [1, 2], "id": "req-1"}


async def test_a_frame_without_id_gets_no_ack(demo_server: RunningServer):
    async with await Peer.connect(demo_server.url + "/ws") as a:
        await a.send({"event": "echo", "payload": "quiet"})
        await a.send({"event": "echo", "payload": "quiet", "id": None})
        await a.nothing_pending()


async def test_ack_comes_after_every_frame_the_handler_queued(demo_server: RunningServer):
    async with await Peer.connect(demo_server.url + "/ws") as a:
        reply = await a.request("burst", {"count": 5})
        assert [f["payload"] for f in a.before] == [0, 1, 2, 3, 4]
        assert reply == {"event": "ack", "payload": 5, "id": reply["id"]}


async def test_emit_reaches_only_the_sender(demo_server: RunningServer):
    async with (
        await Peer.connect(demo_server.url + "/ws") as a,
        await Peer.connect(demo_server.url + "/ws") as b,
    ):
        await a.call("emit", {"event": "note", "payload": {"x": 1}})
        assert a.before == [{"event": "note", "payload": {"x": 1}}]
        await b.nothing_pending()


@pytest.mark.parametrize("event", ["joinRoom", "join-room"])
async def test_join_is_acknowledged_with_the_room(demo_server: RunningServer, event: str):
    async with await Peer.connect(demo_server.url + "/ws") as a:
        assert await a.call(event, room="r-join") == {"room": "r-join"}
        assert await a.call(event, room="r-join") == {"room": "r-join"}  # again: nothing changes
        assert await a.call("rooms") == ["r-join"]


@pytest.mark.parametrize("event", ["leftRoom", "left-room"])
async def test_leaving_works_and_is_acknowledged(demo_server: RunningServer, event: str):
    async with (
        await Peer.connect(demo_server.url + "/ws") as a,
        await Peer.connect(demo_server.url + "/ws") as b,
    ):
        await a.call("joinRoom", room="r-leave")
        await b.call("joinRoom", room="r-leave")
        assert await a.call(event, room="r-leave") == {"room": "r-leave"}
        assert await a.call(event, room="r-leave") == {"room": "r-leave"}  # not a member: acked
        assert await a.call("rooms") == []
        await b.call("to_room", {"event": "after", "room": "r-leave"})
        assert b.before == [{"event": "after", "payload": None}]
        await a.nothing_pending()


async def test_to_room_reaches_members_and_the_sender_if_member(demo_server: RunningServer):
    url = demo_server.url + "/ws"
    async with (
        await Peer.connect(url) as a,
        await Peer.connect(url) as b,
        await Peer.connect(url) as c,
    ):
        await a.call("joinRoom", room="r-members")
        await b.call("joinRoom", room="r-members")
        await a.call("to_room", {"event": "said", "room": "r-members", "payload": "hi"})
        assert a.before == [{"event": "said", "payload": "hi"}]
        assert await b.recv() == {"event": "said", "payload": "hi"}
        await c.nothing_pending()
        # the sender need not be a member
        await c.call("to_room", {"event": "from-outside", "room": "r-members"})
        assert c.before == []
        assert (await a.recv())["event"] == "from-outside"
        assert (await b.recv())["event"] == "from-outside"


async def test_joining_twice_delivers_once(demo_server: RunningServer):
    url = demo_server.url + "/ws"
    async with await Peer.connect(url) as a, await Peer.connect(url) as b:
        await a.call("joinRoom", room="r-twice")
        await a.call("join-room", room="r-twice")
        assert await a.call("join", "r-twice") is False  # Client.join: already a member
        await b.call("to_room", {"event": "once", "room": "r-twice"})
        assert await a.recv() == {"event": "once", "payload": None}
        await a.nothing_pending()


async def test_rooms_are_per_path(demo_server: RunningServer):
    async with (
        await Peer.connect(demo_server.url + "/ws") as a,
        await Peer.connect(demo_server.url + "/other") as b,
    ):
        await a.call("joinRoom", room="lobby-per-path")
        await b.call("joinRoom", room="lobby-per-path")
        await b.call("to_room", {"event": "other-only", "room": "lobby-per-path"})
        assert b.before == [{"event": "other-only", "payload": None}]
        await a.nothing_pending()


async def test_to_reaches_one_client_on_any_path(demo_server: RunningServer):
    async with (
        await Peer.connect(demo_server.url + "/ws") as a,
        await Peer.connect(demo_server.url + "/other") as b,
    ):
        assert await b.call("to", {"id": a.id, "event": "direct", "payload": 1}) is True
        assert await a.recv() == {"event": "direct", "payload": 1}
        assert await b.call("to", {"id": "no-such-client", "event": "direct"}) is False
        await a.nothing_pending()


async def test_disconnect_leaves_every_room(demo_server: RunningServer):
    url = demo_server.url + "/ws"
    async with await Peer.connect(url) as a, await Peer.connect(url) as b:
        for room in ("r-d1", "r-d2"):
            await a.call("joinRoom", room=room)
            await b.call("joinRoom", room=room)
        await a.ws.close()
        # once b's "to" finds a gone, the server has finished a's disconnect
        for _ in range(200):
            if not await b.call("to", {"id": a.id, "event": "ping"}):
                break
        else:
            pytest.fail("the closed client stayed registered")
        assert await b.call("join", "r-d1") is False  # b still a member, rooms still there
        await b.call("to_room", {"event": "still", "room": "r-d1"})
        assert b.before == [{"event": "still", "payload": None}]


async def test_three_hundred_frames_arrive_in_order_with_a_small_queue(
    demo_server: RunningServer,
):
    url = demo_server.url + "/ws"
    async with await Peer.connect(url) as a, await Peer.connect(url) as b:
        await b.call("joinRoom", room="r-order")
        reply = await a.request("burst", {"count": 300})  # to itself, send_queue = 64
        assert [f["payload"] for f in a.before] == list(range(300))
        assert reply["payload"] == 300
        await a.call("burst", {"count": 300, "room": "r-order"})  # to another client
        assert [(await b.recv())["payload"] for _ in range(300)] == list(range(300))


async def test_frames_from_one_sender_keep_their_order_across_methods(
    demo_server: RunningServer,
):
    url = demo_server.url + "/ws"
    async with await Peer.connect(url) as a, await Peer.connect(url) as b:
        await b.call("joinRoom", room="r-mixed")
        for i in range(20):
            await a.send(
                {"event": "to_room", "payload": {"event": "m", "room": "r-mixed", "payload": i}}
            )
            await a.send({"event": "to", "payload": {"id": b.id, "event": "m", "payload": -i}})
        got = [(await b.recv())["payload"] for _ in range(40)]
        assert got == [v for i in range(20) for v in (i, -i)]


async def test_client_attributes(demo_server: RunningServer):
    async with await Peer.connect(
        demo_server.url + "/ws?a=1&a=2&b=x", additional_headers={"X-Test": "yes"}
    ) as a:
        me = await a.call("whoami")
        assert me == {
            "id": a.id,
            "path": "/ws",
            "x_test": "yes",
            "query": {"a": "2", "b": "x"},
            "state": {},
        }


async def test_schema_converts_the_payload(demo_server: RunningServer):
    async with await Peer.connect(demo_server.url + "/ws") as a:
        assert await a.call("typed", {"x": 2, "y": 3}) == {"type": "Point", "sum": 5}


async def test_close_from_a_handler_flushes_first(demo_server: RunningServer):
    async with await Peer.connect(demo_server.url + "/ws") as a:
        await a.send({"event": "close", "payload": {"code": 4000, "reason": "done"}})
        code, frames = await a.closed()
        assert code == 4000
        assert frames == [{"event": "bye", "payload": None}]


# -- errors ---------------------------------------------------------------------------------


async def error_of(peer: Peer, frame: object) -> dict:
    await peer.send(frame)
    reply = await peer.recv()
    assert reply["event"] == "error", reply
    return reply


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("not json", "bad_json"),
        ("{", "bad_json"),
        ("[1, 2]", "bad_frame"),
        ('"event"', "bad_frame"),
        ('{"payload": 1}', "bad_frame"),
        ('{"event": 5}', "bad_frame"),
        ('{"event": ""}', "bad_frame"),
        (json.dumps({"event": "e" * 129}), "bad_frame"),
        ('{"event": "echo", "id": 1.5}', "bad_frame"),
        ('{"event": "echo", "id": [1]}', "bad_frame"),
        ('{"event": "echo", "id": true}', "bad_frame"),
        (b"\x00binary", "bad_frame"),
        ('{"event": "nope"}', "unknown_event"),
        ('{"event": "connect"}', "reserved_event"),
        ('{"event": "disconnect"}', "reserved_event"),
        ('{"event": "ack"}', "reserved_event"),
        ('{"event": "connected"}', "reserved_event"),
        ('{"event": "error"}', "reserved_event"),
        ('{"event": "joinRoom"}', "bad_room"),
        ('{"event": "joinRoom", "room": 5}', "bad_room"),
        ('{"event": "leftRoom", "room": ""}', "bad_room"),
        (json.dumps({"event": "join-room", "room": "r" * 201}), "bad_room"),
        ('{"event": "typed", "payload": {"x": 1}}', "invalid_payload"),
        ('{"event": "deny"}', "denied"),
        ('{"event": "boom"}', "handler_error"),
        ('{"event": "bad_return", "id": 1}', "handler_error"),
    ],
)
async def test_bad_input_gets_an_error_frame_and_the_connection_stays(
    demo_server: RunningServer, frame: str | bytes, code: str
):
    async with await Peer.connect(demo_server.url + "/ws") as a:
        reply = await error_of(a, frame)
        assert reply["payload"]["code"] == code
        assert isinstance(reply["payload"]["message"], str) and reply["payload"]["message"]
        assert await a.call("echo", "still here") == "still here"


async def test_an_error_carries_the_offending_frame_id(demo_server: RunningServer):
    async with await Peer.connect(demo_server.url + "/ws") as a:
        assert (await error_of(a, {"event": "nope", "id": 3}))["id"] == 3
        assert (await error_of(a, '{"event": "", "id": "x"}'))["id"] == "x"
        assert "id" not in await error_of(a, '{"event": "nope"}')


async def test_invalid_payload_names_the_failing_location(demo_server: RunningServer):
    async with await Peer.connect(demo_server.url + "/ws") as a:
        reply = await error_of(a, {"event": "typed", "payload": {"x": 1, "y": "two"}})
        assert reply["payload"]["code"] == "invalid_payload"
        assert "$.y" in reply["payload"]["message"]


async def test_handler_error_never_leaks_the_exception(demo_server: RunningServer):
    async with await Peer.connect(demo_server.url + "/ws") as a:
        reply = await error_of(a, {"event": "boom", "id": 1})
        assert reply["payload"]["code"] == "handler_error"
        assert "secret-internal-detail" not in json.dumps(reply)
        assert "Traceback" not in json.dumps(reply)
        assert "secret-internal-detail" in demo_server.log()  # but the server logs it


async def test_deny_from_a_handler_says_its_reason(demo_server: RunningServer):
    async with await Peer.connect(demo_server.url + "/ws") as a:
        reply = await error_of(a, {"event": "deny", "id": 2})
        assert reply == {
            "event": "error",
            "id": 2,
            "payload": {"code": "denied", "message": "not today"},
        }


async def test_too_many_rooms(demo_server: RunningServer):
    async with await Peer.connect(demo_server.url + "/ws") as a:
        for i in range(3):  # max_rooms_per_client = 3
            await a.call("joinRoom", room=f"r-max-{i}")
        reply = await error_of(a, {"event": "joinRoom", "room": "r-max-3", "id": 9})
        assert reply["payload"]["code"] == "too_many_rooms"
        assert await a.call("join", "r-max-3") is False
        assert await a.call("rooms") == ["r-max-0", "r-max-1", "r-max-2"]
        await a.call("leftRoom", room="r-max-0")
        assert await a.call("joinRoom", room="r-max-3") == {"room": "r-max-3"}


async def test_a_message_over_max_message_bytes_closes_with_1009(demo_server: RunningServer):
    async with (
        await Peer.connect(demo_server.url + "/ws") as a,
        await Peer.connect(demo_server.url + "/ws") as b,
    ):
        await a.send({"event": "echo", "payload": "x" * 5000})  # max_message_bytes = 4096
        code, _ = await a.closed()
        assert code == 1009
        assert await b.call("echo", "others unaffected") == "others unaffected"


async def test_a_path_not_in_the_routes_closes_with_4404(demo_server: RunningServer):
    async with websockets.connect(demo_server.url + "/nowhere") as ws:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4404


# -- origin ---------------------------------------------------------------------------------


async def test_a_foreign_origin_is_refused_with_403(demo_server: RunningServer):
    with pytest.raises(websockets.InvalidStatus) as refused:
        await websockets.connect(demo_server.url + "/ws", origin="http://evil.example")
    assert refused.value.response.status_code == 403


async def test_the_same_host_origin_is_allowed(demo_server: RunningServer):
    origin = f"http://127.0.0.1:{demo_server.port}"
    async with await Peer.connect(demo_server.url + "/ws", origin=origin) as a:
        assert a.id


async def test_allowed_origins_and_star(start_server):
    server = start_server(
        '[server]\nallowed_origins = ["https://app.example"]\n'
        '[routes."/ws".events]\necho = "e2e_handlers:echo"\n'
    )
    async with await Peer.connect(server.url + "/ws", origin="https://app.example") as a:
        assert await a.call("echo", 1) == 1
    with pytest.raises(websockets.InvalidStatus):
        await websockets.connect(server.url + "/ws", origin="https://other.example")
    star = start_server(
        '[server]\nallowed_origins = ["*"]\n[routes."/ws".events]\necho = "e2e_handlers:echo"\n',
        name="star.toml",
    )
    async with await Peer.connect(star.url + "/ws", origin="https://any.example") as a:
        assert await a.call("echo", 2) == 2


# -- middleware -----------------------------------------------------------------------------


async def test_middleware_runs_in_order_and_fills_state(demo_server: RunningServer):
    async with await Peer.connect(demo_server.url + "/guarded?token=good&greet=1") as a:
        assert await a.recv() == {
            "event": "hello",
            "payload": {"path": "/guarded", "state": {"seen": ["first", "require_token"]}},
        }


@pytest.mark.parametrize(("token", "code"), [("bad", 4401), ("forbidden", 4403)])
async def test_middleware_refusal_closes_before_the_client_exists(
    demo_server: RunningServer, token: str, code: int
):
    async with websockets.connect(demo_server.url + f"/guarded?token={token}") as ws:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()  # never a connected frame: the close comes first
    assert closed.value.rcvd is not None and closed.value.rcvd.code == code


async def test_a_refused_socket_never_receives_a_broadcast(demo_server: RunningServer):
    async with websockets.connect(demo_server.url + "/guarded?token=bad") as refused:
        async with await Peer.connect(demo_server.url + "/other") as a:
            await a.call("broadcast", {"event": "to-everyone"})
        with pytest.raises(websockets.ConnectionClosed):
            frame = await refused.recv()
            pytest.fail(f"a refused socket received {frame!r}")
