"""Calling the hooks: every implementation flattened once, at load, in call order.

A hook nobody implements costs the hot path one falsy check and nothing else: :class:`Hooks`
keeps a tuple per hook, and the runtime looks at ``hooks.emit``, ``hooks.deliver`` or
``hooks.message`` before calling.

The arguments vws binds (``settings``, ``logger``, ``server``) are put in place once, when the
plugins are loaded and when the node takes the hooks, so a call passes only the hook's own.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterable
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import pluggy

from vws import logs
from vws.errors import USER_CODE_FAILURES, ConfigError, ConfigIssue, Deny, PluginError
from vws.hooks.specs import HOOK_NAMES

if TYPE_CHECKING:
    from vws.hooks.loading import LoadedPlugin
    from vws.runtime.node import Server

logger = logging.getLogger("vws.hooks")

#: Hook arguments vws binds (per plugin at load, and the server when a node takes the hooks);
#: callers never pass them.
BOUND_ARGUMENTS = frozenset({"settings", "logger", "server"})


class PluginLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """A plugin's own logger (``vws.plugin.NAME``): its lines carry the plugin as a field, and
    what the plugin passes as ``extra`` becomes fields too (``extra={"room": room}`` is a
    ``room`` field in JSON logs and ``room=...`` in text ones)."""

    def __init__(self, name: str) -> None:
        super().__init__(logging.getLogger(f"vws.plugin.{name}"), {"plugin": name})

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        extra = dict(kwargs.get("extra") or {})
        fields = {"plugin": self.extra["plugin"] if self.extra else ""}
        fields.update(extra.pop("vws_fields", {}))
        fields.update(extra)
        kwargs["extra"] = {"vws_fields": fields}
        return msg, kwargs


def failed(plugin: str, hook: str, outcome: str, log: logging.Logger = logger) -> None:
    """Log the exception being handled, raised by ``plugin`` in ``hook``, with both as fields."""
    logs.plugin_failed(log, plugin, hook, f"plugin {plugin!r} raised in {hook}; {outcome}")


def refusal_failed(error: BaseException, outcome: str, log: logging.Logger = logger) -> None:
    """Log a refusal hook's failure (what :meth:`Hooks.call` raised) naming plugin and hook as
    fields; anything else vws called on the way (middleware) is logged as it is."""
    if isinstance(error, PluginError):
        failed(error.plugin, error.hook, outcome, log)
    else:
        log.exception(outcome)


def default_settings(plugin: object) -> Any:
    """A plugin's settings when routes.toml gives none: its ``Settings()``, or an empty dict."""
    declared = getattr(plugin, "Settings", None)
    if declared is not None:
        try:
            return declared()
        except TypeError:  # a required field: no default exists
            return None
    return MappingProxyType({})


class Impl:
    """One hook implementation, ready to call with the arguments it asks for."""

    __slots__ = ("argnames", "bound", "function", "is_async", "plugin_name", "wants_server")

    def __init__(self, impl: pluggy.HookImpl, settings: Any = None) -> None:
        self.function: Callable[..., Any] = impl.function
        names = tuple(impl.argnames)
        self.plugin_name = impl.plugin_name
        given = {"settings": settings, "logger": PluginLogger(impl.plugin_name), "server": None}
        #: Arguments this plugin gets whatever the caller passes, or None when it takes none.
        self.bound: dict[str, Any] | None = (
            {name: given[name] for name in names if name in BOUND_ARGUMENTS}
            if BOUND_ARGUMENTS.intersection(names)
            else None
        )
        self.wants_server = "server" in names
        self.argnames: tuple[str, ...] = tuple(n for n in names if n not in BOUND_ARGUMENTS)
        self.is_async = inspect.iscoroutinefunction(impl.function)

    def pair(self) -> Callable[[Any, Any], Any]:
        """This implementation as a function of ``(client, message)``, for ``vws_deliver``,
        which runs once per receiver: the function itself when it takes exactly those two,
        so the call costs no dict and no list."""
        function, names = self.function, self.argnames
        if self.bound is None and names == ("client", "message"):
            return function
        if self.bound is None and names == ("message", "client"):
            return lambda client, message: function(message, client)
        return lambda client, message: self({"client": client, "message": message})

    def __call__(self, kwargs: dict[str, Any]) -> Any:
        if self.bound is None:
            return self.function(*[kwargs[name] for name in self.argnames])
        return self.function(**{name: kwargs[name] for name in self.argnames}, **self.bound)


class Hooks:
    """Every hook's implementations, in call order, flattened at load."""

    def __init__(
        self, manager: pluggy.PluginManager | None = None, *, only: Iterable[str] | None = None
    ) -> None:
        self.manager = manager
        self._only = only
        #: The node these hooks are bound to (its ``server`` argument), once one took them.
        self.server: Server | None = None
        settings: dict[str, Any] = getattr(manager, "settings", {})
        keep = None if only is None else set(only)
        self.impls: dict[str, tuple[Impl, ...]] = {}
        for name in HOOK_NAMES:
            caller = getattr(manager.hook, name) if manager is not None else None
            found = caller.get_hookimpls() if caller is not None else []
            # pluggy calls the last registered first; get_hookimpls lists them the other way
            self.impls[name] = tuple(
                Impl(
                    impl,
                    settings[impl.plugin_name]
                    if impl.plugin_name in settings
                    else default_settings(impl.plugin),
                )
                for impl in reversed(found)
                if keep is None or impl.plugin_name in keep
            )
        #: vws_emit implementations; empty when nobody rewrites frames.
        self.emit = self.impls["vws_emit"]
        self.emit_is_async = any(impl.is_async for impl in self.emit)
        #: vws_deliver implementations, called per receiver; empty when nobody filters.
        self.deliver = self.impls["vws_deliver"]
        #: The same, each as (plugin name, a function of (client, message)).
        self.deliver_calls = tuple((impl.plugin_name, impl.pair()) for impl in self.deliver)
        refused = [impl.plugin_name for impl in self.deliver if impl.is_async]
        if refused:
            message = "vws_deliver runs once per receiver inside the fan-out: make it a plain def"
            raise ConfigError(
                [ConfigIssue(f"plugin {name!r}", 0, "vws_deliver", message) for name in refused]
            )
        #: Whether anybody implements vws_message (checked per inbound frame).
        self.message = bool(self.impls["vws_message"])
        #: Whether a vws_refused implementation may suspend (a refused frame then needs a task).
        self.async_refused = any(impl.is_async for impl in self.impls["vws_refused"])

    def only(self, names: Iterable[str]) -> Hooks:
        """The same hooks, keeping only the plugins named (with the settings bound here)."""
        return Hooks(self.manager, only=names)

    def bound_to(self, server: Server) -> Hooks:
        """These hooks with ``server`` as their ``server`` argument: themselves the first time,
        a copy when another node took them already (two nodes of one process)."""
        if self.server is not None and self.server is not server:
            return Hooks(self.manager, only=self._only).bound_to(server)
        self.server = server
        for impls in self.impls.values():
            for impl in impls:
                if impl.wants_server:
                    assert impl.bound is not None
                    impl.bound["server"] = server
        return self

    @property
    def plugins(self) -> dict[str, LoadedPlugin]:
        """The loaded plugins by name, in registration order."""
        return dict(getattr(self.manager, "loaded", {}))

    def settings_for(self, plugin: object) -> Any:
        """A loaded plugin's settings, for its code outside hooks (handlers); None if not loaded."""
        for name, loaded in getattr(self.manager, "loaded", {}).items():
            if loaded.plugin is plugin:
                return getattr(self.manager, "settings", {}).get(name)
        return None

    async def call(self, name: str, **kwargs: Any) -> None:
        """Run every implementation in order; the first exception stops the run.

        Raises:
            Deny: as the implementation raised it (a refusal).
            PluginError: any other exception, naming the plugin; the original is its cause.
        """
        for impl in self.impls[name]:
            try:
                result = impl(kwargs)
                if impl.is_async or inspect.isawaitable(result):
                    await result
            except Deny:
                raise
            except USER_CODE_FAILURES as exc:
                raise PluginError(impl.plugin_name, name, exc) from exc

    async def observe(self, name: str, **kwargs: Any) -> None:
        """Run every implementation in order; an exception is logged with the plugin's name."""
        for impl in self.impls[name]:
            try:
                result = impl(kwargs)
                if impl.is_async or inspect.isawaitable(result):
                    await result
            except USER_CODE_FAILURES:
                failed(impl.plugin_name, name, "the next implementation runs")
