"""What a name in ``[plugins] load`` means, and a plugin's stable name (issue #16, item 2).

An installed distribution is faked the way pip leaves one (a ``*.dist-info`` folder with
``METADATA`` and ``entry_points.txt`` beside the module) in each test's own folder, which is put
on the ``vws`` subprocess's path: the shared venv never changes. The project is a folder with a
routes.toml and, where the test needs one, a local module of the same name.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import APPS, REPO

VWS = str(Path(sys.executable).parent / "vws")
PLUGIN_VARIABLES = ("VWS_DISABLE_PLUGIN_AUTOLOAD", "VWS_PLUGINS_DIR")
ROUTES = '[routes."/ws".events]\necho = "e2e_handlers:echo"\n'
#: The installed vws-moderation package's module: a Settings Struct and one hook.
INSTALLED = (
    "import msgspec\nfrom vws import hookimpl\n\n"
    "class Settings(msgspec.Struct, forbid_unknown_fields=True):\n"
    "    words: list[str] = []\n\n"
    "@hookimpl\ndef vws_emit(message, settings):\n    return None\n"
)
#: The project's own moderation.py: no settings, another hook.
LOCAL = "from vws import hookimpl\n\n@hookimpl\ndef vws_connect(client):\n    pass\n"


def install(site: Path, dist: str, entries: dict[str, str], modules: dict[str, str]) -> None:
    """A distribution ``dist`` 1.0.0 with ``vws`` entry points ``entries`` (name → value)."""
    info = site / f"{dist.replace('-', '_')}-1.0.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0.0\n")
    lines = "".join(f"{name} = {value}\n" for name, value in entries.items())
    (info / "entry_points.txt").write_text("[vws]\n" + lines)
    for module, body in modules.items():
        (site / f"{module}.py").write_text(body)


def moderation_site(tmp_path: Path) -> Path:
    """vws-moderation 1.0.0 installed: entry point ``moderation`` → module ``vws_moderation``."""
    site = tmp_path / "site"
    install(site, "vws-moderation", {"moderation": "vws_moderation"}, {"vws_moderation": INSTALLED})
    return site


def project(tmp_path: Path, toml: str, **modules: str) -> Path:
    folder = tmp_path / "project"
    folder.mkdir(exist_ok=True)
    (folder / "routes.toml").write_text(toml + ROUTES)
    for name, body in modules.items():
        (folder / f"{name}.py").write_text(body)
    return folder


def vws(*args: str, cwd: Path, site: Path | None = None, autoload: bool = True):
    paths = [str(APPS), str(REPO)] + ([str(site)] if site else [])
    env = {k: v for k, v in os.environ.items() if k not in PLUGIN_VARIABLES}
    env["PYTHONPATH"] = os.pathsep.join(paths)
    if not autoload:
        env["VWS_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    return subprocess.run(
        [VWS, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )


def test_an_entry_point_name_that_is_also_a_local_module_is_a_located_error(tmp_path: Path):
    site = moderation_site(tmp_path)
    folder = project(tmp_path, '[plugins]\nload = ["moderation"]\n', moderation=LOCAL)
    for autoload in (True, False):
        result = vws("check", cwd=folder, site=site, autoload=autoload)
        assert result.returncode == 1, result.stdout
        assert result.stderr == (
            "routes.toml:2: plugins.load[0]: 'moderation' could be the installed plugin "
            "'moderation' (vws-moderation 1.0.0, vws_moderation) and the module 'moderation' "
            '(moderation.py): write "entry-point:moderation" or "module:moderation" to say '
            "which\n"
        )


def test_entry_point_prefix_picks_the_installed_plugin_with_autoload_on_or_off(tmp_path: Path):
    site = moderation_site(tmp_path)
    folder = project(tmp_path, '[plugins]\nload = ["entry-point:moderation"]\n', moderation=LOCAL)
    for autoload in (True, False):
        result = vws("plugins", cwd=folder, site=site, autoload=autoload)
        assert result.returncode == 0, result.stderr
        (row,) = result.stdout.splitlines()[1:]
        assert row.split()[:2] == ["moderation", "1.0.0"] and row.endswith("vws_emit")


def test_module_prefix_picks_the_local_module(tmp_path: Path):
    site = moderation_site(tmp_path)
    folder = project(tmp_path, '[plugins]\nload = ["module:moderation"]\n', moderation=LOCAL)
    result = vws("plugins", cwd=folder, site=site, autoload=False)
    assert result.returncode == 0, result.stderr
    (row,) = result.stdout.splitlines()[1:]
    assert " ".join(row.split()) == "moderation - routes.toml:2: plugins.load[0] vws_connect"
    # autoloaded too, the installed one has the same name; blocking its distribution keeps
    # the project's own
    (folder / "routes.toml").write_text(
        '[plugins]\nload = ["module:moderation"]\nblock = ["vws-moderation"]\n' + ROUTES
    )
    result = vws("plugins", cwd=folder, site=site)
    assert result.returncode == 0, result.stderr
    assert "routes.toml:2: plugins.load[0]  vws_connect" in result.stdout.splitlines()[1]


def test_a_bundled_name_that_is_also_an_entry_point_is_a_located_error(tmp_path: Path):
    site = tmp_path / "site"
    install(site, "vws-audit", {"audit": "vws_audit"}, {"vws_audit": LOCAL})
    folder = project(tmp_path, '[plugins]\nload = ["audit"]\n')
    result = vws("check", cwd=folder, site=site, autoload=False)
    assert result.returncode == 1
    assert result.stderr == (
        "routes.toml:2: plugins.load[0]: 'audit' could be the installed plugin 'audit' "
        "(vws-audit 1.0.0, vws_audit) and the bundled plugin vws.contrib.audit: write "
        '"entry-point:audit" or "module:vws.contrib.audit" to say which\n'
    )
    (folder / "routes.toml").write_text('[plugins]\nload = ["module:vws.contrib.audit"]\n' + ROUTES)
    listed = vws("plugins", cwd=folder, site=site, autoload=False)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines()[1].split()[:3] == ["audit", "0.1.0", "routes.toml:2:"]


def test_a_bundled_name_that_is_also_a_local_module_is_a_located_error(tmp_path: Path):
    folder = project(tmp_path, '[plugins]\nload = ["auth"]\n', auth=LOCAL)
    result = vws("check", cwd=folder, autoload=False)
    assert result.returncode == 1
    assert result.stderr == (
        "routes.toml:2: plugins.load[0]: 'auth' could be the bundled plugin vws.contrib.auth "
        "and the module 'auth' (auth.py): write \"module:vws.contrib.auth\" or "
        '"module:auth" to say which\n'
    )


def test_a_folder_without_init_is_not_a_candidate(tmp_path: Path):
    folder = project(tmp_path, '[plugins]\nload = ["presence"]\n')
    (folder / "presence").mkdir()  # a data folder, say: a namespace, never a plugin
    result = vws("plugins", cwd=folder, autoload=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1].split()[:2] == ["presence", "0.1.0"]


def test_an_entry_point_named_after_its_own_module_is_not_ambiguous(tmp_path: Path):
    site = tmp_path / "site"
    install(site, "vws-shout", {"vws_shout": "vws_shout"}, {"vws_shout": LOCAL})
    folder = project(tmp_path, '[plugins]\nload = ["vws_shout"]\n')
    result = vws("plugins", cwd=folder, site=site, autoload=False)
    assert result.returncode == 0, result.stderr
    assert "entry point (vws-shout 1.0.0)" in result.stdout


def test_an_unknown_entry_point_is_a_located_error(tmp_path: Path):
    site = moderation_site(tmp_path)
    folder = project(tmp_path, '[plugins]\nload = ["entry-point:moderatoin"]\n')
    result = vws("check", cwd=folder, site=site)
    assert result.returncode == 1
    assert result.stderr == (
        "routes.toml:2: plugins.load[0]: no installed plugin has the entry point 'moderatoin' "
        "(installed: moderation)\n"
    )


def test_module_prefix_takes_an_attribute_reference(tmp_path: Path):
    body = "from vws import hookimpl\n\nclass Plugin:\n    @hookimpl\n    def vws_emit(self):\n"
    body += "        return None\n\nplugin = Plugin()\n"
    folder = project(
        tmp_path, '[plugins]\nload = ["module:hooks_holder:plugin"]\n', **{"hooks_holder": body}
    )
    result = vws("plugins", cwd=folder, autoload=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1].split()[0] == "plugin"


def test_a_module_an_entry_point_loads_keeps_the_entry_points_name(tmp_path: Path):
    site = moderation_site(tmp_path)
    toml = '[plugins]\nload = ["vws_moderation"]\n[plugins.settings.moderation]\nwords = ["x"]\n'
    folder = project(tmp_path, toml)
    for autoload in (True, False):
        listed = vws("plugins", cwd=folder, site=site, autoload=autoload)
        assert listed.returncode == 0, listed.stderr
        (row,) = listed.stdout.splitlines()[1:]
        assert row.split()[:2] == ["moderation", "1.0.0"]
        checked = vws("check", cwd=folder, site=site, autoload=autoload)
        assert checked.returncode == 0, checked.stderr
    # the settings table is the plugin's: a wrong key in it is found
    (folder / "routes.toml").write_text(toml.replace("words", "wrods") + ROUTES)
    checked = vws("check", cwd=folder, site=site, autoload=False)
    assert checked.returncode == 1
    assert checked.stderr.startswith("routes.toml:4: plugins.settings.moderation.wrods: unknown")


def test_an_installed_plugins_table_with_autoload_off_says_why_it_is_unused(tmp_path: Path):
    site = moderation_site(tmp_path)
    folder = project(tmp_path, '[plugins.settings.moderation]\nwords = ["x"]\n')
    assert vws("check", cwd=folder, site=site).returncode == 0
    result = vws("check", cwd=folder, site=site, autoload=False)
    assert result.returncode == 1
    assert result.stderr == (
        "routes.toml:1: plugins.settings.moderation: plugin 'moderation' is installed "
        "(vws-moderation 1.0.0) but not loaded: autoloading is off "
        '(VWS_DISABLE_PLUGIN_AUTOLOAD); add "moderation" to [plugins] load, or remove this '
        "table\n"
    )


def test_a_blocked_plugins_table_says_which_block_item(tmp_path: Path):
    site = moderation_site(tmp_path)
    toml = '[plugins]\nblock = ["VWS.Moderation"]\n[plugins.settings.moderation]\nwords = []\n'
    folder = project(tmp_path, toml)
    for autoload in (True, False):
        result = vws("check", cwd=folder, site=site, autoload=autoload)
        assert result.returncode == 1
        assert result.stderr == (
            "routes.toml:3: plugins.settings.moderation: plugin 'moderation' (entry point "
            "(vws-moderation 1.0.0)) is blocked by routes.toml:2: plugins.block[0] "
            "('VWS.Moderation'): unblock it, or remove this table\n"
        )


def test_a_table_of_no_plugin_is_an_error_with_autoload_on(tmp_path: Path):
    site = moderation_site(tmp_path)
    folder = project(tmp_path, "[plugins.settings.ghost]\nx = 1\n")
    result = vws("check", cwd=folder, site=site)
    assert result.returncode == 1
    assert result.stderr == (
        "routes.toml:1: plugins.settings.ghost: no plugin named 'ghost' is loaded "
        "(loaded: moderation)\n"
    )


def test_a_table_named_after_the_module_points_at_the_plugins_name(tmp_path: Path):
    site = moderation_site(tmp_path)
    folder = project(tmp_path, "[plugins.settings.vws_moderation]\nwords = []\n")
    result = vws("check", cwd=folder, site=site)
    assert result.returncode == 1
    assert result.stderr.endswith(
        "; module vws_moderation is the plugin 'moderation', whose table is "
        "[plugins.settings.moderation]\n"
    )
