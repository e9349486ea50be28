"""Live configuration: apply an edited routes.toml to a running server.

A reload builds a complete new dispatch table (and, when ``[plugins]`` changed, a new set of
hooks) off to the side, and only if every reference resolves does it swap it in with one
assignment. Connections are never touched, except those on a path the edit removed, which are
closed with 4404. Frames are looked up in whichever table is current when they arrive, so a
frame during a swap is handled by the old or the new table, never lost.

The file is watched by polling its modification time and size: cheap, and it sees editors that
write in place as well as those that replace the file.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import signal
import sys
from pathlib import Path

from vws.config import load_config
from vws.errors import ConfigError
from vws.hooks import Hooks, create_manager
from vws.routing import DispatchTable, Route, compile_table
from vws.runtime.node import Server

logger = logging.getLogger("vws.ops.reload")

#: How often the watched files are looked at (seconds); a valid edit applies within this.
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


#: Settings that the listening socket or the backplane fixed at start: a change needs a
#: restart. (vws's own protocol reads every other [server] setting afresh, so they apply at
#: once: to new connections, or at the next frame, ping or handshake.)
RESTART_SETTINGS = (
    "host",
    "port",
    "backplane",
)


class Reloader:
    """Watches routes.toml (and, with ``reload_code``, the handler modules) for one server."""

    def __init__(
        self,
        server: Server,
        config_path: str | Path,
        *,
        watch: bool = True,
        reload_code: bool = False,
    ) -> None:
        self.server = server
        self.path = Path(config_path)
        self.watch = watch
        self.reload_code = reload_code
        self._stamps: dict[Path, Stamp] = {}
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        #: Reloads applied and refused, for logs and tests.
        self.applied = 0
        self.refused = 0

    def _watched(self) -> list[Path]:
        files = [self.path]
        if self.reload_code:
            files += [path for _, path in self._code_modules()]
        return files

    def _code_modules(self) -> list[tuple[str, Path]]:
        """Modules of the project folder that the current table or its plugins came from."""
        root = self.server.table.config.root
        found: list[tuple[str, Path]] = []
        for name, module in list(sys.modules.items()):
            file = getattr(module, "__file__", None)
            if not file:
                continue
            path = Path(file).resolve()
            if path.is_relative_to(root) and ".venv" not in path.parts:
                found.append((name, path))
        return found

    async def start(self) -> None:
        """Begin watching (unless ``watch`` is off) and reload on SIGHUP."""
        self._stamps = {path: _stamp(path) for path in self._watched()}
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
        asyncio.get_running_loop().create_task(self.reload(reimport=self._changed_code()))

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(POLL_INTERVAL)
            changed = [path for path in self._watched() if _stamp(path) != self._stamps.get(path)]
            if changed:
                await self.reload(reimport=self._changed_code())

    def _changed_code(self) -> list[str]:
        if not self.reload_code:
            return []
        return [
            name for name, path in self._code_modules() if _stamp(path) != self._stamps.get(path)
        ]

    async def reload(self, reimport: list[str] | None = None) -> bool:
        """Load routes.toml again and swap it in; False (old table kept) when it is not valid."""
        async with self._lock:
            self._stamps = {path: _stamp(path) for path in self._watched()}
            try:
                for name in reimport or ():
                    importlib.reload(sys.modules[name])
                    logger.info("re-imported %s", name)
                config = load_config(self.path)
                table = compile_table(config)
                old = self.server.table
                hooks = None
                if config.plugins != old.config.plugins:
                    hooks = Hooks(create_manager(config))
            except ConfigError as error:
                self.refused += 1
                self.server.stats.reload_refused()
                logger.error("reload refused, the running configuration stays:\n%s", error)
                return False
            except Exception:
                self.refused += 1
                self.server.stats.reload_refused()
                logger.exception("reload refused, the running configuration stays")
                return False
            self._stamps = {path: _stamp(path) for path in self._watched()}
            await self._apply(old, table, hooks)
            return True

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
