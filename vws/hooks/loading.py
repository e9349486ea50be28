"""Loading plugins: entry points, a plugins folder, ``[plugins] load``, and their settings.

Plugins come from three places, registered in this order: installed packages' entry points
(group ``vws``; ``VWS_DISABLE_PLUGIN_AUTOLOAD=1`` turns that off), every ``*.py`` of a plugins
folder (``vws run --plugins-dir DIR``, ``VWS_PLUGINS_DIR`` or ``[plugins] dir``), and
``[plugins] load`` in routes.toml. ``[plugins.settings.NAME]`` is converted to the ``Settings``
Struct the plugin declares and bound to its hooks' ``settings`` argument.

What a ``load`` item means is decided before anything is imported, by one rule:

- ``entry-point:NAME`` is the installed entry point NAME; ``module:REF`` is the module (or
  ``module:attribute``) REF; a REF holding ``:`` is a module reference too.
- A bare name is an entry point's name, a bundled plugin's short name (:data:`BUNDLED`) or an
  importable module. When it is more than one of them (an entry point and a local module of
  the same name that is not that entry point's own module, a bundled name that is also an entry
  point...), it is an error at that item naming every candidate and the explicit forms: a name
  that silently picks one would load an installed package where the project meant its own file.

A plugin's name is stable whatever way it was loaded: an entry point's name; for a module that
an installed entry point targets, that entry point's name (``vws_moderation`` → ``moderation``);
otherwise the bundled short name, the file's stem or the last part of the module's name.

``[plugins] block`` matches entry-point names, distribution names (PEP 503 normalised:
``vws-hello`` is ``VWS.Hello``), module names and file stems; what it kept out is listed in
:attr:`PluginManager.blocked`, for ``vws plugins``.

An installed plugin that was only autoloaded and fails (to import, or to be a valid plugin) is
skipped with an error logged, and listed in :attr:`PluginManager.failed`: one broken package
must not stop every command, least of all ``vws plugins``. A plugin named in ``load`` that fails
is a config error: a plugin the project relies on (auth) must never be silently left out.

:mod:`vws.hooks.calling` turns the loaded manager into the flat lists the node calls.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import re
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from types import MappingProxyType, ModuleType
from typing import Any, Literal, cast

import pluggy

from vws import logs
from vws.config import Config
from vws.config.references import importable, resolve
from vws.errors import (
    USER_CODE_FAILURES,
    ConfigError,
    ConfigIssue,
    SettingsError,
    UnresolvedReference,
)
from vws.hooks import specs

logger = logging.getLogger("vws.hooks")

#: The entry-point group installed plugins declare.
ENTRY_POINT_GROUP = "vws"
#: Short names of the plugins that ship with vws (``load = ["presence"]``) → their modules.
BUNDLED = {
    name: f"vws.contrib.{name}" for name in ("audit", "auth", "history", "presence", "ratelimit")
}
#: The prefixes that say what a ``load`` item is, whatever else has the same name.
ENTRY_POINT_PREFIX = "entry-point:"
MODULE_PREFIX = "module:"
#: What to do with an autoloaded entry point that fails: skip it and log an error (``vws run``),
#: skip it quietly and let the caller show :attr:`PluginManager.failed` (``vws plugins``), or
#: make it a config issue (``vws check``, whose job is to find what is wrong).
Broken = Literal["skip", "skip_quietly", "error"]

WRAPPERS_REFUSED = (
    "vws calls each implementation itself; wrappers are not supported — write a plain "
    "implementation with tryfirst/trylast"
)


@dataclass(frozen=True)
class LoadedPlugin:
    """One registered plugin, and where it came from (what ``vws plugins`` shows)."""

    name: str
    source: str
    version: str | None
    hooks: tuple[str, ...]
    plugin: object = field(repr=False, compare=False)


@dataclass(frozen=True)
class BlockedPlugin:
    """A plugin that ``[plugins] block`` kept out, and which item of it did."""

    name: str
    source: str
    version: str | None
    #: The ``block`` item as written (``"vws-hello"``).
    by: str
    #: Where that item is: ``routes.toml:3: plugins.block[0]``.
    where: str


@dataclass(frozen=True)
class FailedPlugin:
    """An autoloaded plugin that could not be used and was skipped, with its located error."""

    name: str
    source: str
    version: str | None
    error: str


class PluginManager(pluggy.PluginManager):
    """A pluggy manager that remembers each plugin's origin and validated settings."""

    def __init__(self) -> None:
        super().__init__("vws")
        self.add_hookspecs(specs)
        #: name → what was loaded, in registration order.
        self.loaded: dict[str, LoadedPlugin] = {}
        #: name → the plugin's settings (its Settings Struct, or a read-only dict).
        self.settings: dict[str, Any] = {}
        #: name → what ``[plugins] block`` kept out.
        self.blocked: dict[str, BlockedPlugin] = {}
        #: name → an autoloaded plugin skipped because it failed.
        self.failed: dict[str, FailedPlugin] = {}

    def add(self, plugin: object, name: str, source: str, version: str | None) -> None:
        """Register ``plugin`` (raises pluggy.PluginValidationError or ValueError).

        Wrappers (``wrapper=True``, ``hookwrapper=True``) are refused before anything is
        registered: :mod:`vws.hooks.calling` calls each implementation itself, so a wrapper
        would be called as a plain function and its generator never run (in ``vws_emit`` that
        dropped every frame).
        """
        wrappers = sorted(
            attribute
            for attribute in dir(plugin)
            if (opts := self.parse_hookimpl_opts(plugin, attribute)) is not None
            and (opts.get("wrapper") or opts.get("hookwrapper"))
        )
        if wrappers:
            raise pluggy.PluginValidationError(plugin, f"{', '.join(wrappers)}: {WRAPPERS_REFUSED}")
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


def canonical(name: str) -> str:
    """A name as PEP 503 compares distribution names: ``VWS.Hello`` → ``vws-hello``."""
    return re.sub(r"[-_.]+", "-", name).lower()


class Blocklist:
    """``[plugins] block``, matched against every name a plugin is known by."""

    def __init__(self, config: Config) -> None:
        self._items: dict[str, tuple[str, str]] = {}
        for index, item in enumerate(config.plugins.block):
            where = config.issue(("plugins", "block", str(index)), "")
            self._items.setdefault(canonical(item), (item, _place(where)))

    def match(self, *names: str | None) -> tuple[str, str] | None:
        """The ``(item, where)`` of the first block item that is one of ``names``, if any."""
        for name in names:
            if name and (found := self._items.get(canonical(name))) is not None:
                return found
        return None


@dataclass(frozen=True)
class _Choice:
    """What one ``load`` item names, decided before anything is imported."""

    at: ConfigIssue
    entry: metadata.EntryPoint | None = None
    reference: str = ""


def create_manager(
    config: Config,
    *,
    autoload: bool | None = None,
    plugins_dir: str | os.PathLike[str] | None = None,
    broken: Broken = "skip",
) -> PluginManager:
    """A plugin manager holding every plugin ``config`` and the environment ask for.

    Args:
        autoload: load installed entry points; by default, unless ``VWS_DISABLE_PLUGIN_AUTOLOAD``
            is set.
        plugins_dir: load every ``*.py`` of this folder; ``VWS_PLUGINS_DIR`` by default.
        broken: what an autoloaded entry point that fails does (see :data:`Broken`).

    Raises:
        ConfigError: a plugin named in routes.toml (or a plugins folder) does not import, is
            not a valid plugin, shares its name with another, a ``load`` item is ambiguous, or
            settings do not fit a ``Settings`` or belong to no loaded plugin; one issue per
            problem, each naming the plugin.
    """
    manager = PluginManager()
    block = Blocklist(config)
    if autoload is None:
        autoload = not os.environ.get("VWS_DISABLE_PLUGIN_AUTOLOAD")
    if plugins_dir is None:
        plugins_dir = os.environ.get("VWS_PLUGINS_DIR") or None
    issues: list[ConfigIssue] = []
    installed = _entry_points()
    importable(config.root)
    choices: list[_Choice] = []
    for index, item in enumerate(config.plugins.load):
        at = config.issue(("plugins", "load", str(index)), "")
        choice = _choose(item, at, installed, config.root)
        if isinstance(choice, str):
            issues.append(_with_message(at, choice))
        else:
            choices.append(choice)
    targets = {_target(entry): entry for entry in installed.values()}
    # the entry points routes.toml names, by name or by the module they load: a failure of
    # one of these is a config error at its load item, never a skip
    named = {
        entry.name: c.at
        for c in choices
        if (entry := c.entry or targets.get(c.reference)) is not None
    }
    if autoload:
        for entry in installed.values():
            _add_entry_point(manager, entry, block, issues, named.get(entry.name), broken)
    for folder, where in _folders(config, plugins_dir):
        if not folder.is_dir():
            issues.append(_with_message(where, f"{where.message} is not a folder"))
            continue
        for path in sorted(folder.glob("*.py")):
            if path.stem != "__init__":
                _add_file(manager, path, block, issues)
    for choice in choices:
        if choice.entry is not None:
            if not autoload:
                _add_entry_point(manager, choice.entry, block, issues, choice.at, broken)
        else:
            _add_reference(manager, choice, targets, block, issues)
    issues += _settings(manager, config, installed, autoload, block)
    if issues:
        raise ConfigError(issues)
    return manager


def _place(where: ConfigIssue) -> str:
    """``routes.toml:2: plugins.load[0]``: a key's place, as ``vws plugins`` shows sources."""
    return f"{Path(where.file).name}:{where.line}: {where.key}"


def _with_message(issue: ConfigIssue, message: str) -> ConfigIssue:
    return ConfigIssue(issue.file, issue.line, issue.key, message)


def _choose(
    item: str, at: ConfigIssue, installed: dict[str, metadata.EntryPoint], root: Path
) -> _Choice | str:
    """What the ``load`` item ``item`` names, or why it names nothing or too much."""
    if item.startswith(ENTRY_POINT_PREFIX):
        name = item.removeprefix(ENTRY_POINT_PREFIX)
        if name in installed:
            return _Choice(at, entry=installed[name])
        names = ", ".join(sorted(installed)) or "none"
        return f"no installed plugin has the entry point {name!r} (installed: {names})"
    if item.startswith(MODULE_PREFIX):
        return _Choice(at, reference=item.removeprefix(MODULE_PREFIX))
    if ":" in item:
        return _Choice(at, reference=item)
    entry = installed.get(item)
    bundled = BUNDLED.get(item)
    # (what it is, how to name only it)
    candidates: list[tuple[str, str]] = []
    if entry is not None:
        candidates.append(
            (f"the installed plugin {item!r} ({_package(entry)}, {entry.value})", item)
        )
    if bundled is not None:
        candidates.append((f"the bundled plugin {bundled}", f"{MODULE_PREFIX}{bundled}"))
    if candidates and (entry is None or entry.module != item):
        origin = _module_origin(item)
        if origin is not None:
            shown = Path(origin)
            if shown.is_relative_to(root):
                shown = shown.relative_to(root)
            candidates.append((f"the module {item!r} ({shown})", f"{MODULE_PREFIX}{item}"))
    if len(candidates) > 1:
        if entry is not None:
            candidates[0] = (candidates[0][0], f"{ENTRY_POINT_PREFIX}{item}")
        what = ", ".join(c[0] for c in candidates[:-1]) + " and " + candidates[-1][0]
        forms = " or ".join(f'"{c[1]}"' for c in candidates)
        return f"{item!r} could be {what}: write {forms} to say which"
    if entry is not None:
        return _Choice(at, entry=entry)
    return _Choice(at, reference=bundled or item)


def _module_origin(name: str) -> str | None:
    """The file of the importable module ``name``, found without importing it; None if there
    is none (a folder without ``__init__.py`` is a namespace, not a plugin)."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    except USER_CODE_FAILURES:  # a parent package that fails to import: not a candidate here
        return None
    if spec is None or spec.origin in (None, "namespace"):
        return None
    return spec.origin


def _folders(
    config: Config, plugins_dir: str | os.PathLike[str] | None
) -> list[tuple[Path, ConfigIssue]]:
    """The plugins folders, each once: the command line's (or VWS_PLUGINS_DIR) and
    ``[plugins] dir`` are often the same folder, whose files must not register twice."""
    folders: list[tuple[Path, ConfigIssue]] = []
    if plugins_dir is not None:
        where = ConfigIssue(os.fspath(plugins_dir), 0, "", "the plugins dir")
        folders.append((Path(plugins_dir), where))
    if config.plugins.dir is not None:
        folder = config.root / config.plugins.dir
        folders.append((folder, config.issue(("plugins", "dir"), f"the plugins dir {folder}")))
    unique: dict[Path, tuple[Path, ConfigIssue]] = {}
    for folder, where in folders:
        unique.setdefault(folder.resolve(), (folder, where))
    return list(unique.values())


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
                raise UnresolvedReference(f"importing {reference!r} failed: {kind}: {exc}") from exc
        except Exception as exc:
            kind = type(exc).__name__
            raise UnresolvedReference(f"importing {reference!r} failed: {kind}: {exc}") from exc
    return resolve(reference)


def _entry_points() -> dict[str, metadata.EntryPoint]:
    found: dict[str, metadata.EntryPoint] = {}
    for entry in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        found.setdefault(entry.name, entry)
    return found


def _package(entry: metadata.EntryPoint) -> str:
    """``vws-hello 0.1.0``: the distribution an entry point comes with."""
    dist = entry.dist
    return f"{dist.name} {dist.version}" if dist is not None else entry.value


def _target(entry: metadata.EntryPoint) -> str:
    """What an entry point loads, written as a ``load`` reference: ``module`` or ``module:attr``."""
    return f"{entry.module}:{entry.attr}" if entry.attr else entry.module


def _add_entry_point(
    manager: PluginManager,
    entry: metadata.EntryPoint,
    block: Blocklist,
    issues: list[ConfigIssue],
    where: ConfigIssue | None,
    broken: Broken,
) -> None:
    """Load and register an entry point; ``where`` is the ``load`` item naming it, if any."""
    dist = entry.dist
    version = dist.version if dist is not None else None
    package = _package(entry)
    source = f"entry point ({package})"
    blocked = block.match(entry.name, dist.name if dist is not None else None, entry.module)
    if blocked is not None:
        manager.blocked[entry.name] = BlockedPlugin(entry.name, source, version, *blocked)
        return
    origin = where or ConfigIssue(f"entry point {entry.name!r} ({package})", 0, "", "")

    def failed(message: str, hook: str, error: BaseException | None = None) -> None:
        if where is not None:  # named in load: the project relies on it
            issues.append(_with_message(origin, message))
        else:
            hint = f'block it with [plugins] block = ["{entry.name}"]'
            skipped = "vws run skips it" if broken == "error" else "skipped"
            message = f"{message}; {skipped}; {hint}"
            if broken == "error":
                issues.append(_with_message(origin, message))
        text = str(_with_message(origin, message))
        # recorded in every mode: its settings table is then not reported a second time
        manager.failed[entry.name] = FailedPlugin(entry.name, source, version, text)
        if where is None and broken == "skip":
            logs.plugin_failed(
                logger,
                entry.name,
                hook,
                text,
                exc_info=error or False,
                traceback="debug",
                distribution=dist.name if dist is not None else "",
                version=version or "",
            )
        elif error is not None:
            logs.debug_traceback(logger, text, error, plugin=entry.name, hook=hook)

    try:
        plugin = entry.load()
    except USER_CODE_FAILURES as exc:
        kind = type(exc).__name__
        failed(f"plugin {entry.name!r} failed to import: {kind}: {exc}", "import", exc)
        return
    if manager.is_registered(plugin):
        return
    problem = _register(manager, plugin, entry.name, source, version)
    if problem is not None:
        failed(problem, "register")


def _add_file(
    manager: PluginManager, path: Path, block: Blocklist, issues: list[ConfigIssue]
) -> None:
    source = f"plugins dir: {path}"
    blocked = block.match(path.stem)
    if blocked is not None:
        manager.blocked[path.stem] = BlockedPlugin(path.stem, source, None, *blocked)
        return
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
            logs.debug_traceback(logger, message, exc, plugin=path.stem, hook="import")
            return
    problem = _register(manager, plugin, path.stem, source, _version_of(plugin))
    if problem is not None:
        issues.append(ConfigIssue(str(path), 0, "", problem))


def _add_reference(
    manager: PluginManager,
    choice: _Choice,
    targets: dict[str, metadata.EntryPoint],
    block: Blocklist,
    issues: list[ConfigIssue],
) -> None:
    """Import and register a ``load`` item naming a module or an object."""
    reference, at = choice.reference, choice.at
    source = _place(at)
    module_name = reference.partition(":")[0]
    # a module an installed entry point loads has that entry point's name, however it is named
    entry = targets.get(reference)
    if entry is not None and entry.name in manager.failed:
        return  # autoloaded from this very item's module, it failed and was reported then
    name = entry.name if entry is not None else _last_part(reference)
    dist = entry.dist if entry is not None else None
    names = (name, reference, module_name, dist.name if dist is not None else None)
    blocked = block.match(*names)
    if blocked is not None:
        version = dist.version if dist is not None else None
        manager.blocked.setdefault(name, BlockedPlugin(name, source, version, *blocked))
        return
    try:
        plugin = _resolve(reference)
    except UnresolvedReference as exc:
        issues.append(_with_message(at, str(exc)))
        cause = exc.__cause__ or exc.__context__
        if cause is not None:
            logs.debug_traceback(logger, str(exc), cause, plugin=name, hook="import")
        return
    if entry is None and isinstance(plugin, ModuleType) and plugin.__name__ in targets:
        entry = targets[plugin.__name__]  # "plugins.x" named by a shorter or longer path
        name = entry.name
    if manager.is_registered(plugin):
        return
    version = entry.dist.version if entry is not None and entry.dist else _version_of(plugin)
    problem = _register(manager, plugin, name, source, version)
    if problem is not None:
        issues.append(_with_message(at, problem))


def _last_part(reference: str) -> str:
    """A module's or object's own name: ``plugins.moderation`` → ``moderation``."""
    return reference.replace(":", ".").rpartition(".")[2]


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
    manager: PluginManager, plugin: object, name: str, source: str, version: str | None
) -> str | None:
    """Register ``plugin``; the problem, worded for its author, when it cannot be."""
    if name in manager.loaded:
        return f"two plugins are named {name!r}: this one and {manager.loaded[name].source}"
    try:
        manager.add(plugin, name, source, version)
    except (pluggy.PluginValidationError, ValueError) as exc:
        return f"plugin {name!r} is not a valid vws plugin: {exc}"
    return None


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


def _settings(
    manager: PluginManager,
    config: Config,
    installed: dict[str, metadata.EntryPoint],
    autoload: bool,
    block: Blocklist,
) -> list[ConfigIssue]:
    """Convert each plugin's ``[plugins.settings.NAME]``; flag tables no plugin claims.

    A table nobody claims is an error in every mode: settings that are silently ignored are a
    plugin configured wrongly without anyone knowing. The message says why the plugin is not
    loaded when vws knows (blocked, installed but autoloading off).
    """
    issues: list[ConfigIssue] = []
    raw_settings = config.plugins.settings
    for name in raw_settings:
        if name in manager.loaded or name in manager.failed:
            continue  # a failed plugin's own error already says why its table is unused
        at = ("plugins", "settings", name)
        issues.append(config.issue(at, _unclaimed(manager, name, installed, autoload, block)))
    for name, loaded in manager.loaded.items():
        raw = raw_settings.get(name, {})
        declared = getattr(loaded.plugin, "Settings", None)
        if declared is None:
            manager.settings[name] = MappingProxyType(dict(raw))
            continue
        at = ("plugins", "settings", name)
        try:
            value, found = config.convert(raw, declared, at)
        except SettingsError as exc:
            key = tuple(part for part in exc.key.split(".") if part)
            issues.append(config.issue((*at, *key), exc.message))
            continue
        except TypeError:
            message = f"plugin {name!r} declares Settings that msgspec cannot convert to"
            issues.append(config.issue(at, message))
            continue
        issues += found
        manager.settings[name] = value
    return issues


def _unclaimed(
    manager: PluginManager,
    name: str,
    installed: dict[str, metadata.EntryPoint],
    autoload: bool,
    block: Blocklist,
) -> str:
    """Why no loaded plugin claims ``[plugins.settings.NAME]``, and what to do about it."""
    entry = installed.get(name)
    blocked = manager.blocked.get(name)
    if blocked is None and entry is not None:  # with autoload off, never even looked at
        dist = entry.dist
        found = block.match(entry.name, dist.name if dist is not None else None, entry.module)
        if found is not None:
            source = f"entry point ({_package(entry)})"
            blocked = BlockedPlugin(name, source, dist.version if dist else None, *found)
    if blocked is not None:
        return (
            f"plugin {name!r} ({blocked.source}) is blocked by {blocked.where} "
            f"({blocked.by!r}): unblock it, or remove this table"
        )
    if entry is not None and not autoload:
        return (
            f"plugin {name!r} is installed ({_package(entry)}) but not loaded: autoloading is "
            f'off (VWS_DISABLE_PLUGIN_AUTOLOAD); add "{name}" to [plugins] load, or remove '
            "this table"
        )
    loaded = ", ".join(manager.loaded) or "none"
    message = f"no plugin named {name!r} is loaded (loaded: {loaded})"
    for other in manager.loaded.values():
        module = getattr(other.plugin, "__name__", "")
        if name in (module, _last_part(module)) and name != other.name:
            message += f"; module {module} is the plugin {other.name!r}, whose table is "
            message += f"[plugins.settings.{other.name}]"
    return message
