"""The ``vws`` command as a user runs it: the installed console script in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import APPS, REPO, free_port

VWS = str(Path(sys.executable).parent / "vws")
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(APPS), str(REPO)])}

BROKEN = """\
[server]
port = "eighty"

[routes."/ws".events]
echo = "e2e_handlers:echo"
ghost = "e2e_handlers:does_not_exist"
joinRoom = "e2e_handlers:echo"

[routes."/ws".events.typed]
handler = "no_such_module:handler"
"""


def vws(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [VWS, *args], cwd=cwd, env=env or ENV, capture_output=True, text=True, timeout=60
    )


def test_check_reports_every_error_located_and_exits_1(tmp_path: Path):
    (tmp_path / "routes.toml").write_text(BROKEN)
    result = vws("check", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "routes.toml:2: server.port: expected int, got str",
        'routes.toml:7: routes."/ws".events.joinRoom: reserved event name: the protocol handles it',
    ]
    assert "Traceback" not in result.stderr + result.stdout


def test_check_reports_references_that_do_not_import(tmp_path: Path):
    (tmp_path / "routes.toml").write_text(
        BROKEN.replace('port = "eighty"', "port = 80").replace(
            'joinRoom = "e2e_handlers:echo"\n', ""
        )
    )
    result = vws("check", cwd=tmp_path)
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert lines[0].startswith('routes.toml:6: routes."/ws".events.ghost: module ')
    assert "does_not_exist" in lines[0]
    assert lines[1].startswith('routes.toml:9: routes."/ws".events.typed.handler: cannot import')
    assert len(lines) == 2


def test_check_accepts_the_demo_app():
    result = vws("check", cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("routes.toml: ok (2 routes, 6 events")


def test_check_a_syntax_error(tmp_path: Path):
    (tmp_path / "routes.toml").write_text('[server]\nport = 8000\nhost = "unterminated\n')
    result = vws("check", "--config", "routes.toml", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith("routes.toml:3: invalid TOML: ")


def test_routes_prints_the_table():
    result = vws("routes", cwd=REPO)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["PATH", "EVENT", "HANDLER", "SCHEMA", "MIDDLEWARE"]
    assert ["/ws", "chat", "plugins.chat:on_chat", "plugins.chat:ChatMessage", "-"] in [
        line.split() for line in lines
    ]
    assert any(
        line.split()
        == [
            "/admins",
            "(broadcast:",
            "route)",
            "admin-message",
            "plugins.chat:on_admin_message",
            "-",
            "plugins.chat:require_admin_token",
        ]
        for line in lines
    )


def test_run_refuses_a_broken_file_with_the_located_error(tmp_path: Path):
    (tmp_path / "routes.toml").write_text(BROKEN)
    result = vws("run", cwd=tmp_path)
    assert result.returncode == 1
    assert "routes.toml:2: server.port: expected int, got str" in result.stderr


def test_no_command_prints_help(tmp_path: Path):
    result = vws(cwd=tmp_path)
    assert result.returncode == 2
    assert "run" in result.stdout and "check" in result.stdout


@pytest.mark.parametrize("source", ["environment", "flag"])
def test_port_precedence_flag_over_environment_over_file(tmp_path: Path, source: str):
    file_port, env_port, flag_port = free_port(), free_port(), free_port()
    (tmp_path / "routes.toml").write_text(
        f'[server]\nport = {file_port}\n[routes."/ws".events]\necho = "e2e_handlers:echo"\n'
    )
    args = [VWS, "run"] + (["--port", str(flag_port)] if source == "flag" else [])
    env = {**ENV, "VWS_PORT": str(env_port), "VWS_HOST": "127.0.0.1"}
    process = subprocess.Popen(
        args, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        assert process.stdout is not None
        for line in process.stdout:
            if "Uvicorn running on" in line:
                break
        expected = flag_port if source == "flag" else env_port
        assert f"http://127.0.0.1:{expected}" in line
    finally:
        process.terminate()
        process.wait(15)


STRICT = """\
[server]
colour = "blue"

[plugins]
load = ["no_such_plugin_module"]

[routes."/ws"]
middleware = ["e2e_handlers:Point"]

[routes."/ws".events]
echo = "e2e_handlers:echo"
lonely = "e2e_handlers:on_connect"
error = "e2e_handlers:echo"

[routes."missing-slash".events]
echo = "e2e_handlers:echo"

[routes."/empty"]
"""


def test_check_is_strict_and_locates_every_problem(tmp_path: Path):
    (tmp_path / "routes.toml").write_text(STRICT)
    result = vws("check", cwd=tmp_path)
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert "routes.toml:2: server.colour: unknown key" in lines
    assert (
        'routes.toml:13: routes."/ws".events.error: reserved event name: the protocol handles it'
        in lines
    )
    assert "routes.toml:15: routes.missing-slash: a route path must start with '/'" in lines
    fixed = (
        STRICT.replace('colour = "blue"\n', "")
        .replace('error = "e2e_handlers:echo"\n', "")
        .replace('[routes."missing-slash".events]\necho = "e2e_handlers:echo"\n', "")
    )
    (tmp_path / "routes.toml").write_text(fixed)
    lines = vws("check", cwd=tmp_path).stderr.splitlines()
    assert any(line.startswith('routes.toml:7: routes."/ws".middleware[0]: ') for line in lines)
    assert any(
        line.startswith('routes.toml:11: routes."/ws".events.lonely: ')
        and "(client, payload)" in line
        for line in lines
    )
    (tmp_path / "routes.toml").write_text(
        fixed.replace('middleware = ["e2e_handlers:Point"]', "middleware = []").replace(
            'lonely = "e2e_handlers:on_connect"\n', ""
        )
    )
    result = vws("check", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith("routes.toml:4: plugins.load[0]: ")
    assert "no_such_plugin_module" in result.stderr
    (tmp_path / "routes.toml").write_text(
        (tmp_path / "routes.toml").read_text().replace('load = ["no_such_plugin_module"]', "")
    )
    result = vws("check", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert 'routes.toml:13: routes."/empty": warning: the route has no events' in result.stdout


def test_a_plugins_dir_that_is_not_a_folder_is_located(tmp_path: Path):
    (tmp_path / "routes.toml").write_text(
        '[plugins]\ndir = "nowhere"\n[routes."/ws".events]\necho = "e2e_handlers:echo"\n'
    )
    result = vws("check", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith("routes.toml:2: plugins.dir: the plugins dir ")
    assert "is not a folder" in result.stderr


def test_run_tells_a_failed_plugin_startup_in_one_line_and_exits(tmp_path: Path):
    (tmp_path / "boom.py").write_text(
        "from vws import hookimpl\n\n"
        "@hookimpl\n"
        "async def vws_startup(config, server):\n"
        "    raise RuntimeError('cannot reach the user database')\n"
    )
    (tmp_path / "routes.toml").write_text(
        '[plugins]\nload = ["boom"]\n\n[routes."/ws".events]\necho = "e2e_handlers:echo"\n'
    )
    env = {**ENV, "PYTHONPATH": os.pathsep.join([str(tmp_path), ENV["PYTHONPATH"]])}
    result = vws("run", "--port", str(free_port()), cwd=tmp_path, env=env)
    assert result.returncode == 3  # uvicorn's exit status for a failed startup
    assert (
        "vws cannot start: plugin 'boom' raised in vws_startup: "
        "RuntimeError: cannot reach the user database"
    ) in result.stderr
    assert "Traceback" not in result.stderr
