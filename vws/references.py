"""Resolve ``"package.module:attribute"`` references to Python objects.

routes.toml names handlers, middleware, schemas and plugins by reference; this is the one place
that turns such a string into the object, so every reference in vws follows the same rules:
``module:attr.sub`` is explicit, and ``module.attr`` resolves with the longest importable module
prefix.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

from vws.errors import UnresolvedReference


def importable(folder: Path) -> None:
    """Make modules in ``folder`` importable (the folder holding routes.toml)."""
    entry = str(folder)
    if entry not in sys.path:
        sys.path.insert(0, entry)


def resolve(reference: str) -> Any:
    """Import what ``reference`` names.

    Raises:
        UnresolvedReference: the module does not import (with the import's own error message) or
            does not have the attribute.
    """
    if ":" in reference:
        module_name, _, attribute = reference.partition(":")
        module = _import(module_name)
        return _attribute(module, module_name, attribute)
    parts = reference.split(".")
    failure: UnresolvedReference | None = None
    for cut in range(len(parts) - 1, 0, -1):
        module_name = ".".join(parts[:cut])
        try:
            module = _import(module_name)
        except UnresolvedReference as exc:
            failure = failure or exc
            continue
        return _attribute(module, module_name, ".".join(parts[cut:]))
    if failure is None:
        try:
            return _import(reference)
        except UnresolvedReference as exc:
            failure = exc
    raise failure


def _import(module_name: str) -> Any:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise UnresolvedReference(f"cannot import module {module_name!r}: {exc}") from None
    except Exception as exc:
        kind = type(exc).__name__
        raise UnresolvedReference(
            f"importing module {module_name!r} failed: {kind}: {exc}"
        ) from None


def _attribute(module: Any, module_name: str, attribute: str) -> Any:
    value = module
    for name in attribute.split("."):
        try:
            value = getattr(value, name)
        except AttributeError:
            raise UnresolvedReference(
                f"module {module_name!r} has no attribute {attribute!r}"
            ) from None
    return value
