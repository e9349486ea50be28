"""Where plugins come from (routes.toml, a plugins folder, entry points), blocking them, their
settings, and how a plugin that cannot load is reported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from conftest import APPS, REPO

from vws.config import parse_config
from vws.errors import ConfigError
from vws.hooks import Hooks, create_manager

VWS = str(Path(sys.executable).parent / "vws")
PLUGIN_VARIABLES = ("VWS_DISABLE_PLUGIN_AUTOLOAD", "VWS_PLUGINS_DIR")


def vws(*args: str, cwd: Path, extra_path: Path | None = None, **env: str):
    paths = [str(APPS), str(REPO)] + ([str(extra_path)] if extra_path else [])
    inherited = {k: v for k, v in os.environ.items() if k not in PLUGIN_VARIABLES}
    environ = {**inherited, "PYTHONPATH": os.pathsep.join(paths), **env}
    return subprocess.run(
        [VWS, *args], cwd=cwd, env=environ, capture_output=True, text=True, timeout=60
    )


def config_in(folder: Path, text: str):
    source = folder / "routes.toml"
    source.write_text(text)
    return parse_config(text, str(source), environ={})


def plugin_module(folder: Path, body: str) -> str:
    """A uniquely named plugin module in ``folder`` (modules stay imported between tests)."""
    name = f"plug_{uuid.uuid4().hex[:8]}"
    (folder / f"{name}.py").write_text("from vws import hookimpl\n" + body)
    return name


EMIT = "@hookimpl\ndef vws_emit(message):\n    return None\n"


def fake_distribution(site: Path, name: str, module: str, body: str) -> None:
    """An installed distribution with one ``vws`` entry point, as pip would leave it."""
    info = site / f"{name.replace('-', '_')}-1.2.3.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.2.3\n")
    (info / "entry_points.txt").write_text(f"[vws]\n{name} = {module}\n")
    (site / f"{module}.py").write_text(body)


def test_load_accepts_dotted_modules_and_names_plugins_by_their_last_part(tmp_path: Path):
    plugins = '[plugins]\nload = ["vws.contrib.presence", "vws.contrib.history"]\n'
    config = config_in(tmp_path, plugins)
    manager = create_manager(config, autoload=False)
    assert list(manager.loaded) == ["presence", "history"]
    presence = manager.loaded["presence"]
    assert presence.source == "routes.toml:2: plugins.load[0]"
    assert presence.hooks == ("vws_joined_room", "vws_left_room")
    assert presence.version == "0.1.0"  # the vws distribution ships the bundled plugins


def test_settings_are_converted_to_the_plugins_struct_and_bound_to_its_hooks(tmp_path: Path):
    config = config_in(
        tmp_path,
        '[plugins]\nload = ["history"]\n'
        '[plugins.settings.history]\nrooms = ["news-*"]\nmax_frames = 7\n',
    )
    hooks = Hooks(create_manager(config, autoload=False))
    (emit,) = hooks.impls["vws_emit"]
    assert emit.argnames == ("message",)  # settings is bound, never passed by a caller
    assert emit.bound is not None
    settings = emit.bound["settings"]
    assert (settings.rooms, settings.max_frames, settings.max_age) == (("news-*",), 7, 300.0)
    assert hooks.settings_for(sys.modules["vws.contrib.history"]) is settings


def test_bad_settings_are_located_like_every_config_error(tmp_path: Path):
    config = config_in(
        tmp_path,
        '[plugins]\nload = ["history", "ratelimit"]\n'
        "[plugins.settings.history]\nmax_frames = 0\n"
        '[plugins.settings.ratelimit]\nrate = 5\ncolour = "red"\n'
        "[plugins.settings.ghost]\nx = 1\n",
    )
    with pytest.raises(ConfigError) as raised:
        create_manager(config, autoload=False)
    assert [str(issue).replace(str(tmp_path) + "/", "") for issue in raised.value.issues] == [
        "routes.toml:8: plugins.settings.ghost: no plugin named 'ghost' is loaded "
        "(loaded: history, ratelimit)",
        "routes.toml:4: plugins.settings.history.max_frames: expected int >= 1",
        "routes.toml:7: plugins.settings.ratelimit.colour: unknown key",
    ]


def test_a_plugin_without_settings_struct_gets_its_table_as_a_read_only_dict(tmp_path: Path):
    name = plugin_module(tmp_path, "@hookimpl\ndef vws_connect(client, settings):\n    pass\n")
    config = config_in(
        tmp_path, f'[plugins]\nload = ["{name}"]\n[plugins.settings.{name}]\nanswer = 42\n'
    )
    (impl,) = Hooks(create_manager(config, autoload=False)).impls["vws_connect"]
    assert impl.bound is not None and dict(impl.bound["settings"]) == {"answer": 42}
    with pytest.raises(TypeError):
        impl.bound["settings"]["answer"] = 1  # type: ignore[index]


def test_plugins_dir_loads_every_py_file_before_routes_toml_plugins(tmp_path: Path):
    folder = tmp_path / "extra"
    folder.mkdir()
    (folder / "zeta.py").write_text("from vws import hookimpl\n" + EMIT)
    (folder / "alpha.py").write_text("from vws import hookimpl\n" + EMIT)
    (folder / "notes.txt").write_text("not a plugin")
    name = plugin_module(tmp_path, EMIT)
    config = config_in(tmp_path, f'[plugins]\nload = ["{name}"]\n')
    manager = create_manager(config, autoload=False, plugins_dir=folder)
    assert list(manager.loaded) == ["alpha", "zeta", name]
    assert manager.loaded["alpha"].source == f"plugins dir: {folder / 'alpha.py'}"
    # the last registered runs first
    assert [i.plugin_name for i in Hooks(manager).impls["vws_emit"]] == [name, "zeta", "alpha"]
    # a second load (a reload of routes.toml) keeps the same module objects
    again = create_manager(config, autoload=False, plugins_dir=folder)
    assert again.loaded["alpha"].plugin is manager.loaded["alpha"].plugin


def test_a_plugins_dir_that_is_not_a_folder_is_an_error(tmp_path: Path):
    config = config_in(tmp_path, "")
    with pytest.raises(ConfigError) as raised:
        create_manager(config, autoload=False, plugins_dir=tmp_path / "missing")
    assert str(raised.value) == f"{tmp_path / 'missing'}: the plugins dir is not a folder"


def test_block_keeps_a_plugin_out_whatever_its_source(tmp_path: Path):
    folder = tmp_path / "extra"
    folder.mkdir()
    (folder / "noisy.py").write_text("from vws import hookimpl\n" + EMIT)
    config = config_in(
        tmp_path,
        '[plugins]\nload = ["presence", "audit"]\nblock = ["noisy", "audit"]\n',
    )
    manager = create_manager(config, autoload=False, plugins_dir=folder)
    assert list(manager.loaded) == ["presence"]


def test_plugin_failures_name_the_plugin(tmp_path: Path):
    folder = tmp_path / "extra"
    folder.mkdir()
    (folder / "syntax.py").write_text("from vws import hookimpl\n\ndef broken(:\n")
    not_a_plugin = plugin_module(tmp_path, "@hookimpl\ndef vws_no_such_hook():\n    pass\n")
    package = f"pkg_{uuid.uuid4().hex[:8]}"  # another module whose last part is "presence"
    same_name = tmp_path / package
    same_name.mkdir()
    (same_name / "__init__.py").write_text("")
    (same_name / "presence.py").write_text("")
    config = config_in(
        tmp_path,
        "[plugins]\nload = [\n"
        '  "plug_import_error_missing",\n'
        f'  "{not_a_plugin}",\n'
        '  "vws.contrib.presence",\n'
        f'  "{package}.presence",\n'
        "]\n",
    )
    with pytest.raises(ConfigError) as raised:
        create_manager(config, autoload=False, plugins_dir=folder)
    lines = [str(issue).replace(str(tmp_path), "TMP") for issue in raised.value.issues]
    assert lines[0].startswith("TMP/extra/syntax.py:3: plugin 'syntax' failed to import: Syntax")
    assert lines[1].startswith("TMP/routes.toml:3: plugins.load[0]: ")
    assert "plug_import_error_missing" in lines[1]
    assert lines[2].startswith(f"TMP/routes.toml:4: plugins.load[1]: plugin '{not_a_plugin}'")
    assert "vws_no_such_hook" in lines[2]
    assert lines[3].startswith("TMP/routes.toml:6: plugins.load[3]: two plugins are named")
    assert len(lines) == 4


def test_check_reports_a_plugin_that_raises_at_import(tmp_path: Path):
    (tmp_path / "routes.toml").write_text('[plugins]\nload = ["plug_import_error"]\n')
    result = vws("check", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr == (
        "routes.toml:2: plugins.load[0]: importing 'plug_import_error' failed: "
        "RuntimeError: broken at import time\n"
    )


def test_entry_point_plugins_load_unless_disabled_or_blocked(tmp_path: Path):
    site = tmp_path / "site"
    fake_distribution(site, "vws-shout", "vws_shout", "from vws import hookimpl\n" + EMIT)
    (tmp_path / "routes.toml").write_text("")
    listed = vws("plugins", "--json", cwd=tmp_path, extra_path=site)
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == [
        {
            "name": "vws-shout",
            "status": "loaded",
            "version": "1.2.3",
            "source": "entry point (vws-shout 1.2.3)",
            "hooks": ["vws_emit"],
        }
    ]
    off = vws("plugins", cwd=tmp_path, extra_path=site, VWS_DISABLE_PLUGIN_AUTOLOAD="1")
    assert off.stdout == "no plugins loaded\n"
    # named in load, an entry point loads even with autoloading off
    (tmp_path / "routes.toml").write_text('[plugins]\nload = ["vws-shout"]\n')
    named = vws("plugins", cwd=tmp_path, extra_path=site, VWS_DISABLE_PLUGIN_AUTOLOAD="1")
    assert "vws-shout" in named.stdout and "entry point (vws-shout 1.2.3)" in named.stdout
    (tmp_path / "routes.toml").write_text('[plugins]\nblock = ["vws-shout"]\n')
    blocked = vws("plugins", cwd=tmp_path, extra_path=site)
    assert blocked.stdout.startswith("no plugins loaded\n\nblocked:\n")


def test_a_broken_entry_point_is_named_with_its_package_and_can_be_blocked(tmp_path: Path):
    site = tmp_path / "site"
    fake_distribution(site, "vws-broken", "vws_broken", "import no_such_dependency\n")
    (tmp_path / "routes.toml").write_text('[routes."/ws".events]\necho = "e2e_handlers:echo"\n')
    result = vws("check", cwd=tmp_path, extra_path=site)
    assert result.returncode == 1
    assert result.stderr == (
        "entry point 'vws-broken' (vws-broken 1.2.3): plugin 'vws-broken' failed to import: "
        "ModuleNotFoundError: No module named 'no_such_dependency'; vws run skips it; "
        'block it with [plugins] block = ["vws-broken"]\n'
    )
    (tmp_path / "routes.toml").write_text(
        '[plugins]\nblock = ["vws-broken"]\n[routes."/ws".events]\necho = "e2e_handlers:echo"\n'
    )
    assert vws("check", cwd=tmp_path, extra_path=site).returncode == 0


def test_vws_plugins_lists_name_version_source_and_hooks(tmp_path: Path):
    folder = tmp_path / "extra"
    folder.mkdir()
    (folder / "local.py").write_text("from vws import hookimpl\n" + EMIT)
    (tmp_path / "routes.toml").write_text('[plugins]\nload = ["ratelimit"]\n')
    result = vws(
        "plugins", "--plugins-dir", str(folder), cwd=tmp_path, VWS_DISABLE_PLUGIN_AUTOLOAD="1"
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["NAME", "VERSION", "SOURCE", "HOOKS"]
    assert lines[1].split()[:2] == ["local", "-"]
    assert f"plugins dir: {folder / 'local.py'}" in lines[1]
    assert lines[1].endswith("vws_emit")
    assert " ".join(lines[2].split()) == (
        "ratelimit 0.1.0 routes.toml:2: plugins.load[0] vws_disconnect, vws_message"
    )


def test_a_plugin_given_as_a_class_gets_the_version_of_its_distribution() -> None:
    from importlib import metadata

    import pluggy

    from vws.hooks.loading import _version_of

    assert _version_of(pluggy.PluginManager) == metadata.version("pluggy")
    assert _version_of(pluggy) == metadata.version("pluggy")
