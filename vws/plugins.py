"""Loading plugins and calling their hooks.

Plugins come from installed packages' entry points (group ``vws``; ``VWS_DISABLE_PLUGIN_AUTOLOAD=1``
turns that off) and from ``[plugins] load`` in routes.toml. :class:`Hooks` flattens the
implementations once, at load, so that a hook nobody implements costs the hot path one falsy
check and nothing else.
"""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import Callable
from typing import Any

import pluggy

from vws import hookspecs
from vws.config import Config
from vws.errors import ConfigError, ConfigIssue, UnresolvedReference
from vws.references import importable, resolve

hookimpl = pluggy.HookimplMarker("vws")
logger = logging.getLogger("vws.plugins")

HOOK_NAMES = tuple(name for name in vars(hookspecs) if name.startswith("vws_"))


def create_manager(config: Config, *, autoload: bool | None = None) -> pluggy.PluginManager:
    """A plugin manager holding every plugin ``config`` asks for.

    Args:
        autoload: load installed entry points; by default, unless ``VWS_DISABLE_PLUGIN_AUTOLOAD``
            is set.

    Raises:
        ConfigError: a ``[plugins] load`` entry does not import or is not a valid plugin.
    """
    manager = pluggy.PluginManager("vws")
    manager.add_hookspecs(hookspecs)
    if autoload is None:
        autoload = not os.environ.get("VWS_DISABLE_PLUGIN_AUTOLOAD")
    if autoload:
        manager.load_setuptools_entrypoints("vws")
    importable(config.root)
    issues: list[ConfigIssue] = []
    for index, reference in enumerate(config.plugins.load):
        at = ("plugins", "load", str(index))
        try:
            plugin = resolve(reference)
        except UnresolvedReference as exc:
            issues.append(config.issue(at, str(exc)))
            continue
        if manager.is_registered(plugin):
            continue
        try:
            manager.register(plugin, name=reference)
        except (pluggy.PluginValidationError, ValueError) as exc:
            issues.append(config.issue(at, f"not a valid vws plugin: {exc}"))
    if issues:
        raise ConfigError(issues)
    return manager


class Impl:
    """One hook implementation, ready to call with the arguments it asks for."""

    __slots__ = ("argnames", "function", "is_async", "plugin_name")

    def __init__(self, impl: pluggy.HookImpl) -> None:
        self.function: Callable[..., Any] = impl.function
        self.argnames: tuple[str, ...] = tuple(impl.argnames)
        self.is_async = inspect.iscoroutinefunction(impl.function)
        self.plugin_name = impl.plugin_name

    def __call__(self, kwargs: dict[str, Any]) -> Any:
        return self.function(*[kwargs[name] for name in self.argnames])


class Hooks:
    """Every hook's implementations, in call order, flattened at load."""

    def __init__(self, manager: pluggy.PluginManager | None = None) -> None:
        self.manager = manager
        self.impls: dict[str, tuple[Impl, ...]] = {}
        for name in HOOK_NAMES:
            caller = getattr(manager.hook, name) if manager is not None else None
            found = caller.get_hookimpls() if caller is not None else []
            # pluggy calls the last registered first; get_hookimpls lists them the other way
            self.impls[name] = tuple(Impl(impl) for impl in reversed(found))
        #: vws_emit implementations; empty when nobody rewrites frames.
        self.emit = self.impls["vws_emit"]
        self.emit_is_async = any(impl.is_async for impl in self.emit)
        #: Whether anybody implements vws_message (checked per inbound frame).
        self.message = bool(self.impls["vws_message"])

    async def call(self, name: str, **kwargs: Any) -> None:
        """Run every implementation in order; the first exception stops the run and propagates."""
        for impl in self.impls[name]:
            result = impl(kwargs)
            if impl.is_async or inspect.isawaitable(result):
                await result

    async def observe(self, name: str, **kwargs: Any) -> None:
        """Run every implementation in order; an exception is logged with the plugin's name."""
        for impl in self.impls[name]:
            try:
                result = impl(kwargs)
                if impl.is_async or inspect.isawaitable(result):
                    await result
            except Exception:
                logger.exception("plugin %r raised in %s", impl.plugin_name, name)
