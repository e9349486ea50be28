"""vws.testing: the in-process client, the live server and the fixtures of the pytest plugin."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from conftest import APPS, DEMO_APP

from vws.testing import ErrorReply, FrameTimeout, LiveServer, Refused, TestApp

pytestmark = pytest.mark.anyio


@pytest.fixture
async def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[TestApp]:
    """The end-to-end demo app (tests/apps/e2e_handlers.py), in-process."""
    monkeypatch.syspath_prepend(str(APPS))
    async with TestApp.from_toml(DEMO_APP, tmp_path, timeout=1.0) as running:
        yield running


CHAT = """
[routes."/ws".events]
say = "testing_chat:say"
disconnect = "testing_chat:on_disconnect"

[routes."/guarded"]
middleware = ["e2e_handlers:first_middleware", "e2e_handlers:require_token"]
[routes."/guarded".events]
whoami = "e2e_handlers:whoami"
"""


@pytest.fixture
def vws_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """What the vws_app and vws_live fixtures serve in this module (the plugin's own fixture,
    overridden as the docs show)."""
    monkeypatch.syspath_prepend(str(APPS))
    config = tmp_path / "chat" / "routes.toml"
    config.parent.mkdir()
    config.write_text(CHAT)
    return config


async def test_the_five_line_test_of_the_docs(vws_app: TestApp) -> None:
    alice, bob = await vws_app.connect("/ws"), await vws_app.connect("/ws")
    assert await alice.request("say", "hi") == {"ok": True}
    await bob.expect("said", match={"from": alice.id, "text": "hi"})
    await alice.refute("said")  # a broadcast skips its sender


async def test_request_returns_the_ack_and_raises_on_an_error_reply(app: TestApp) -> None:
    client = await app.connect("/ws")
    assert await client.request("echo", {"n": 1}) == {"n": 1}
    assert await client.join("lobby") == {"room": "lobby"}
    with pytest.raises(ErrorReply) as error:
        await client.request("boom")
    assert error.value.code == "handler_error"
    assert "secret" not in error.value.message
    with pytest.raises(ErrorReply) as error:
        await client.request("no-such-event")
    assert error.value.code == "unknown_event"


async def test_expect_takes_the_first_matching_frame_and_leaves_the_rest(app: TestApp) -> None:
    client = await app.connect("/ws")
    for n in range(3):
        await client.request("emit", {"event": "tick", "payload": {"n": n, "tag": "x"}})
    assert await client.expect("tick", match={"n": 1}) == {"n": 1, "tag": "x"}
    assert await client.expect("tick") == {"n": 0, "tag": "x"}
    assert await client.expect("tick", match=lambda p: p["n"] > 1) == {"n": 2, "tag": "x"}
    assert client.pending == []
    assert [f["payload"]["n"] for f in client.frames if f["event"] == "tick"] == [0, 1, 2]


async def test_a_receive_that_times_out_lists_the_frames_received_so_far(app: TestApp) -> None:
    client = await app.connect("/ws", name="carol")
    await client.request("emit", {"event": "tick", "payload": 7})
    with pytest.raises(FrameTimeout) as timeout:
        await client.expect("tock", timeout=0.05)
    message = str(timeout.value)
    assert "carol waited 0.05 s for a 'tock' frame" in message
    assert '{"event": "tick", "payload": 7}' in message
    assert '"event": "ack"' in message


async def test_refute_waits_for_the_app_to_be_idle_instead_of_a_guessed_time(
    app: TestApp,
) -> None:
    alice = await app.connect("/ws", name="alice")
    bob = await app.connect("/ws", name="bob")
    await bob.join("room")
    # sent without waiting for the ack: refute must still see the frame the handler queued
    await alice.send("to_room", {"event": "news", "room": "room", "payload": 1})
    with pytest.raises(AssertionError, match="bob received a 'news' frame"):
        await bob.refute("news")
    await alice.send("to_room", {"event": "news", "room": "elsewhere", "payload": 2})
    await alice.send("echo_async", None)  # an async handler: settle waits for it too
    await bob.refute("news", match=2)


async def test_several_named_clients(app: TestApp) -> None:
    await app.connect("/ws", name="alice")
    await app.connect("/other", name="bob")
    assert await app["bob"].request("to", {"id": app["alice"].id, "event": "psst"}) is True
    await app["alice"].expect("psst")
    with pytest.raises(ValueError, match="already"):
        await app.connect("/ws", name="alice")


async def test_refusals_raise_refused_with_the_close_code(app: TestApp) -> None:
    with pytest.raises(Refused) as refused:
        await app.connect("/guarded", query={"token": "bad"})
    assert (refused.value.code, refused.value.reason) == (4401, "bad token")
    with pytest.raises(Refused) as refused:
        await app.connect("/guarded", query={"token": "forbidden"})
    assert refused.value.code == 4403
    with pytest.raises(Refused) as refused:
        await app.connect("/nowhere")
    assert refused.value.code == 4404
    with pytest.raises(Refused) as refused:
        await app.connect("/ws", headers={"Origin": "https://evil.example"})
    assert refused.value.code == 403
    client = await app.connect("/guarded", query={"token": "good"}, headers={"X-Test": "yes"})
    assert (await client.request("whoami"))["x_test"] == "yes"


async def test_a_frame_over_the_limit_closes_with_1009(app: TestApp) -> None:
    client = await app.connect("/ws")
    await client.send("echo", "x" * 5000)
    assert await client.wait_closed() == 1009
    with pytest.raises(AssertionError, match="closed"):
        await client.send("echo", 1)


async def test_a_client_close_runs_the_disconnect_handler(app: TestApp) -> None:
    watcher = await app.connect("/ws")
    leaving = await app.connect("/ws", query={"announce": "1"})
    await leaving.close()
    assert leaving.id not in app.server.connections
    await watcher.expect("gone", match={"id": leaving.id})


def test_the_plugin_is_registered_for_every_vws_install(pytestconfig: pytest.Config) -> None:
    assert pytestconfig.pluginmanager.has_plugin("vws")
    assert pytestconfig.getini("vws_config") == "routes.toml"


async def test_the_live_server_speaks_real_websockets(vws_live: LiveServer) -> None:
    alice = await vws_live.connect("/ws", name="alice")
    bob = await vws_live.connect("/ws", name="bob")
    await alice.request("say", "over a socket")
    await bob.expect("said", match={"from": alice.id, "text": "over a socket"})
    await alice.refute("said")
    with pytest.raises(Refused) as refused:
        await vws_live.connect("/guarded", query={"token": "wrong"})
    assert refused.value.code == 4401
    guarded = await vws_live.connect("/guarded", query={"token": "good"})
    assert (await guarded.request("whoami"))["state"]["seen"] == ["first", "require_token"]
    await alice.close()
    await bob.expect("left", match={"client_id": alice.id})
    await bob.close()
