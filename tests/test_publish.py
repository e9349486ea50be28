"""``POST /_vws/api/publish`` against a real server: keys, targets, the batch form, bad input,
the ``vws_emit`` chain, and delivery across two nodes over a real Redis."""

from __future__ import annotations

import secrets
from typing import Any

import anyio
import httpx
import pytest
from apps.scaleout_brokers import SHARED_REDIS
from wsclient import Peer

pytestmark = pytest.mark.anyio

KEY = "publish-test-key-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {KEY}"}

APP = """
[plugins]
load = ["publish_emit"]

[admin]
key = "{key}"
max_publish_bytes = 2048
max_publish_batch = 3

[routes."/ws".events]
echo = "e2e_handlers:echo"

[routes."/other".events]
echo = "e2e_handlers:echo"

[routes."/private"]
broadcast = "route"
[routes."/private".events]
echo = "e2e_handlers:echo"
"""


async def post(http: str, body: Any = None, *, raw: bytes | None = None, **headers: str):
    async with httpx.AsyncClient(timeout=10) as client:
        if raw is not None:
            return await client.post(f"{http}/_vws/api/publish", content=raw, headers=headers)
        return await client.post(f"{http}/_vws/api/publish", json=body, headers=headers)


@pytest.fixture
def server(start_server):
    return start_server(APP.format(key=KEY))


async def test_the_api_is_off_without_a_key(start_server) -> None:
    server = start_server(APP.replace('key = "{key}"\n', ""))
    async with await Peer.connect(server.url + "/ws") as peer:
        await peer.call("joinRoom", room="lobby")
        message = {"path": "/ws", "room": "lobby", "event": "news"}
        response = await post(server.http, message, **AUTH)
        assert response.status_code == 404
        assert response.json()["error"] == "disabled"
        await peer.nothing_pending()


async def test_a_missing_or_wrong_key_is_refused_and_nothing_is_sent(server) -> None:
    async with await Peer.connect(server.url + "/ws") as peer:
        await peer.call("joinRoom", room="lobby")
        message = {"path": "/ws", "room": "lobby", "event": "news"}
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}):
            response = await post(server.http, message, **headers)
            assert response.status_code == 401, headers
            assert response.headers["www-authenticate"].startswith("Bearer")
        await peer.nothing_pending()


async def test_room_client_and_broadcast_go_through_the_emit_chain(server) -> None:
    async with (
        await Peer.connect(server.url + "/ws") as member,
        await Peer.connect(server.url + "/ws") as outsider,
        await Peer.connect(server.url + "/other") as other,
        await Peer.connect(server.url + "/private") as private,
    ):
        await member.call("joinRoom", room="lobby")
        news = {"path": "/ws", "room": "lobby", "event": "news", "payload": {"n": 1}}
        response = await post(server.http, news, **AUTH)
        assert (response.status_code, response.json()) == (200, {"ok": True})
        assert await member.recv() == {
            "event": "news",
            "payload": {"n": 1, "via": "api", "kind": "room"},
        }
        await outsider.nothing_pending()

        direct = {"path": "/ws", "client_id": other.id, "event": "note", "payload": {"n": 2}}
        assert (await post(server.http, direct, **AUTH)).status_code == 200
        assert (await other.recv())["payload"] == {"n": 2, "via": "api", "kind": "to"}

        everyone = {"path": "/ws", "broadcast": True, "event": "all", "payload": {"n": 3}}
        assert (await post(server.http, everyone, **AUTH)).status_code == 200
        for peer in (member, outsider, other):
            assert (await peer.recv())["payload"] == {"n": 3, "via": "api", "kind": "broadcast"}
        await private.nothing_pending()  # a route-scoped route is its own broadcast domain

        dropped = {"path": "/ws", "room": "lobby", "event": "drop-me"}
        assert (await post(server.http, dropped, **AUTH)).status_code == 200
        await member.nothing_pending()


async def test_an_unknown_client_is_404_and_a_batch_reports_each_message(server) -> None:
    async with await Peer.connect(server.url + "/ws") as peer:
        missing = {"path": "/ws", "client_id": "nobody", "event": "note"}
        response = await post(server.http, missing, **AUTH)
        assert (response.status_code, response.json()["error"]) == (404, "no_such_client")
        batch = [
            {"path": "/ws", "client_id": peer.id, "event": "one", "payload": 1},
            missing,
            {"path": "/ws", "client_id": peer.id, "event": "two", "payload": 2},
        ]
        response = await post(server.http, batch, **AUTH)
        assert response.status_code == 200
        assert response.json() == {
            "sent": 2,
            "results": [{"ok": True}, {"ok": False, "error": "no_such_client"}, {"ok": True}],
        }
        assert [(await peer.recv())["event"] for _ in range(2)] == ["one", "two"]


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"path": "/ws", "event": "x"}, 422, "exactly one of room, client_id"),
        ({"path": "/ws", "event": "x", "room": "r", "broadcast": True}, 422, "exactly one"),
        ({"path": "/nope", "event": "x", "room": "r"}, 422, "no route '/nope'"),
        ({"path": "/ws", "event": "ack", "room": "r"}, 422, "reserved"),
        ({"path": "/ws", "event": "", "room": "r"}, 422, "$.event"),
        ({"path": "/ws", "event": "x", "room": ""}, 422, "room"),
        ({"path": "/ws", "event": "x", "room": "r", "extra": 1}, 422, "extra"),
        ([{"path": "/ws", "event": "x", "room": "r"}, {"path": "/ws", "event": "x"}], 422, "$[1]"),
        ([{"path": "/ws", "event": "x", "room": "r"}] * 4, 422, "at most 3"),
        ("just a string", 422, "Expected"),
    ],
)
async def test_bad_messages_are_422_and_nothing_is_sent(server, body, status, says) -> None:
    async with await Peer.connect(server.url + "/ws") as peer:
        await peer.call("joinRoom", room="r")
        response = await post(server.http, body, **AUTH)
        assert response.status_code == status, response.text
        assert says in response.json()["message"]
        await peer.nothing_pending()


async def test_bad_json_size_media_type_and_method(server) -> None:
    response = await post(server.http, raw=b"{not json", **AUTH)
    assert (response.status_code, response.json()["error"]) == (400, "bad_json")
    big = {"path": "/ws", "room": "r", "event": "x", "payload": "y" * 4096}
    response = await post(server.http, big, **AUTH)
    assert (response.status_code, response.json()["error"]) == (413, "too_large")
    response = await post(server.http, raw=b"{}", **AUTH, **{"Content-Type": "text/plain"})
    assert response.status_code == 415
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{server.http}/_vws/api/publish", headers=AUTH)
    assert response.status_code == 405
    async with await Peer.connect(server.url + "/ws") as peer:  # the server serves on
        assert await peer.call("echo", "still here") == "still here"


async def test_a_publish_reaches_clients_of_another_node(start_server) -> None:
    prefix = "p" + secrets.token_hex(5)
    text = f'[server]\nchannel_prefix = "{prefix}"\n' + APP.format(key=KEY)
    env = {"VWS_BACKPLANE": SHARED_REDIS}
    node_a = start_server(text, env=env, name="a.toml")
    node_b = start_server(text, env=env, name="b.toml")
    async with await Peer.connect(node_b.url + "/ws") as far:
        await far.call("joinRoom", room="lobby")
        direct = {"path": "/ws", "client_id": far.id, "event": "note", "payload": {"n": 1}}
        with anyio.fail_after(20):  # node a learns of node b's clients through the broker
            while (await post(node_a.http, direct, **AUTH)).status_code == 404:
                await anyio.sleep(0.05)
        assert await far.recv() == {
            "event": "note",
            "payload": {"n": 1, "via": "api", "kind": "to"},
        }
        room = {"path": "/ws", "room": "lobby", "event": "news", "payload": {"n": 2}}
        assert (await post(node_a.http, room, **AUTH)).status_code == 200
        assert await far.recv() == {
            "event": "news",
            "payload": {"n": 2, "via": "api", "kind": "room"},
        }


def test_the_admin_table_is_checked_like_the_rest_of_the_file() -> None:
    from vws.config import parse_config
    from vws.errors import ConfigError

    config = parse_config("", "routes.toml", environ={})
    assert (config.admin.key, config.admin.max_publish_bytes) == ("", 1_048_576)
    assert config.admin.max_publish_batch == 1000
    with pytest.raises(ConfigError, match=r"routes.toml:2: admin.key: expected str, got int"):
        parse_config("[admin]\nkey = 5\n", "routes.toml", environ={})
    with pytest.raises(ConfigError, match=r"admin.max_publish_bytes: expected int >= 64"):
        parse_config("[admin]\nmax_publish_bytes = 10\n", "routes.toml", environ={})
    with pytest.raises(ConfigError, match=r"admin.secret: unknown key"):
        parse_config("[admin]\nsecret = 'x'\n", "routes.toml", environ={})
    env = parse_config("[admin]\nkey = 'file'\n", "routes.toml", environ={"VWS_ADMIN_KEY": "env"})
    assert env.admin.key == "env"
