"""Loading plugins: entry points, a plugins folder, ``[plugins] load``, and their settings.

Plugins come from three places, registered in this order: installed packages' entry points
(group ``vws``; ``VWS_DISABLE_PLUGIN_AUTOLOAD=1`` turns that off), every ``*.py`` of a plugins
folder (``vws run --plugins-dir DIR`` or ``VWS_PLUGINS_DIR``), and ``[plugins] load`` in
routes.toml (entry-point names, the short names of the bundled plugins in :mod:`vws.contrib`,
or module references). ``[plugins] block`` names plugins that are never loaded. A plugin's
name is its entry point's name, its file's stem, or the last part of its module's name;
``[plugins.settings.NAME]`` is converted to the ``Settings`` Struct the plugin declares and
bound to its hooks' ``settings`` argument.

:mod:`vws.hooks.calling` turns the loaded manager into the flat lists the node calls.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from types import MappingProxyType, ModuleType
from typing import Any, cast

import pluggy

from vws.config import Config
from vws.config.references import importable, resolve
from vws.errors import USER_CODE_FAILURES, ConfigError, ConfigIssue, UnresolvedReference
from vws.hooks import specs

logger = logging.getLogger("vws.hooks")

#: The entry-point group installed plugins declare.
ENTRY_POINT_GROUP = "vws"
#: Short names of the plugins that ship with vws (``load = ["presence"]``) → their modules.
BUNDLED = {
    name: f"vws.contrib.{name}" for name in ("audit", "auth", "history", "presence", "ratelimit")
}


@dataclass(frozen=True)
class LoadedPlugin:
    """One registered plugin, and where it came from (what ``vws plugins`` shows)."""

    name: str
    source: str
    version: str | None
    hooks: tuple[str, ...]
    plugin: object = field(repr=False, compare=False)


class PluginManager(pluggy.PluginManager):
    """A pluggy manager that remembers each plugin's origin and validated settings."""

    def __init__(self) -> None:
        super().__init__("vws")
        self.add_hookspecs(specs)
        #: name → what was loaded, in registration order.
        self.loaded: dict[str, LoadedPlugin] = {}
        #: name → the plugin's settings (its Settings Struct, or a read-only dict).
        self.settings: dict[str, Any] = {}

    def add(self, plugin: object, name: str, source: str, version: str | None) -> None:
        """Register ``plugin`` (raises pluggy.PluginValidationError or ValueError)."""
        self.register(plugin, name=name)
        callers = self.get_hookcallers(plugin) or []
        unknown = sorted(
            caller.name
            for caller in callers
            if not caller.has_spec()
            and any(i.plugin is plugin and not i.optionalhook for i in caller.get_hookimpls())
        )
        if unknown:  # a typo in a hook name would otherwise be silently never called
            self.unregister(plugin)
            raise pluggy.PluginValidationError(plugin, f"no such hook: {', '.join(unknown)}")
        hooks = tuple(sorted(caller.name for caller in callers))
        self.loaded[name] = LoadedPlugin(name, source, version, hooks, plugin)


def create_manager(
    config: Config,
    *,
    autoload: bool | None = None,
    plugins_dir: str | os.PathLike[str] | None = None,
) -> PluginManager:
    """A plugin manager holding every plugin ``config`` and the environment ask for.

    Args:
        autoload: load installed entry points; by default, unless ``VWS_DISABLE_PLUGIN_AUTOLOAD``
            is set.
        plugins_dir: load every ``*.py`` of this folder; ``VWS_PLUGINS_DIR`` by default.

    Raises:
        ConfigError: a plugin does not import, is not a valid plugin, shares its name with
            another, or its settings do not fit its ``Settings``; one issue per problem, each
            naming the plugin.
    """
    manager = PluginManager()
    blocked = set(config.plugins.block)
    for name in blocked:
        manager.set_blocked(name)
    if autoload is None:
        autoload = not os.environ.get("VWS_DISABLE_PLUGIN_AUTOLOAD")
    if plugins_dir is None:
        plugins_dir = os.environ.get("VWS_PLUGINS_DIR") or None
    issues: list[ConfigIssue] = []
    installed = _entry_points()
    if autoload:
        for entry in installed.values():
            if entry.name not in blocked:
                _add_entry_point(manager, entry, issues)
    folders: list[tuple[Path, ConfigIssue]] = []
    if plugins_dir is not None:
        folders.append(
            (Path(plugins_dir), ConfigIssue(os.fspath(plugins_dir), 0, "", "the plugins dir"))
        )
    if config.plugins.dir is not None:
        folder = config.root / config.plugins.dir
        folders.append((folder, config.issue(("plugins", "dir"), f"the plugins dir {folder}")))
    for folder, where in folders:
        if not folder.is_dir():
            issues.append(_with_message(where, f"{where.message} is not a folder"))
            continue
        for path in sorted(folder.glob("*.py")):
            if path.stem not in blocked and path.stem != "__init__":
                _add_file(manager, path, issues)
    importable(config.root)
    for index, reference in enumerate(config.plugins.load):
        at = ("plugins", "load", str(index))
        if reference in installed:
            if reference not in blocked and reference not in manager.loaded:
                _add_entry_point(manager, installed[reference], issues, config.issue(at, ""))
            continue
        try:
            plugin = _resolve(BUNDLED.get(reference, reference))
        except UnresolvedReference as exc:
            issues.append(config.issue(at, str(exc)))
            continue
        name = _name_of(plugin, reference)
        if name in blocked or manager.is_registered(plugin):
            continue
        where = config.issue(at, "")
        source = f"{Path(where.file).name}:{where.line}: {where.key}"
        _register(manager, plugin, name, source, _version_of(plugin), issues, where)
    issues += _settings(manager, config, blocked | installed.keys())
    if issues:
        raise ConfigError(issues)
    return manager


def _with_message(issue: ConfigIssue, message: str) -> ConfigIssue:
    return ConfigIssue(issue.file, issue.line, issue.key, message)


def _resolve(reference: str) -> object:
    """A plugin module (``pkg.mod``) or object (``pkg.mod:obj``) named in ``[plugins] load``."""
    if ":" not in reference:
        # a module first: resolve() alone would read ``pkg.mod`` as attribute ``mod`` of ``pkg``
        try:
            return importlib.import_module(reference)
        except ModuleNotFoundError as exc:
            missing = exc.name or ""
            if not (reference == missing or reference.startswith(missing + ".")):
                kind = type(exc).__name__
                raise UnresolvedReference(
                    f"importing {reference!r} failed: {kind}: {exc}"
                ) from None
        except Exception as exc:
            kind = type(exc).__name__
            raise UnresolvedReference(f"importing {reference!r} failed: {kind}: {exc}") from None
    return resolve(reference)


def _entry_points() -> dict[str, metadata.EntryPoint]:
    found: dict[str, metadata.EntryPoint] = {}
    for entry in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        found.setdefault(entry.name, entry)
    return found


def _add_entry_point(
    manager: PluginManager,
    entry: metadata.EntryPoint,
    issues: list[ConfigIssue],
    where: ConfigIssue | None = None,
) -> None:
    dist = entry.dist
    version = dist.version if dist is not None else None
    package = f"{dist.name} {version}" if dist is not None else entry.value
    origin = where or ConfigIssue(f"entry point {entry.name!r} ({package})", 0, "", "")
    try:
        plugin = entry.load()
    except Exception as exc:
        hint = f"; block it with [plugins] block = [{entry.name!r}]" if where is None else ""
        message = f"plugin {entry.name!r} failed to import: {type(exc).__name__}: {exc}{hint}"
        issues.append(ConfigIssue(origin.file, origin.line, origin.key, message))
        return
    if manager.is_registered(plugin):
        return
    source = f"entry point ({package})"
    _register(manager, plugin, entry.name, source, version, issues, origin)


def _add_file(manager: PluginManager, path: Path, issues: list[ConfigIssue]) -> None:
    # A stable module name keeps the same module object across reloads of routes.toml.
    module_name = f"vws_plugins_dir_{path.stem}"
    plugin = sys.modules.get(module_name)
    if plugin is None or getattr(plugin, "__file__", None) != str(path):
        try:
            plugin = _import_file(module_name, path)
        except USER_CODE_FAILURES as exc:
            line = (exc.lineno or 0) if isinstance(exc, SyntaxError) else 0
            message = f"plugin {path.stem!r} failed to import: {type(exc).__name__}: {exc}"
            issues.append(ConfigIssue(str(path), line, "", message))
            return
    origin = ConfigIssue(str(path), 0, "", "")
    source = f"plugins dir: {path}"
    _register(manager, plugin, path.stem, source, _version_of(plugin), issues, origin)


def _import_file(module_name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise
    return module


def _register(
    manager: PluginManager,
    plugin: object,
    name: str,
    source: str,
    version: str | None,
    issues: list[ConfigIssue],
    origin: ConfigIssue,
) -> None:
    def problem(message: str) -> None:
        issues.append(ConfigIssue(origin.file, origin.line, origin.key, message))

    if name in manager.loaded:
        problem(f"two plugins are named {name!r}: this one and {manager.loaded[name].source}")
        return
    try:
        manager.add(plugin, name, source, version)
    except (pluggy.PluginValidationError, ValueError) as exc:
        problem(f"plugin {name!r} is not a valid vws plugin: {exc}")


def _name_of(plugin: object, reference: str) -> str:
    if isinstance(plugin, ModuleType):
        return plugin.__name__.rpartition(".")[2]
    return reference.replace(":", ".").rpartition(".")[2]


def _version_of(plugin: object) -> str | None:
    version = getattr(plugin, "__version__", None)
    if isinstance(version, str):
        return version
    # a module names itself; a class, a function or an instance names the module it comes from
    named = (
        plugin.__name__ if isinstance(plugin, ModuleType) else getattr(plugin, "__module__", None)
    )
    module = cast(str, named or type(plugin).__module__)
    top = module.partition(".")[0]
    for dist in metadata.packages_distributions().get(top, ()):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return None


def _settings(manager: PluginManager, config: Config, known: Iterable[str]) -> list[ConfigIssue]:
    """Convert each plugin's ``[plugins.settings.NAME]``; flag settings of unknown plugins."""
    issues: list[ConfigIssue] = []
    known = set(known)
    raw_settings = config.plugins.settings
    for name in raw_settings:
        if name not in manager.loaded and name not in known:
            names = ", ".join(manager.loaded) or "none"
            message = f"no plugin named {name!r} is loaded (loaded: {names})"
            issues.append(config.issue(("plugins", "settings", name), message))
    for name, loaded in manager.loaded.items():
        raw = raw_settings.get(name, {})
        declared = getattr(loaded.plugin, "Settings", None)
        if declared is None:
            manager.settings[name] = MappingProxyType(dict(raw))
            continue
        try:
            value, found = config.convert(raw, declared, ("plugins", "settings", name))
        except TypeError:
            at = ("plugins", "settings", name)
            message = f"plugin {name!r} declares Settings that msgspec cannot convert to"
            issues.append(config.issue(at, message))
            continue
        issues += found
        manager.settings[name] = value
    return issues
