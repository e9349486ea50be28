"""What an operator sees of plugins (issue #16, item 4): what ``block`` kept out, a broken
installed plugin that does not stop the commands, wrappers refused, settings errors at their
key, tracebacks at debug, plugin and hook as log fields, and the banner's call order.

Installed distributions are faked as pip leaves them (a ``*.dist-info`` folder beside the
module) in each test's own folder, put on the subprocess's path; the shared venv never changes.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import websockets
from conftest import APPS, REPO, RunningServer

from vws import logs
from vws.config import parse_config
from vws.errors import ConfigError
from vws.hooks import create_manager

VWS = str(Path(sys.executable).parent / "vws")
PLUGIN_VARIABLES = ("VWS_DISABLE_PLUGIN_AUTOLOAD", "VWS_PLUGINS_DIR")
ROUTES = '[routes."/ws".events]\necho = "e2e_handlers:echo"\n'
HELLO = "from vws import hookimpl\n\n@hookimpl\ndef vws_joined_room(client, room):\n    pass\n"
BROKEN = "import no_such_dependency_of_vws_broken\n"


def install(site: Path, dist: str, entry: str, module: str, body: str) -> None:
    """A distribution ``dist`` 1.0.0 whose ``vws`` entry point ``entry`` loads ``module``."""
    info = site / f"{dist.replace('-', '_')}-1.0.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0.0\n")
    (info / "entry_points.txt").write_text(f"[vws]\n{entry} = {module}\n")
    (site / f"{module}.py").write_text(body)


def environment(site: Path | None = None, **extra: str) -> dict[str, str]:
    paths = [str(APPS), str(REPO)] + ([str(site)] if site else [])
    env = {k: v for k, v in os.environ.items() if k not in PLUGIN_VARIABLES}
    return {**env, "PYTHONPATH": os.pathsep.join(paths), **extra}


def vws(*args: str, cwd: Path, site: Path | None = None, **extra: str):
    return subprocess.run(
        [VWS, *args],
        cwd=cwd,
        env=environment(site, **extra),
        capture_output=True,
        text=True,
        timeout=60,
    )


def config_in(folder: Path, text: str):
    source = folder / "routes.toml"
    source.write_text(text)
    return parse_config(text, str(source), environ={})


def plugin_module(folder: Path, body: str) -> str:
    """A uniquely named plugin module in ``folder`` (modules stay imported between tests)."""
    name = f"op_{uuid.uuid4().hex[:8]}"
    (folder / f"{name}.py").write_text(body)
    return name


def issues_of(config, **options) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        create_manager(config, autoload=False, **options)
    folder = str(Path(config.source).parent) + "/"
    return [str(issue).replace(folder, "") for issue in raised.value.issues]


# --- block ------------------------------------------------------------------------------


@pytest.mark.parametrize("item", ["vws-hello", "vws_hello", "VWS.Hello", "hello"])
def test_block_matches_the_distribution_name_however_written(tmp_path: Path, item: str):
    site = tmp_path / "site"
    install(site, "vws-hello", "hello", "vws_hello", HELLO)
    (tmp_path / "routes.toml").write_text(f'[plugins]\nblock = ["{item}"]\n' + ROUTES)
    result = vws("plugins", "--json", cwd=tmp_path, site=site)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [
        {
            "name": "hello",
            "status": "blocked",
            "version": "1.0.0",
            "source": "entry point (vws-hello 1.0.0)",
            "blocked_by": item,
            "where": "routes.toml:2: plugins.block[0]",
        }
    ]


def test_vws_plugins_lists_what_block_kept_out_of_every_source(tmp_path: Path):
    folder = tmp_path / "extra"
    folder.mkdir()
    (folder / "noisy.py").write_text(HELLO)
    (tmp_path / "routes.toml").write_text(
        '[plugins]\nload = ["presence", "vws.contrib.audit"]\n'
        'block = [\n  "noisy",\n  "audit",\n]\n'
    )
    result = vws(
        "plugins", "--plugins-dir", str(folder), cwd=tmp_path, VWS_DISABLE_PLUGIN_AUTOLOAD="1"
    )
    assert result.returncode == 0, result.stderr
    lines = [" ".join(line.split()) for line in result.stdout.splitlines()]
    assert lines[1].startswith("presence 0.1.0 routes.toml:2: plugins.load[0]")
    assert lines[2:] == [
        "",
        "blocked:",
        "NAME VERSION SOURCE BLOCKED BY",
        f"noisy - plugins dir: {folder / 'noisy.py'} routes.toml:4: plugins.block[0] ('noisy')",
        "audit - routes.toml:2: plugins.load[1] routes.toml:5: plugins.block[1] ('audit')",
    ]


def test_the_same_plugins_folder_given_twice_counts_once(tmp_path: Path):
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "once.py").write_text(HELLO)
    config = config_in(tmp_path, '[plugins]\ndir = "plugins"\n')
    for given in (folder, tmp_path / "plugins" / ".." / "plugins"):
        manager = create_manager(config, autoload=False, plugins_dir=given)
        assert list(manager.loaded) == ["once"]


# --- wrappers ---------------------------------------------------------------------------


@pytest.mark.parametrize("marker", ["wrapper=True", "hookwrapper=True"])
def test_wrappers_are_refused_at_load_with_a_located_error(tmp_path: Path, marker: str):
    name = plugin_module(
        tmp_path,
        f"from vws import hookimpl\n\n@hookimpl({marker})\ndef vws_emit(message):\n"
        "    return (yield)\n",
    )
    config = config_in(tmp_path, f'[plugins]\nload = ["{name}"]\n')
    assert issues_of(config) == [
        f"routes.toml:2: plugins.load[0]: plugin {name!r} is not a valid vws plugin: "
        "vws_emit: vws calls each implementation itself; wrappers are not supported — write a "
        "plain implementation with tryfirst/trylast"
    ]


# --- a broken installed plugin ----------------------------------------------------------


def broken_site(tmp_path: Path) -> Path:
    """Two installed plugins: vws-broken (fails at import) and vws-hello (fine)."""
    site = tmp_path / "site"
    install(site, "vws-broken", "broken", "vws_broken", BROKEN)
    install(site, "vws-hello", "hello", "vws_hello", HELLO)
    return site


IMPORT_ERROR = (
    "entry point 'broken' (vws-broken 1.0.0): plugin 'broken' failed to import: "
    "ModuleNotFoundError: No module named 'no_such_dependency_of_vws_broken'"
)


def test_vws_plugins_lists_a_broken_installed_plugin_and_exits_1(tmp_path: Path):
    site = broken_site(tmp_path)
    (tmp_path / "routes.toml").write_text('[plugins]\nload = ["presence"]\n' + ROUTES)
    listed = vws("plugins", "--json", cwd=tmp_path, site=site)
    assert listed.returncode == 1
    rows = json.loads(listed.stdout)
    assert [(row["name"], row["status"]) for row in rows] == [
        ("hello", "loaded"),
        ("presence", "loaded"),
        ("broken", "failed"),
    ]
    assert rows[2]["version"] == "1.0.0"
    assert rows[2]["error"] == (
        f'{IMPORT_ERROR}; skipped; block it with [plugins] block = ["broken"]'
    )
    table = vws("plugins", cwd=tmp_path, site=site)
    assert table.returncode == 1
    assert table.stderr == ""
    assert "failed to load (skipped by vws run):" in table.stdout
    assert IMPORT_ERROR in table.stdout


def test_vws_check_shows_a_broken_installed_plugin_as_a_problem(tmp_path: Path):
    site = broken_site(tmp_path)
    (tmp_path / "routes.toml").write_text(ROUTES)
    result = vws("check", cwd=tmp_path, site=site)
    assert result.returncode == 1
    assert result.stderr == (
        f'{IMPORT_ERROR}; vws run skips it; block it with [plugins] block = ["broken"]\n'
    )


async def _connects(url: str) -> bool:
    async with websockets.connect(url) as ws:
        return json.loads(await asyncio.wait_for(ws.recv(), 10))["event"] == "connected"


def json_lines(server: RunningServer) -> list[dict[str, object]]:
    return [json.loads(line) for line in server.lines if line.startswith("{")]


@pytest.mark.parametrize("level", ["info", "debug"])
def test_vws_run_skips_a_broken_installed_plugin_and_logs_it_as_fields(tmp_path: Path, level: str):
    site = broken_site(tmp_path)
    config = tmp_path / "routes.toml"
    config.write_text(ROUTES)
    server = RunningServer(
        config,
        environment(site),
        ("--log-format", "json", "--log-level", level),
        ready="vws: status:",
    )
    try:
        assert asyncio.run(_connects(server.url + "/ws"))
    finally:
        server.stop()
    (line,) = [entry for entry in json_lines(server) if entry.get("plugin") == "broken"]
    assert line["level"] == "error" and line["logger"] == "vws.hooks"
    assert line["hook"] == "import"
    assert line["distribution"] == "vws-broken" and line["version"] == "1.0.0"
    assert str(line["event"]).startswith(IMPORT_ERROR + "; skipped")
    if level == "debug":
        assert "no_such_dependency_of_vws_broken" in str(line["traceback"])
    else:
        assert "traceback" not in line
    assert "vws: plugins, in call order: hello\n" in server.lines


def test_a_broken_plugin_named_in_load_stops_vws_run(tmp_path: Path):
    site = broken_site(tmp_path)
    (tmp_path / "routes.toml").write_text('[plugins]\nload = ["broken"]\n' + ROUTES)
    result = vws("run", "--port", "0", cwd=tmp_path, site=site)
    assert result.returncode == 1
    assert result.stderr == (
        "routes.toml:2: plugins.load[0]: plugin 'broken' failed to import: "
        "ModuleNotFoundError: No module named 'no_such_dependency_of_vws_broken'\n"
    )
    # named by its module, it is the same plugin: one error, not one per way of naming it
    (tmp_path / "routes.toml").write_text('[plugins]\nload = ["vws_broken"]\n' + ROUTES)
    checked = vws("check", cwd=tmp_path, site=site)
    assert checked.returncode == 1
    assert checked.stderr == result.stderr


# --- tracebacks at debug, plugin and hook as fields --------------------------------------


def test_an_import_error_of_a_load_item_has_its_traceback_at_debug(tmp_path: Path):
    (tmp_path / "routes.toml").write_text('[plugins]\nload = ["plug_import_error"]\n' + ROUTES)
    quiet = vws("run", "--port", "0", cwd=tmp_path)
    assert quiet.returncode == 1 and "Traceback" not in quiet.stderr
    loud = vws("run", "--port", "0", "--log-level", "debug", cwd=tmp_path)
    assert loud.returncode == 1
    assert "Traceback (most recent call last)" in loud.stderr
    assert 'plug_import_error.py", line' in loud.stderr
    assert loud.stderr.endswith(
        "routes.toml:2: plugins.load[0]: importing 'plug_import_error' failed: "
        "RuntimeError: broken at import time\n"
    )


def test_plugin_failed_puts_plugin_and_hook_in_text_and_json():
    logger = logging.getLogger(f"vws.test.{uuid.uuid4().hex[:6]}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    for formatter in (logs.TextFormatter(), logs.JsonFormatter()):
        out = io.StringIO()
        handler = logging.StreamHandler(out)
        handler.setFormatter(formatter)
        logger.handlers = [handler]
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            logs.plugin_failed(logger, "greeter", "vws_connect", "it raised", traceback="debug")
        text = out.getvalue()
        if isinstance(formatter, logs.JsonFormatter):
            entry = json.loads(text)
            assert (entry["plugin"], entry["hook"], entry["level"]) == (
                "greeter",
                "vws_connect",
                "error",
            )
            assert "traceback" not in entry  # at info; at debug it is attached
        else:
            assert text.split(" ", 1)[1] == (
                f"ERROR {logger.name} it raised plugin=greeter hook=vws_connect\n"
            )


RAISES_AT_CONNECT = (
    "from vws import hookimpl\n\n@hookimpl\ndef vws_connect(client):\n"
    "    raise RuntimeError('the user store is down')\n"
)


def test_a_hook_that_raises_is_logged_with_plugin_and_hook_fields(tmp_path: Path):
    name = plugin_module(tmp_path, RAISES_AT_CONNECT)
    config = tmp_path / "routes.toml"
    config.write_text(f'[plugins]\nload = ["{name}"]\n' + ROUTES)
    server = RunningServer(
        config, environment(VWS_DISABLE_PLUGIN_AUTOLOAD="1"), ("--log-format", "json")
    )

    async def refused() -> None:
        with pytest.raises(websockets.ConnectionClosed):
            async with websockets.connect(server.url + "/ws") as ws:
                await asyncio.wait_for(ws.recv(), 10)

    try:
        asyncio.run(refused())
    finally:
        server.stop()
    (line,) = [entry for entry in json_lines(server) if entry.get("plugin") == name]
    assert (line["level"], line["hook"]) == ("error", "vws_connect")
    assert "the user store is down" in str(line["traceback"])


RAISES_AT_STARTUP = (
    "from vws import hookimpl\n\n@hookimpl\nasync def vws_startup(server):\n"
    "    raise RuntimeError('cannot reach the user database')\n"
)


def test_a_vws_startup_failure_has_its_traceback_at_debug(tmp_path: Path):
    name = plugin_module(tmp_path, RAISES_AT_STARTUP)
    (tmp_path / "routes.toml").write_text(f'[plugins]\nload = ["{name}"]\n' + ROUTES)
    result = vws(
        "run", "--port", "0", "--log-level", "debug", cwd=tmp_path, VWS_DISABLE_PLUGIN_AUTOLOAD="1"
    )
    assert result.returncode == 3
    assert f"plugin {name!r} raised in vws_startup" in result.stderr
    assert "Traceback (most recent call last)" in result.stderr
    assert "cannot reach the user database" in result.stderr


# --- settings errors at their key ---------------------------------------------------------


SETTINGS = """import msgspec
from typing import Annotated

import vws
from vws import hookimpl


class Settings(msgspec.Struct, forbid_unknown_fields=True):
    room: Annotated[str, msgspec.Meta(pattern="^[a-z]+$")] = "lobby"
    words: list[str] = []
    limit: int = 1

    def __post_init__(self):
        if self.limit > 100:
            raise ValueError("limit and words do not fit together")
        if "" in self.words:
            raise vws.SettingsError("words", "an empty word would mask every frame")


@hookimpl
def vws_emit(message, settings):
    return None
"""


def test_a_pattern_setting_gets_msgspecs_message_at_its_key(tmp_path: Path):
    name = plugin_module(tmp_path, SETTINGS)
    config = config_in(
        tmp_path, f'[plugins]\nload = ["{name}"]\n[plugins.settings.{name}]\nroom = "Lobby!"\n'
    )
    assert issues_of(config) == [
        f"routes.toml:4: plugins.settings.{name}.room: expected str matching regex '^[a-z]+$'"
    ]


def test_a_settings_error_from_post_init_is_located_at_its_key(tmp_path: Path):
    name = plugin_module(tmp_path, SETTINGS)
    config = config_in(
        tmp_path,
        f'[plugins]\nload = ["{name}"]\n[plugins.settings.{name}]\nlimit = 3\nwords = [""]\n',
    )
    assert issues_of(config) == [
        f"routes.toml:5: plugins.settings.{name}.words: an empty word would mask every frame"
    ]


def test_a_value_error_from_post_init_is_located_at_the_table(tmp_path: Path):
    name = plugin_module(tmp_path, SETTINGS)
    config = config_in(
        tmp_path, f'[plugins]\nload = ["{name}"]\n[plugins.settings.{name}]\nlimit = 500\n'
    )
    assert issues_of(config) == [
        f"routes.toml:3: plugins.settings.{name}: limit and words do not fit together"
    ]


# --- the banner ----------------------------------------------------------------------------


def test_the_banner_lists_plugins_in_call_order(tmp_path: Path):
    first = plugin_module(tmp_path, HELLO)
    second = plugin_module(tmp_path, HELLO)
    config = tmp_path / "routes.toml"
    config.write_text(f'[plugins]\nload = ["ratelimit", "{first}", "{second}"]\n' + ROUTES)
    server = RunningServer(
        config, environment(VWS_DISABLE_PLUGIN_AUTOLOAD="1"), ready="vws: status:"
    )
    server.stop()
    expected = f"vws: plugins, in call order: {second}, {first}, ratelimit (first in vws_message)"
    assert expected + "\n" in server.lines
