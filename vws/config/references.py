"""Resolve ``"package.module:attribute"`` references to Python objects.

routes.toml names handlers, middleware, schemas and plugins by reference; this is the one place
that turns such a string into the object, so every reference in vws follows the same rules:
``module:attr.sub`` is explicit, and ``module.attr`` resolves with the longest importable module
prefix.
"""

from __future__ import annotations

import difflib
import importlib
import sys
from pathlib import Path
from typing import Any

from vws.errors import USER_CODE_FAILURES, UnresolvedReference


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
    for cut in range(len(parts), 0, -1):
        module_name = ".".join(parts[:cut])
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            # only "this prefix is not a module" means: try a shorter one
            missing = exc.name or ""
            if module_name == missing or module_name.startswith(missing + "."):
                continue
            raise _import_failed(module_name, exc) from None
        except USER_CODE_FAILURES as exc:
            raise _import_failed(module_name, exc) from None
        if cut == len(parts):
            return module
        return _attribute(module, module_name, ".".join(parts[cut:]))
    raise UnresolvedReference(f"cannot import module {parts[0]!r}: no module named {parts[0]!r}")


def _import(module_name: str) -> Any:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if module_name == missing or module_name.startswith(missing + "."):
            raise UnresolvedReference(f"cannot import module {module_name!r}: {exc}") from None
        raise _import_failed(module_name, exc) from None
    except USER_CODE_FAILURES as exc:
        raise _import_failed(module_name, exc) from None


def _import_failed(module_name: str, exc: BaseException) -> UnresolvedReference:
    """The module exists but its import raised: name the exception, never a traceback."""
    return UnresolvedReference(
        f"importing module {module_name!r} failed: {type(exc).__name__}: {exc}"
    )


def _attribute(module: Any, module_name: str, attribute: str) -> Any:
    value = module
    names = attribute.split(".")
    for at, name in enumerate(names):
        try:
            value = getattr(value, name)
        except AttributeError:
            close = difflib.get_close_matches(
                name, [n for n in dir(value) if n[:1] != "_"], 1, 0.75
            )
            hint = ""
            if close:  # the whole reference, with the misspelt part put right
                hint = f"; did you mean {'.'.join([*names[:at], close[0]])}?"
            raise UnresolvedReference(
                f"module {module_name!r} has no attribute {attribute!r}{hint}"
            ) from None
    return value
