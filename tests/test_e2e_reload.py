"""Live configuration end to end: edit routes.toml under a running ``vws run``."""

from __future__ import annotations

import signal
import time
from collections.abc import Awaitable, Callable

import anyio
import pytest
from conftest import RunningServer
from wsclient import Peer

pytestmark = pytest.mark.anyio

BASE = """
[routes."/ws".events]
echo = "e2e_handlers:echo"
rooms = "e2e_handlers:rooms"
to_room = "e2e_handlers:to_room"
emit = "e2e_handlers:emit"

[routes."/gone".events]
echo = "e2e_handlers:echo"
"""

WAIT = 10.0


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = WAIT) -> float:
    """Poll ``check`` until it is true; how long that took (fails after ``timeout``)."""
    start = time.monotonic()
    with anyio.fail_after(timeout):
        while not await check():
            await anyio.sleep(0.02)
    return time.monotonic() - start


def edit(server: RunningServer, text: str) -> None:
    server.config.write_text(text)


async def answers(peer: Peer, event: str, payload: object = None) -> bool:
    return (await peer.request(event, payload))["event"] == "ack"


async def test_a_client_keeps_its_id_and_rooms_and_gets_the_new_event_within_a_second(
    start_server,
):
    server = start_server(BASE)
    async with (
        await Peer.connect(server.url + "/ws") as a,
        await Peer.connect(server.url + "/ws") as b,
    ):
        await a.call("joinRoom", room="kept")
        await b.call("joinRoom", room="kept")
        assert (await a.request("typed", {"x": 1, "y": 2}))["payload"]["code"] == "unknown_event"
        edit(
            server,
            BASE + '[routes."/ws".events.typed]\nhandler = "e2e_handlers:typed"\n'
            'schema = "e2e_handlers:Point"\n',
        )
        took = await eventually(lambda: answers(a, "typed", {"x": 1, "y": 2}))
        assert took < 1.0, f"the edit took {took:.2f} s to apply"
        assert await a.call("typed", {"x": 1, "y": 2}) == {"type": "Point", "sum": 3}
        assert await a.call("rooms") == ["kept"]
        await b.call("to_room", {"event": "still", "room": "kept"})
        assert await a.recv() == {"event": "still", "payload": None}
    assert "reloaded routes.toml: /ws: +typed" in server.log()


async def test_removing_a_path_closes_its_clients_with_4404_and_leaves_others(start_server):
    server = start_server(BASE)
    async with (
        await Peer.connect(server.url + "/ws") as a,
        await Peer.connect(server.url + "/gone") as g,
    ):
        edit(server, BASE.split('[routes."/gone"')[0])
        code, _ = await g.closed()
        assert code == 4404
        assert await a.call("echo", "fine") == "fine"
    assert "reloaded routes.toml: -/gone" in server.log()


async def test_an_invalid_edit_is_refused_and_the_next_valid_one_applies(start_server):
    server = start_server(BASE)
    async with await Peer.connect(server.url + "/ws") as a:
        broken = BASE + 'broken = "e2e_handlers:does_not_exist"\n'
        edit(server, broken)
        await eventually(lambda: _logged(server, "reload refused"))
        line = broken.splitlines().index('broken = "e2e_handlers:does_not_exist"') + 1
        assert f'routes.toml:{line}: routes."/gone".events.broken: module' in server.log()
        assert await a.call("echo", "old table") == "old table"
        edit(server, BASE + '[routes."/new".events]\necho = "e2e_handlers:echo"\n')
        await eventually(lambda: _logged(server, "reloaded routes.toml: +/new"))
        async with await Peer.connect(server.url + "/new") as n:
            assert await n.call("echo", 1) == 1
        assert await a.call("echo", "same connection") == "same connection"


async def _logged(server: RunningServer, text: str) -> bool:
    return text in server.log()


async def test_a_burst_of_frames_during_reloads_all_get_answers(start_server):
    # The burst is far over the default message and frame rates; what is tested is the reload.
    server = start_server('[server]\nrate = "off"\nmax_frame_rate = 1000000\n' + BASE)
    async with await Peer.connect(server.url + "/ws") as a:
        replies: list[dict] = []
        sent = 0

        async def read(expected: int) -> None:
            while len(replies) < expected:
                replies.append(await a.recv())

        for round_ in range(3):
            extra = f'[routes."/extra{round_}".events]\necho = "e2e_handlers:echo"\n'
            edit(server, '[server]\nrate = "off"\nmax_frame_rate = 1000000\n' + BASE + extra)
            # keep frames in flight until the server has swapped in the edit (bounded by time,
            # not by a count of frames: a fast machine sends 50,000 before a slow reload)
            deadline = time.monotonic() + 20
            while f"+/extra{round_}" not in server.log() and time.monotonic() < deadline:
                for _ in range(20):
                    await a.send({"event": "echo", "payload": sent, "id": sent})
                    sent += 1
                with anyio.fail_after(WAIT):
                    await read(sent)
            assert f"+/extra{round_}" in server.log()
        assert [r["id"] for r in replies] == list(range(sent))
        assert all(r["event"] == "ack" and r["payload"] == r["id"] for r in replies)


async def test_sighup_reloads_when_watching_is_off(start_server):
    server = start_server(BASE, args=("--no-watch",))
    async with await Peer.connect(server.url + "/ws") as a:
        edit(
            server,
            BASE.replace(
                '[routes."/gone"',
                '[routes."/ws".events.more]\nhandler = "e2e_handlers:echo"\n\n[routes."/gone"',
            ),
        )
        assert (await a.request("more", 1))["payload"]["code"] == "unknown_event"
        server.process.send_signal(signal.SIGHUP)
        await eventually(lambda: answers(a, "more", 1))
        assert await a.call("more", 2) == 2


async def test_a_plugin_list_change_applies_to_live_connections(start_server):
    server = start_server(BASE)
    async with await Peer.connect(server.url + "/ws") as a:
        await a.call("emit", {"event": "shout", "payload": "hi"})
        assert a.before == [{"event": "shout", "payload": "hi"}]
        edit(server, '[plugins]\nload = ["e2e_second_plugin"]\n' + BASE)

        async def rewritten() -> bool:
            await a.call("emit", {"event": "shout", "payload": "hi"})
            return a.before == [{"event": "shout", "payload": "hi-second"}]

        await eventually(rewritten)
        assert "~plugins" in server.log()


async def test_plugins_added_by_a_reload_start_and_removed_ones_stop(start_server):
    server = start_server(BASE)
    async with await Peer.connect(server.url + "/ws") as a:
        edit(server, '[plugins]\nload = ["e2e_plugins"]\n' + BASE)
        await eventually(lambda: _logged(server, "e2e plugin: startup"))
        denied = await a.request("joinRoom", room="forbidden-after-reload")
        assert denied["payload"]["code"] == "join_denied"  # its hooks serve live connections
        edit(server, BASE)
        await eventually(lambda: _logged(server, "e2e plugin: shutdown"))
        assert await a.call("joinRoom", room="forbidden-after-reload") == {
            "room": "forbidden-after-reload"
        }
    assert "Traceback" not in server.log()
