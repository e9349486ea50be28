"""Plugins and their hooks: the specs, loading plugins, and calling what they implement.

``specs`` lists every hook (the one place to read them); ``loading`` finds plugins (entry
points, a plugins folder, ``[plugins] load``) and validates their settings; ``calling`` flattens
what they implement for the node to call.
"""

from vws.hooks.calling import Hooks, Impl, default_settings
from vws.hooks.loading import ENTRY_POINT_GROUP, LoadedPlugin, PluginManager, create_manager
from vws.hooks.specs import HOOK_NAMES, hookimpl, hookspec

__all__ = [
    "ENTRY_POINT_GROUP",
    "HOOK_NAMES",
    "Hooks",
    "Impl",
    "LoadedPlugin",
    "PluginManager",
    "create_manager",
    "default_settings",
    "hookimpl",
    "hookspec",
]
