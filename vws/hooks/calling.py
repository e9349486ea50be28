"""Calling the hooks: every implementation flattened once, at load, in call order.

A hook nobody implements costs the hot path one falsy check and nothing else: :class:`Hooks`
keeps a tuple per hook, and the runtime looks at ``hooks.emit`` or ``hooks.message`` before
calling.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterable
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import pluggy

from vws.errors import USER_CODE_FAILURES, Deny, PluginError
from vws.hooks.specs import HOOK_NAMES

if TYPE_CHECKING:
    from vws.hooks.loading import LoadedPlugin

logger = logging.getLogger("vws.hooks")

#: Hook arguments vws binds per plugin at load; callers never pass them.
BOUND_ARGUMENTS = frozenset({"settings"})


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

    __slots__ = ("argnames", "bound", "function", "is_async", "plugin_name")

    def __init__(self, impl: pluggy.HookImpl, settings: Any = None) -> None:
        self.function: Callable[..., Any] = impl.function
        names = tuple(impl.argnames)
        #: Arguments this plugin gets whatever the caller passes (its settings), or None.
        self.bound: dict[str, Any] | None = (
            {name: settings for name in names if name in BOUND_ARGUMENTS}
            if BOUND_ARGUMENTS.intersection(names)
            else None
        )
        self.argnames: tuple[str, ...] = tuple(n for n in names if n not in BOUND_ARGUMENTS)
        self.is_async = inspect.iscoroutinefunction(impl.function)
        self.plugin_name = impl.plugin_name

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
        #: Whether anybody implements vws_message (checked per inbound frame).
        self.message = bool(self.impls["vws_message"])
        #: Whether a vws_refused implementation may suspend (a refused frame then needs a task).
        self.async_refused = any(impl.is_async for impl in self.impls["vws_refused"])

    def only(self, names: Iterable[str]) -> Hooks:
        """The same hooks, keeping only the plugins named (with the settings bound here)."""
        return Hooks(self.manager, only=names)

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
                logger.exception("plugin %r raised in %s", impl.plugin_name, name)
