"""plugins/vws-moderation, the worked example of #16, as its users get it: installed by pip
(not editable) into a venv of its own, found by its entry point, and run by that venv's
``vws run`` against real WebSocket clients.

The venv is made without pip of its own and sees the main venv's packages through a ``.pth``
file, so it has vws (and pip, setuptools) without a download; ``VENV/bin/python -m pip``
installs into it, since pip installs for the interpreter that runs it. The source is copied and
the copy removed once installed: the checkout stays clean, and nothing can be served from it.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from apps.scaleout_brokers import SHARED_REDIS, eventually
from conftest import APPS, REPO, RunningServer
from wsclient import Peer

pytestmark = pytest.mark.anyio

PACKAGE = REPO / "plugins" / "vws-moderation"
KEY = "moderation-admin-key-0123456789abcdef"
APP = f"""
[admin]
key = "{KEY}"

[plugins]
load = ["history"]

[plugins.settings.history]
rooms = ["*"]

[plugins.settings.moderation]
words = ["darn", "heck", "dagnabbit"]
moderators = ["mod"]

[routes."/ws"]
middleware = ["moderation_app:identify"]
[routes."/ws".events]
echo = "e2e_handlers:echo"
emit = "e2e_handlers:emit"
to_room = "e2e_handlers:to_room"
to = "e2e_handlers:to"
broadcast = "e2e_handlers:broadcast"
leave = "e2e_handlers:leave"
mute = "vws_moderation:mute"
unmute = "vws_moderation:unmute"

[routes."/typed"]
middleware = ["moderation_app:identify"]
[routes."/typed".events.mute]
handler = "vws_moderation:mute"
schema = "vws_moderation:Target"
"""


class Venv:
    """A venv with vws-moderation installed, and the environment its commands run in."""

    def __init__(self, root: Path) -> None:
        self.python = root / "bin" / "python"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("VWS_")}
        self.env["PYTHONPATH"] = str(APPS)  # the test app's middleware and handlers only

    def vws(self, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.python), "-m", "vws.cli", *args],
            cwd=cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Venv:
    root = tmp_path_factory.mktemp("moderation")
    created = Venv(root / "venv")
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(root / "venv")], check=True, timeout=60
    )
    purelib = subprocess.run(
        [str(created.python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout.strip()
    # addsitedir, not a bare path: the main venv's own .pth files (vws's editable install)
    # are read too
    main = sysconfig.get_paths()["purelib"]
    (Path(purelib) / "main-venv.pth").write_text(f"import site; site.addsitedir({main!r})\n")
    source = root / "src"
    shutil.copytree(PACKAGE, source, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    subprocess.run(
        [
            *(str(created.python), "-m", "pip", "install", "--quiet", "--no-deps"),
            *("--no-build-isolation", "--no-index", str(source)),
        ],
        check=True,
        env=created.env,
        timeout=300,
    )
    shutil.rmtree(source)
    assert (Path(purelib) / "vws_moderation.py").is_file()
    return created


def serve(venv: Venv, config: Path, **env: str) -> RunningServer:
    """The venv's own ``vws run`` of ``config``, logging JSON lines."""
    command: tuple[str, ...] = (str(venv.python), "-m", "vws.cli", "run", "--config", str(config))
    command += ("--port", "{port}", "--log-format", "json", "--no-watch")
    return RunningServer(config, {**venv.env, **env}, command=command)


@pytest.fixture(scope="module")
def server(venv: Venv, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    config = tmp_path_factory.mktemp("moderation-app") / "routes.toml"
    config.write_text(APP)
    running = serve(venv, config)
    yield running
    running.stop()


def test_the_plugin_is_found_by_its_entry_point(venv: Venv, tmp_path: Path) -> None:
    (tmp_path / "routes.toml").write_text(APP)
    listed = venv.vws("plugins", "--json", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    found = {plugin["name"]: plugin for plugin in json.loads(listed.stdout)}
    assert found["moderation"]["source"] == "entry point (vws-moderation 0.1.0)"
    assert found["moderation"]["version"] == "0.1.0"
    assert set(found["moderation"]["hooks"]) == {
        "vws_join_room",
        "vws_emit",
        "vws_deliver",
        "vws_disconnect",
        "vws_left_room",
    }


async def post(server: RunningServer, message: dict[str, Any]) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as http:
        return await http.post(
            f"{server.http}/_vws/api/publish",
            json=message,
            headers={"Authorization": f"Bearer {KEY}"},
        )


async def publish(server: RunningServer, message: dict[str, Any]) -> None:
    response = await post(server, message)
    assert response.status_code == 200, response.text


async def test_a_muted_client_receives_nothing_until_unmuted(server: RunningServer) -> None:
    url = server.url + "/ws"
    async with (
        await Peer.connect(url + "?user=mod") as mod,
        await Peer.connect(url) as muted,
        await Peer.connect(url) as heard,
    ):
        await mod.call("joinRoom", room="mute-1")
        await mod.call("to_room", {"event": "kept", "room": "mute-1", "payload": 1})
        assert await mod.call("mute", {"client_id": muted.id}) == {
            "client_id": muted.id,
            "muted": True,
        }

        # the history plugin replays the room's frame on join: to one of them only
        assert await muted.call("joinRoom", room="mute-1") == {"room": "mute-1"}
        assert muted.before == []
        await heard.call("joinRoom", room="mute-1")
        assert heard.before == [{"event": "kept", "payload": 1}]

        await mod.call("to_room", {"event": "in-room", "room": "mute-1"})
        await mod.call("broadcast", {"event": "to-all"})
        assert await mod.call("to", {"id": muted.id, "event": "direct"}) is False
        assert await mod.call("to", {"id": heard.id, "event": "direct"}) is True
        await publish(server, {"path": "/ws", "room": "mute-1", "event": "api"})
        await publish(server, {"path": "/ws", "broadcast": True, "event": "api-all"})
        direct = await post(server, {"path": "/ws", "client_id": muted.id, "event": "api-direct"})
        assert (direct.status_code, direct.json()["error"]) == (200, "dropped")  # not "gone"
        await muted.call("emit", {"event": "to-self"})
        expected = ["in-room", "to-all", "direct", "api", "api-all"]
        assert [(await heard.recv())["event"] for _ in expected] == expected

        # everything above was sent before this echo's answer, and none of it came
        await muted.nothing_pending()

        await mod.call("unmute", {"client_id": muted.id})
        await mod.call("to_room", {"event": "after", "room": "mute-1"})
        assert await muted.recv() == {"event": "after", "payload": None}
        assert await heard.recv() == {"event": "after", "payload": None}


async def test_a_mute_holds_for_frames_from_another_node_and_is_per_node(
    venv: Venv, tmp_path: Path
) -> None:
    """Two nodes over a real Redis: node two keeps frames from node one's sender from the
    client it muted; a mute asked of node one, for a client of node two, is refused (the
    README's limit: mute state is per node)."""
    config = tmp_path / "routes.toml"
    config.write_text(f'[server]\nchannel_prefix = "mod{secrets.token_hex(4)}"\n' + APP)
    one = serve(venv, config, VWS_BACKPLANE=SHARED_REDIS)
    try:
        two = serve(venv, config, VWS_BACKPLANE=SHARED_REDIS)
        try:
            async with (
                await Peer.connect(one.url + "/ws?user=mod") as far_mod,
                await Peer.connect(two.url + "/ws?user=mod") as near_mod,
                await Peer.connect(two.url + "/ws") as muted,
                await Peer.connect(two.url + "/ws") as heard,
            ):
                for peer in (far_mod, muted, heard):
                    await peer.call("joinRoom", room="far")
                await near_mod.call("mute", {"client_id": muted.id})
                await eventually(lambda: reaches(far_mod, heard, "far"))
                await far_mod.call("to_room", {"event": "across", "room": "far"})
                assert await heard.recv() == {"event": "across", "payload": None}
                await muted.nothing_pending()

                reply = await far_mod.request("mute", {"client_id": heard.id})
                assert reply["payload"] == {
                    "code": "denied",
                    "message": f"no client {heard.id!r} is connected to this node",
                }
                await far_mod.call("to_room", {"event": "still", "room": "far"})
                assert await heard.recv() == {"event": "still", "payload": None}
        finally:
            two.stop()
    finally:
        one.stop()


async def reaches(sender: Peer, receiver: Peer, room: str) -> bool:
    """Whether a frame sent to ``room`` now reaches ``receiver`` on the other node (which
    subscribes to the room's channel a moment after the join is acknowledged)."""
    await sender.call("to_room", {"event": "probe", "room": room})
    try:
        while (await receiver.recv(timeout=0.5))["event"] != "probe":
            pass
    except TimeoutError:
        return False
    return True


async def test_mute_is_for_moderators_and_known_clients(server: RunningServer) -> None:
    url = server.url + "/ws"
    async with (
        await Peer.connect(url) as anonymous,
        await Peer.connect(url + "?user=eve") as eve,
        await Peer.connect(url + "?user=mod") as mod,
        await Peer.connect(url) as target,
    ):
        for peer in (anonymous, eve):
            for event in ("mute", "unmute"):
                reply = await peer.request(event, {"client_id": target.id})
                assert reply["payload"] == {
                    "code": "denied",
                    "message": "only a moderator may do this",
                }
        reply = await mod.request("mute", {"client_id": "nobody"})
        assert reply["payload"] == {"code": "denied", "message": "no client 'nobody' is connected"}
        reply = await mod.request("mute", {"id": target.id})
        assert reply["payload"]["code"] == "denied"
        assert reply["payload"]["message"].startswith('the payload must be {"client_id": "..."}')
        # none of the refused mutes took
        await mod.call("to", {"id": target.id, "event": "still-here"})
        assert await target.recv() == {"event": "still-here", "payload": None}


async def test_target_is_the_mute_events_schema_too(server: RunningServer) -> None:
    async with (
        await Peer.connect(server.url + "/typed?user=mod") as mod,
        await Peer.connect(server.url + "/ws") as target,
    ):
        reply = await mod.request("mute", {"id": target.id})
        assert reply["payload"]["code"] == "invalid_payload"  # refused at the edge
        assert await mod.call("mute", {"client_id": target.id}) == {
            "client_id": target.id,
            "muted": True,
        }
        await target.nothing_pending()


async def test_a_muted_client_is_forgotten_when_it_goes(server: RunningServer) -> None:
    url = server.url + "/ws"
    async with await Peer.connect(url + "?user=mod") as mod:
        async with await Peer.connect(url) as gone:
            await mod.call("mute", {"client_id": gone.id})
        # its id is not reused, so what shows it is gone is that it can no longer be muted
        for _ in range(200):
            reply = await mod.request("mute", {"client_id": gone.id})
            if reply["event"] == "error":
                break
        assert reply["payload"]["message"] == f"no client {gone.id!r} is connected"


async def test_protected_rooms_need_an_identity(server: RunningServer) -> None:
    url = server.url + "/ws"
    async with await Peer.connect(url) as anonymous, await Peer.connect(url + "?user=al") as al:
        reply = await anonymous.request("joinRoom", room="admin-ops")
        assert reply == {
            "event": "error",
            "id": reply["id"],
            "payload": {"code": "join_denied", "message": "sign in to join this room"},
        }
        assert await anonymous.call("joinRoom", room="lobby-1") == {"room": "lobby-1"}
        assert await al.call("joinRoom", room="admin-ops") == {"room": "admin-ops"}


async def test_words_are_masked_for_every_receiver(server: RunningServer) -> None:
    url = server.url + "/ws"
    async with await Peer.connect(url) as sender, await Peer.connect(url) as member:
        for peer in (sender, member):
            await peer.call("joinRoom", room="chat-1")
        said = "Well, HECK: darn-it, darnation, heck's dagnabbit"
        heard = "Well, ****: ****-it, darnation, ****'s *********"
        await sender.call("to_room", {"event": "message", "room": "chat-1", "payload": said})
        assert sender.before == [{"event": "message", "payload": heard}]
        assert await member.recv() == {"event": "message", "payload": heard}

        frame = {"text": "darn", "from": "darn"}
        await sender.call("broadcast", {"event": "message", "payload": frame})
        assert await member.recv() == {"event": "message", "payload": {**frame, "text": "****"}}

        published = {"path": "/ws", "room": "chat-1", "event": "message", "payload": said}
        await publish(server, published)
        for peer in (sender, member):
            assert await peer.recv() == {"event": "message", "payload": heard}

        # another event, or a payload without text, is left as it was
        await sender.call("to_room", {"event": "note", "room": "chat-1", "payload": said})
        assert await member.recv() == {"event": "note", "payload": said}
        await sender.call("to_room", {"event": "message", "room": "chat-1", "payload": [said]})
        assert await member.recv() == {"event": "message", "payload": [said]}

        # the history plugin kept the frames as they were delivered: masked
        async with await Peer.connect(url) as late:
            await late.call("joinRoom", room="chat-1")
            assert [f["payload"] for f in late.before if f["event"] == "message"] == [
                heard,
                heard,
                [said],
            ]


async def test_every_leave_is_logged_with_its_reason(server: RunningServer) -> None:
    url = server.url + "/ws?user=lee"
    async with await Peer.connect(url) as lee:
        await lee.call("joinRoom", room="leave-asked")
        await lee.call("leftRoom", room="leave-asked")
        await lee.call("joinRoom", room="leave-handler")
        await lee.call("leave", "leave-handler")
        await lee.call("joinRoom", room="leave-disconnect")
        client_id = lee.id

    wanted = {
        "leave-asked": "asked",
        "leave-handler": "handler",
        "leave-disconnect": "disconnect",
    }
    found: dict[str, str] = {}
    for _ in range(200):
        for line in list(server.lines):
            record = json.loads(line) if line.startswith("{") else {}
            if record.get("logger") == "vws.plugin.moderation":
                assert record["plugin"] == "moderation"
                for room, reason in wanted.items():
                    if record["event"] == f"left room {room} on /ws: {reason} " + (
                        f"(client {client_id}, user lee)"
                    ):
                        found[room] = reason
        if found == wanted:
            break
        async with await Peer.connect(server.url + "/ws") as probe:  # a round trip, not a sleep
            await probe.call("echo", 1)
    assert found == wanted, server.log()


def test_a_plugin_loggers_extra_becomes_fields(caplog: pytest.LogCaptureFixture) -> None:
    from vws.hooks.calling import PluginLogger
    from vws.logs import JsonFormatter, TextFormatter

    with caplog.at_level(logging.INFO, logger="vws.plugin.moderation"):
        PluginLogger("moderation").info("left room", extra={"room": "lobby", "reason": "asked"})
    record = caplog.records[-1]
    line = json.loads(JsonFormatter().format(record))
    assert (line["event"], line["room"], line["reason"]) == ("left room", "lobby", "asked")
    assert TextFormatter().format(record).endswith("room=lobby reason=asked")


def line_of(text: str, key: str) -> int:
    """The 1-based line of the first line of ``text`` that starts with ``key``."""
    return next(n for n, line in enumerate(text.splitlines(), 1) if line.startswith(key))


@pytest.mark.parametrize(
    ("settings", "key", "located_at", "message"),
    [
        (
            'words = ["darn", "two words"]',
            "words[1]",
            "words",
            'expected str matching regex "^[\\\\w\'-]+$"',
        ),
        ('mask = "##"', "mask", "mask", "expected str of length <= 1"),
        ('mask = ""', "mask", "mask", "expected str of length >= 1"),
        ("moderators = [1]", "moderators[0]", "moderators", "expected str, got int"),
        ("unknown = 1", "unknown", "unknown", "unknown key"),
        # Settings.__post_init__'s checks, raised as vws's SettingsError at their key
        (
            'words = ["darn", "heck", "Darn"]',
            "words[2]",
            "words",
            "'Darn' is listed twice (case is ignored)",
        ),
        (
            'words = ["darn"]\nevents = []',
            "events",
            "events",
            "is empty, so the listed words would never be masked",
        ),
    ],
)
def test_settings_errors_are_located(
    venv: Venv, tmp_path: Path, settings: str, key: str, located_at: str, message: str
) -> None:
    toml = "[plugins.settings.moderation]\n" + settings + '\n[routes."/ws".events]\n'
    toml += 'mute = "vws_moderation:mute"\n'
    (tmp_path / "routes.toml").write_text(toml)
    checked = venv.vws("check", cwd=tmp_path)
    assert checked.returncode == 1
    at = "plugins.settings.moderation" + (f".{key}" if key else "")
    line = line_of(toml, located_at)
    assert f"routes.toml:{line}: {at}: {message}" in checked.stdout + checked.stderr
