"""Live configuration: apply an edited routes.toml to a running server.

A reload builds a complete new dispatch table (and, when ``[plugins]`` changed, a new set of
hooks) off to the side, and only if every reference resolves does it swap it in with one
assignment. Connections are never touched, except those on a path the edit removed, which are
closed with 4404. Frames are looked up in whichever table is current when they arrive, so a
frame during a swap is handled by the old or the new table, never lost.

Code is live too. The project's own modules (those whose file lies in the folder of
routes.toml, and the files of a plugins folder) are watched with it, and a reload re-imports
those whose file changed since they were imported, so an edited handler body or a new function
serves from the next frame. The imports run in a worker thread, so a slow import does not hold
up the clients; anything an import raises (``SystemExit`` included) refuses the reload, located
at the file and line that raised, and the old table keeps serving.

Files are watched by polling their modification time and size: cheap, and it sees editors that
write in place as well as those that replace the file. A change is acted on only once the files
have stayed the same for one more poll, so that a file written in place is never read in the
middle of its writing (``cat > routes.toml`` truncates it first).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import importlib.util
import logging
import os
import signal
import sys
import traceback
from pathlib import Path
from types import ModuleType

from vws.config import Config, load_config
from vws.errors import USER_CODE_FAILURES, ConfigError, ConfigIssue
from vws.hooks import Hooks, create_manager
from vws.routing import DispatchTable, Route, compile_table
from vws.runtime.node import Server

logger = logging.getLogger("vws.ops.reload")

#: How often the watched files are looked at (seconds); a valid edit applies within two of
#: these (it must be seen unchanged once more before it is read).
POLL_INTERVAL = 0.25

Stamp = tuple[int, int] | None


def _stamp(path: Path) -> Stamp:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size


def describe_changes(old: DispatchTable, new: DispatchTable) -> str:
    """A one-line summary of what a reload changes: ``+`` added, ``-`` removed, ``~`` changed."""
    parts = [f"+{path}" for path in new.routes if path not in old.routes]
    parts += [f"-{path}" for path in old.routes if path not in new.routes]
    for path in sorted(old.routes.keys() & new.routes.keys()):
        changes = _route_changes(old.routes[path], new.routes[path])
        if changes:
            parts.append(f"{path}: {' '.join(changes)}")
    if old.config.plugins != new.config.plugins:
        parts.append("~plugins")
    if old.config.server != new.config.server:
        parts.append("~server")
    return ", ".join(parts) if parts else "no change"


def _route_changes(old: Route, new: Route) -> list[str]:
    def signature(route: Route) -> dict[str, tuple[str, str | None]]:
        events = {n: (e.handler.reference, e.schema_reference) for n, e in route.events.items()}
        for name, callback in (("connect", route.on_connect), ("disconnect", route.on_disconnect)):
            if callback is not None:
                events[name] = (callback.reference, None)
        return events

    before, after = signature(old), signature(new)
    changes = [f"+{n}" for n in after if n not in before]
    changes += [f"-{n}" for n in before if n not in after]
    changes += [f"~{n}" for n in after if n in before and after[n] != before[n]]
    if [m.reference for m in old.middleware] != [m.reference for m in new.middleware]:
        changes.append("~middleware")
    if old.broadcast != new.broadcast:
        changes.append("~broadcast")
    return changes


#: Set (to anything) in the environment to let a reload remove every route.
ALLOW_NO_ROUTES = "VWS_ALLOW_NO_ROUTES"
#: The module names the plugins folder's files are loaded under (vws.hooks.loading).
PLUGINS_DIR_PREFIX = "vws_plugins_dir_"


def project_modules(root: Path) -> dict[str, Path]:
    """The imported modules that are the project's own: their file lies under ``root`` (but
    not in a virtual environment, and not vws itself), or they are plugins-folder files."""
    found: dict[str, Path] = {}
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if not file or name == "vws" or name.startswith("vws."):
            continue
        path = Path(file).resolve()
        if name.startswith(PLUGINS_DIR_PREFIX) or (
            path.is_relative_to(root) and not {".venv", "venv", "site-packages"} & set(path.parts)
        ):
            found[name] = path
    return found


def reimport(name: str) -> None:
    """Run a module's changed source again, into the same module object."""
    module = sys.modules[name]
    if name.startswith(PLUGINS_DIR_PREFIX):
        # Loaded from a file path, not found by name: importlib.reload cannot find it again.
        _exec_file(module)
    else:
        importlib.reload(module)


def _exec_file(module: ModuleType) -> None:
    spec = importlib.util.spec_from_file_location(module.__name__, module.__file__ or "")
    assert spec is not None and spec.loader is not None
    spec.loader.exec_module(module)


def import_failure(name: str, error: BaseException, root: Path) -> ConfigIssue:
    """Where re-importing ``name`` failed: the deepest line of the project's own files in the
    traceback (or the line of a syntax error), and what was raised."""
    where, line = str(sys.modules[name].__file__ or name), 0
    if isinstance(error, SyntaxError) and error.filename:
        where, line = error.filename, error.lineno or 0
    else:
        for frame in traceback.extract_tb(error.__traceback__):
            path = Path(frame.filename)
            if path.is_absolute() and path.resolve().is_relative_to(root):
                where, line = frame.filename, frame.lineno or 0
    with contextlib.suppress(ValueError):
        where = os.path.relpath(where)
    message = f"re-importing {name} failed: {type(error).__name__}: {error}"
    return ConfigIssue(where, line, "", message)


#: Settings that the listening socket or the backplane fixed at start: a change needs a
#: restart. (vws's own protocol reads every other [server] setting afresh, so they apply at
#: once: to new connections, or at the next frame, ping or handshake.)
RESTART_SETTINGS = (
    "host",
    "port",
    "backplane",
)


class Reloader:
    """Watches routes.toml and the project's modules for one server, and applies changes."""

    def __init__(self, server: Server, config_path: str | Path, *, watch: bool = True) -> None:
        self.server = server
        self.path = Path(config_path)
        self.watch = watch
        #: The file stamps a reload last saw (routes.toml and every project module).
        self._seen: dict[Path, Stamp] = {}
        #: Each project module's file stamp as of its (re-)import.
        self._imported: dict[str, Stamp] = {}
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        #: Reloads applied and refused, for logs and tests.
        self.applied = 0
        self.refused = 0

    @property
    def root(self) -> Path:
        return self.server.table.config.root

    def _modules(self) -> dict[str, Path]:
        return project_modules(self.root)

    def _snapshot(self) -> dict[Path, Stamp]:
        files = [self.path, *self._modules().values()]
        return {path: _stamp(path) for path in files}

    async def start(self) -> None:
        """Begin watching (unless ``watch`` is off) and reload on SIGHUP."""
        self._seen = self._snapshot()
        self._imported = {name: _stamp(path) for name, path in self._modules().items()}
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signal.SIGHUP, self._on_sighup)
        if self.watch:
            self._task = loop.create_task(self._watch())

    async def stop(self) -> None:
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _on_sighup(self) -> None:
        logger.info("SIGHUP: reloading %s", self.path)
        asyncio.get_running_loop().create_task(self.reload())

    async def _watch(self) -> None:
        previous = self._seen
        while True:
            await asyncio.sleep(POLL_INTERVAL)
            now = self._snapshot()
            # Act on a change only once the files are settled: unchanged since the last poll.
            if now != self._seen and now == previous:
                await self.reload()
            previous = now

    def _changed_modules(self) -> list[str]:
        return [
            name
            for name, path in self._modules().items()
            if name in self._imported and _stamp(path) != self._imported[name]
        ]

    async def reload(self) -> bool:
        """Re-import the changed project modules, load routes.toml again and swap it in;
        False (the old table kept) when any of that fails."""
        async with self._lock:
            self._seen = self._snapshot()
            old = self.server.table
            try:
                table, hooks = await asyncio.to_thread(self._build, old)
            except ConfigError as error:
                self._refuse(str(error))
                return False
            except USER_CODE_FAILURES:
                self.refused += 1
                self.server.stats.reload_refused()
                logger.exception("reload refused, the running configuration stays")
                return False
            await self._apply(old, table, hooks)
            return True

    def _build(self, old: DispatchTable) -> tuple[DispatchTable, Hooks | None]:
        """The new table (and hooks) from the files as they are now. Runs in a worker thread.

        Raises:
            ConfigError: a located problem: a module that fails to import, a bad routes.toml,
                or an edit that would remove every route.
        """
        changed = self._changed_modules()
        for name in changed:
            path = self._modules().get(name)
            try:
                reimport(name)
            except USER_CODE_FAILURES as error:
                raise ConfigError([import_failure(name, error, self.root)]) from None
            self._imported[name] = _stamp(path) if path else None
            logger.info("re-imported %s", name)
        config = load_config(self.path)
        _refuse_emptying(old.config, config)
        table = compile_table(config)
        for name, path in self._modules().items():
            self._imported.setdefault(name, _stamp(path))  # imported for the first time now
        hooks = None
        if changed or config.plugins != old.config.plugins:
            hooks = Hooks(create_manager(config))
        return table, hooks

    def _refuse(self, why: str) -> None:
        self.refused += 1
        self.server.stats.reload_refused()
        logger.error("reload refused, the running configuration stays:\n%s", why)

    async def _apply(self, old: DispatchTable, table: DispatchTable, hooks: Hooks | None) -> None:
        server = self.server
        previous_hooks = server.hooks
        server.swap(table, hooks)
        self.applied += 1
        logger.info("reloaded %s: %s", self.path.name, describe_changes(old, table))
        for name in RESTART_SETTINGS:
            if getattr(old.config.server, name) != getattr(table.config.server, name):
                logger.warning("server.%s changed: restart vws to apply it", name)
        if hooks is not None:
            await _plugin_lifecycle(server, previous_hooks, hooks, old, table)
        removed = old.routes.keys() - table.routes.keys()
        if removed:
            closing = [
                c.close(4404, "route removed")
                for c in list(server.connections.values())
                if c.client.path in removed
            ]
            await asyncio.gather(*closing, return_exceptions=True)


def _refuse_emptying(old: Config, new: Config) -> None:
    """An edit that leaves no route would close every client with 4404, which vws.js takes as
    final: far more often a half-written file than a wish. Refuse it unless asked for."""
    if old.routes and not new.routes and not os.environ.get(ALLOW_NO_ROUTES):
        message = (
            f"the edit removes every route, which would close every client; if you mean it, "
            f"set {ALLOW_NO_ROUTES}=1 or restart vws"
        )
        raise ConfigError([ConfigIssue(new.source, 1, "routes", message)])


async def _plugin_lifecycle(
    server: Server, old: Hooks, new: Hooks, before: DispatchTable, after: DispatchTable
) -> None:
    """Start the plugins a reload added (or whose settings changed) and stop the ones it
    removed. The new hooks already serve: a plugin that fails to start is logged, not undone."""
    old_settings = before.config.plugins.settings
    new_settings = after.config.plugins.settings

    def changed(name: str, kept: dict[str, object], plugin: object) -> bool:
        return kept.get(name) is not plugin or old_settings.get(name) != new_settings.get(name)

    was = {name: loaded.plugin for name, loaded in old.plugins.items()}
    now = {name: loaded.plugin for name, loaded in new.plugins.items()}
    stopped = [name for name, plugin in was.items() if changed(name, now, plugin)]
    started = [name for name, plugin in now.items() if changed(name, was, plugin)]
    if stopped:
        await old.only(stopped).observe("vws_shutdown", server=server)
    if started:
        try:
            await new.only(started).call("vws_startup", **server.startup_arguments())
        except Exception:
            logger.exception("a plugin added by the reload failed to start: %s", started)
