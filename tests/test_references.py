"""vws.config.references.resolve: the longest importable module prefix wins."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest

from vws.config.references import resolve
from vws.errors import UnresolvedReference


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    name = f"refpkg_{uuid.uuid4().hex[:8]}"
    root = tmp_path / name
    (root / "sub").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "sub" / "__init__.py").write_text("")
    (root / "sub" / "mod.py").write_text("VALUE = 42\nclass Thing:\n    attr = 'x'\n")
    (root / "broken.py").write_text("import definitely_missing_dependency_xyz\n")
    (root / "raising.py").write_text("raise RuntimeError('boom at import')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    for module in [m for m in sys.modules if m.startswith(name)]:
        del sys.modules[module]


def test_a_dotted_reference_to_a_submodule_not_yet_imported(package: str):
    module = resolve(f"{package}.sub.mod")
    assert module.VALUE == 42


def test_dotted_and_colon_attribute_forms(package: str):
    assert resolve(f"{package}.sub.mod.VALUE") == 42
    assert resolve(f"{package}.sub.mod.Thing.attr") == "x"
    assert resolve(f"{package}.sub.mod:Thing.attr") == "x"


def test_a_missing_attribute_names_the_module(package: str):
    with pytest.raises(UnresolvedReference, match=r"has no attribute 'NOPE'"):
        resolve(f"{package}.sub.mod.NOPE")


def test_a_missing_module(package: str):
    with pytest.raises(UnresolvedReference, match=r"cannot import module 'no_such_top_xyz'"):
        resolve("no_such_top_xyz.thing")
    with pytest.raises(UnresolvedReference, match=r"cannot import module"):
        resolve("no_such_top_xyz.thing:attr")


def test_a_module_whose_own_import_fails_is_reported_as_such(package: str):
    with pytest.raises(UnresolvedReference) as info:
        resolve(f"{package}.broken.thing")
    assert "importing module" in str(info.value)
    assert "definitely_missing_dependency_xyz" in str(info.value)
    with pytest.raises(UnresolvedReference, match=r"RuntimeError: boom at import"):
        resolve(f"{package}.raising:anything")
