"""vws as a user gets it: ``pip install`` (non-editable) of this checkout into a fresh venv.

The editable install every other test runs against hides packaging mistakes: it serves files
from the checkout, so a package the wheel forgets, or one it installs by mistake (a top-level
``plugins`` that shadows the user's own ``plugins/`` folder), never shows. Here vws is built and
installed the way ``pip install vws`` does it, into a venv of its own with no extra, and the
user's first hour is replayed with that venv's own ``vws`` script: ``vws init``, a project
plugin loaded as ``plugins.hello`` beside the bundled ``presence``, a client served through
both; and a broker backplane whose client library is not installed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, STARTUP_TIMEOUT, RunningServer, free_port
from wsclient import Peer

# Building and installing vws and its dependencies takes a minute or more on a cold pip cache.
pytestmark = pytest.mark.timeout(900)

INSTALL_TIMEOUT = 600.0
COMMAND_TIMEOUT = 60.0

#: The project's own plugin: every room a client joins greets it, with its settings' greeting.
HELLO = '''\
"""Greets a client in every room it joins (the test sees the frame)."""

from __future__ import annotations

import msgspec

from vws import Client, hookimpl


class Settings(msgspec.Struct):
    greeting: str = "hello"


@hookimpl
def vws_joined_room(client: Client, room: str, settings: Settings) -> None:
    client.emit("hello", {"room": room, "greeting": settings.greeting})
'''


@dataclass(frozen=True)
class Venv:
    """A venv holding vws installed by pip from this checkout, and nothing else of ours."""

    root: Path

    @property
    def python(self) -> Path:
        return self.root / "bin" / "python"

    @property
    def vws(self) -> Path:
        return self.root / "bin" / "vws"

    def env(self) -> dict[str, str]:
        """The test's environment without what would point the venv at the checkout or at
        another venv (PYTHONPATH, VIRTUAL_ENV) or change what vws loads (VWS_*)."""
        drop = {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"}
        return {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("VWS_")}

    def run(self, *args: str | Path, cwd: Path, timeout: float = COMMAND_TIMEOUT) -> Output:
        done = subprocess.run(
            [str(arg) for arg in args],
            cwd=cwd,
            env=self.env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
        )
        return Output(done.returncode, done.stdout)

    def probe(self, code: str, cwd: Path) -> Any:
        """What ``code`` (which prints one JSON value) says when run by the venv's python."""
        out = self.run(self.python, "-c", code, cwd=cwd)
        assert out.code == 0, out.text
        return json.loads(out.text)


@dataclass(frozen=True)
class Output:
    code: int
    text: str


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Venv:
    """A fresh venv with ``pip install <checkout>``: no ``-e``, no extra.

    pip builds in the source tree (build/, *.egg-info), so it builds a copy of the checkout:
    the whole working tree but for what git ignores too (venvs, caches, node_modules), so that
    a top-level folder the wheel must leave out, like plugins/, is there to be left out.
    """
    root = tmp_path_factory.mktemp("packaging")
    source = root / "src"
    shutil.copytree(
        REPO,
        source,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "node_modules", "build", "dist", "*.egg-info", "__pycache__", ".*cache"
        ),
    )
    venv = Venv(root / "venv")
    subprocess.run([sys.executable, "-m", "venv", str(venv.root)], check=True, timeout=120)
    subprocess.run(
        [
            *(str(venv.python), "-m", "pip", "install", "--quiet"),
            *("--disable-pip-version-check", str(source)),
        ],
        check=True,
        timeout=INSTALL_TIMEOUT,
        env=venv.env(),
    )
    return venv


def test_the_distribution_adds_no_top_level_package_but_vws(
    installed: Venv, tmp_path: Path
) -> None:
    found = installed.probe(
        "import importlib.metadata as m, importlib.util as u, json, vws\n"
        "dist = m.distribution('vws')\n"
        "print(json.dumps({'files': [f.as_posix() for f in dist.files],\n"
        "    'vws': vws.__file__, 'version': vws.__version__, 'meta': dist.version,\n"
        "    'plugins': u.find_spec('plugins') is not None,\n"
        "    'top_level': (dist.read_text('top_level.txt') or '').split()}))",
        cwd=tmp_path,  # an empty folder: nothing named plugins beside the interpreter
    )
    files: list[str] = found["files"]
    # inside the venv, not the checkout: the install is not an editable one
    assert Path(found["vws"]).is_relative_to(installed.root), found["vws"]
    # the wheel is complete: the bundled plugins, the types marker and the static files
    for expected in ("vws/contrib/presence.py", "vws/py.typed", "vws/static/vws.js"):
        assert expected in files
    installed_code = [f for f in files if not f.startswith("../") and ".dist-info/" not in f]
    assert {f.partition("/")[0] for f in installed_code} == {"vws"}
    assert found["top_level"] == ["vws"]
    assert found["plugins"] is False
    # one version number: the metadata's is vws.__version__
    assert found["meta"] == found["version"]


class InstalledServer(RunningServer):
    """``vws run`` of the venv's own console script, cwd the project folder.

    RunningServer starts this checkout's vws (``sys.executable -m vws.cli``, the checkout on
    PYTHONPATH); this one starts the venv's, with the environment a user's shell would give it,
    and reuses RunningServer's log pump, ready wait and stop.
    """

    def __init__(self, venv: Venv, config: Path, *args: str) -> None:
        self.config = config
        self._ready_line = "Uvicorn running on"
        self.port = free_port()
        self.url = f"ws://127.0.0.1:{self.port}"
        self.http = f"http://127.0.0.1:{self.port}"
        self.lines = []
        self._ready = threading.Event()
        self.process = subprocess.Popen(
            [
                *(str(venv.vws), "run", "--config", config.name, "--host", "127.0.0.1"),
                *("--port", str(self.port), "--log-level", "info", *args),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=venv.env(),
            cwd=config.parent,
        )
        threading.Thread(target=self._pump, daemon=True).start()
        # the pump also sets _ready when the output ends: a server that exited has not logged
        # the ready line, though poll() may not know of its exit yet
        if not self._ready.wait(STARTUP_TIMEOUT) or self._ready_line not in self.log():
            self.stop()
            raise RuntimeError("vws run did not start:\n" + self.log())


@pytest.fixture
def project(installed: Venv, tmp_path: Path) -> Path:
    """``vws init`` in an empty folder, then the user's own plugin loaded through ``load``.

    The scaffold loads its plugins/ folder with ``dir = "plugins"``; that line becomes
    ``load = ["plugins.hello", "presence"]``, so that hello is imported by module name, as
    ``plugins.hello``, from the folder routes.toml is in (loaded both ways it would be two
    plugins named hello). That is the import a top-level ``plugins`` package would shadow.
    """
    folder = tmp_path / "chat"
    folder.mkdir()
    init = installed.run(installed.vws, "init", cwd=folder)
    assert init.code == 0, init.text
    (folder / "plugins" / "hello.py").write_text(HELLO)
    routes = folder / "routes.toml"
    text = routes.read_text()
    assert text.count('dir = "plugins"\n') == 1, text
    text = text.replace('dir = "plugins"\n', 'load = ["plugins.hello", "presence"]\n')
    routes.write_text(text + "\n[plugins.settings.presence]\nnotify = true\n")
    return folder


@pytest.fixture
def served(installed: Venv, project: Path) -> Iterator[RunningServer]:
    server = InstalledServer(installed, project / "routes.toml")
    yield server
    server.stop()


def test_vws_check_loads_the_project_plugin_and_presence(installed: Venv, project: Path) -> None:
    out = installed.run(installed.vws, "check", cwd=project)
    assert out.code == 0, out.text
    assert out.text.startswith("routes.toml: ok ("), out.text
    listed = installed.run(installed.vws, "plugins", "--json", cwd=project)
    assert listed.code == 0, listed.text
    plugins = {entry["name"]: entry for entry in json.loads(listed.text)}
    assert {"hello", "presence"} <= plugins.keys(), listed.text
    # hello came through [plugins] load, as the module plugins.hello, not through a folder scan
    assert "plugins.load" in plugins["hello"]["source"], plugins["hello"]
    assert plugins["hello"]["hooks"] == ["vws_joined_room"], plugins["hello"]


@pytest.mark.anyio
async def test_a_client_is_served_through_the_project_plugin_and_presence(
    served: RunningServer,
) -> None:
    async with await Peer.connect(served.url + "/ws") as client:
        assert await client.call("joinRoom", room="lobby") == {"room": "lobby"}
        frames = {frame["event"]: frame for frame in client.before}
        for _ in range(5):  # whatever arrived after the ack, until both plugins have spoken
            if {"hello", "presence:join"} <= frames.keys():
                break
            frame = await client.recv()
            frames[frame["event"]] = frame
        assert frames.get("hello") == {
            "event": "hello",
            "payload": {"room": "lobby", "greeting": "welcome"},  # the scaffold's settings
        }, frames
        assert frames.get("presence:join") == {
            "event": "presence:join",
            "payload": {"room": "lobby", "member": {"client_id": client.id, "user": None}},
        }, frames
    assert "Traceback" not in served.log()


BROKERS = {
    "redis": ("redis://127.0.0.1:6379/0", "redis"),
    "nats": ("nats://127.0.0.1:4222", "nats"),
}


@pytest.mark.parametrize("scheme", sorted(BROKERS))
def test_a_broker_without_its_client_is_one_located_line(
    installed: Venv, tmp_path: Path, scheme: str
) -> None:
    url, module = BROKERS[scheme]
    # the venv has no extra: the client library really is missing (else this proves nothing)
    missing = (
        f"import importlib.util as u, json; print(json.dumps(u.find_spec({module!r}) is None))"
    )
    assert installed.probe(missing, cwd=tmp_path) is True
    (tmp_path / "routes.toml").write_text(
        f'[server]\nbackplane = "{url}"\n\n[routes."/ws".events]\n'
    )
    line = (
        f"routes.toml:2: server.backplane: {scheme}:// needs the {scheme} client: "
        f"pip install 'vws[{scheme}]'"
    )
    check = installed.run(installed.vws, "check", cwd=tmp_path)
    assert (check.code, check.text) == (1, line + "\n")
    # checked before any worker starts: one line, not one per worker, and nothing served
    run = installed.run(
        installed.vws,
        "run",
        "--workers",
        "2",
        "--host",
        "127.0.0.1",
        "--port",
        str(free_port()),
        cwd=tmp_path,
    )
    assert run.code != 0, run.text
    assert run.text.count(line) == 1, run.text
    assert "Traceback" not in run.text and "Uvicorn running" not in run.text, run.text
