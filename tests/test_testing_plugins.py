"""Each bundled plugin, tested the way a user would test their app: with vws.testing's
in-process clients (no socket, no subprocess)."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import anyio
import pytest
from conftest import APPS

from vws.contrib.auth import mint
from vws.testing import ErrorReply, Refused, TestApp

pytestmark = pytest.mark.anyio

SECRET = "a-test-secret-of-at-least-32-characters!"

ROUTES = """
[routes."/ws".events]
echo = "e2e_handlers:echo"
to_room = "e2e_handlers:to_room"
whoami = "e2e_handlers:whoami"
presence = "vws.contrib.presence:list_members"
"""

App = Callable[[str], AbstractAsyncContextManager[TestApp]]


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> App:
    """``async with app(PLUGINS_TOML) as running:`` the test routes with those plugins."""
    monkeypatch.syspath_prepend(str(APPS))

    @asynccontextmanager
    async def serve(plugins: str) -> AsyncIterator[TestApp]:
        async with TestApp.from_toml(plugins + ROUTES, tmp_path) as running:
            yield running

    return serve


async def test_presence_lists_members_and_announces_joins_and_leaves(app: App) -> None:
    plugins = '[plugins]\nload = ["presence"]\n[plugins.settings.presence]\nnotify = true\n'
    async with app(plugins) as running:
        alice = await running.connect(name="alice")
        bob = await running.connect(name="bob")
        await alice.join("lobby")
        await bob.join("lobby")
        await alice.expect("presence:join", match={"member": {"client_id": bob.id}})
        listed = await bob.request("presence", "lobby")
        assert listed["count"] == 2
        assert {m["client_id"] for m in listed["members"]} == {alice.id, bob.id}
        await bob.close()
        await alice.expect("presence:leave", match={"member": {"client_id": bob.id}})
        assert (await alice.request("presence", "lobby"))["count"] == 1


async def test_ratelimit_refuses_past_the_burst_and_spares_other_clients(app: App) -> None:
    plugins = (
        '[plugins]\nload = ["ratelimit"]\n'
        "[plugins.settings.ratelimit]\nrate = 0.01\nburst = 2\nclose_after = 0\n"
    )
    async with app(plugins) as running:
        flooder, calm = await running.connect(), await running.connect()
        assert await flooder.request("echo", 1) == 1
        assert await flooder.request("echo", 2) == 2
        with pytest.raises(ErrorReply) as refused:
            await flooder.request("echo", 3)
        assert refused.value.code == "rate_limited"
        assert await calm.request("echo", "fine") == "fine"


async def test_auth_refuses_without_a_token_and_limits_rooms_to_the_claim(app: App) -> None:
    plugins = (
        '[plugins]\nload = ["auth"]\n'
        f'[plugins.settings.auth]\nsecret = "{SECRET}"\nrooms_claim = "rooms"\n'
    )
    async with app(plugins) as running:
        with pytest.raises(Refused) as refused:
            await running.connect()
        assert refused.value.code == 4401
        with pytest.raises(Refused):
            await running.connect(query={"token": mint({"sub": "eve"}, "another-secret" * 3)})
        token = mint({"sub": "ann", "rooms": ["team-*"], "exp": time.time() + 60}, SECRET)
        ann = await running.connect(headers={"Authorization": f"Bearer {token}"})
        assert (await ann.request("whoami"))["state"]["claims"]["sub"] == "ann"
        assert await ann.join("team-red") == {"room": "team-red"}
        with pytest.raises(ErrorReply) as denied:
            await ann.join("lobby")
        assert denied.value.code == "join_denied"


async def test_history_replays_a_rooms_last_frames_to_a_client_that_joins(app: App) -> None:
    plugins = (
        '[plugins]\nload = ["history"]\n'
        '[plugins.settings.history]\nrooms = ["lobby"]\nmax_frames = 2\n'
    )
    async with app(plugins) as running:
        writer = await running.connect(name="writer")
        await writer.join("lobby")
        for n in range(3):
            await writer.request("to_room", {"event": "said", "room": "lobby", "payload": n})
        late = await running.connect(name="late")
        await late.join("lobby")
        # the last two frames, oldest first, arrived before the join's ack
        assert late.frames[:2] == [
            {"event": "said", "payload": 1},
            {"event": "said", "payload": 2},
        ]
        assert late.frames[2]["event"] == "ack"
        await late.refute("said", match=0)


async def test_audit_writes_a_line_per_lifecycle_event_and_no_payload(
    app: App, tmp_path: Path
) -> None:
    trail = tmp_path / "audit.log"
    plugins = f'[plugins]\nload = ["audit"]\n[plugins.settings.audit]\nfile = "{trail}"\n'
    async with app(plugins) as running:
        client = await running.connect()
        await client.join("lobby")
        await client.request("echo", "PRIVATE-PAYLOAD")
        await client.leave("lobby")
        await client.close(4000)
    lines = [json.loads(line) for line in (await anyio.Path(trail).read_text()).splitlines()]
    assert [line["event"] for line in lines] == ["connect", "join", "leave", "disconnect"]
    assert {line["client_id"] for line in lines} == {client.id}
    assert lines[-1]["code"] == 4000
    assert "PRIVATE-PAYLOAD" not in await anyio.Path(trail).read_text()
