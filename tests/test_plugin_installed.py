"""An installed plugin package is enabled by ``pip install`` alone: plugins/vws-hello, built and
installed with pip into a folder of its own (never into the shared venv, where it would change
what every other test's server does), then put on the server's path."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import APPS, REPO
from wsclient import Peer

pytestmark = pytest.mark.anyio

PACKAGE = REPO / "plugins" / "vws-hello"
APP = '[routes."/ws".events]\necho = "e2e_handlers:echo"\n'


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """vws-hello installed by pip into a fresh folder (removed with the test's temp files)."""
    root = tmp_path_factory.mktemp("installed")
    source = root / "src"
    shutil.copytree(PACKAGE, source)  # pip builds in the source tree: keep the checkout clean
    target = root / "site"
    subprocess.run(
        [
            *(sys.executable, "-m", "pip", "install", "--quiet", "--no-deps"),
            *("--no-build-isolation", "--target", str(target), str(source)),
        ],
        check=True,
        timeout=300,
    )
    return target


def environment(site: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VWS_")}
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(APPS), str(REPO)])
    return {**env, **extra}


async def test_pip_install_alone_enables_the_plugin(start_server, site: Path):
    server = start_server(APP, env=environment(site))
    async with await Peer.connect(server.url + "/ws") as a:
        assert await a.call("joinRoom", room="r1") == {"room": "r1"}
        assert a.before == [{"event": "hello", "payload": {"room": "r1", "greeting": "hello"}}]


async def test_its_settings_and_block_apply(start_server, site: Path):
    configured = start_server(
        APP + '[plugins.settings.hello]\ngreeting = "welcome"\n', env=environment(site)
    )
    async with await Peer.connect(configured.url + "/ws") as a:
        await a.call("joinRoom", room="r2")
        assert a.before == [{"event": "hello", "payload": {"room": "r2", "greeting": "welcome"}}]
    blocked = start_server(
        '[plugins]\nblock = ["hello"]\n' + APP, env=environment(site), name="blocked.toml"
    )
    async with await Peer.connect(blocked.url + "/ws") as a:
        await a.call("joinRoom", room="r3")
        assert a.before == []


async def test_autoload_off_unless_named_in_load(start_server, site: Path):
    off = environment(site, VWS_DISABLE_PLUGIN_AUTOLOAD="1")
    server = start_server(APP, env=off)
    async with await Peer.connect(server.url + "/ws") as a:
        await a.call("joinRoom", room="r4")
        assert a.before == []
    named = start_server('[plugins]\nload = ["hello"]\n' + APP, env=off, name="named.toml")
    async with await Peer.connect(named.url + "/ws") as a:
        await a.call("joinRoom", room="r5")
        assert [f["event"] for f in a.before] == ["hello"]


def test_vws_plugins_shows_the_installed_package(tmp_path: Path, site: Path):
    (tmp_path / "routes.toml").write_text(APP)
    result = subprocess.run(
        [str(Path(sys.executable).parent / "vws"), "plugins", "--json"],
        cwd=tmp_path,
        env=environment(site),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [
        {
            "name": "hello",
            "status": "loaded",
            "version": "0.1.0",
            "source": "entry point (vws-hello 0.1.0)",
            "hooks": ["vws_joined_room"],
        }
    ]
