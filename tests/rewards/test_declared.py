"""Every Reward class under rewards/ is declared in pyproject's entry points, and the install is current."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import sys
from importlib import metadata
from pathlib import Path

import rewards
from src.registry import GROUP

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def _reward_classes() -> dict[str, str]:
    """``"module:Class" -> name`` for every class defined under rewards/ with a string ``name`` and a call."""
    found = {}
    for info in pkgutil.iter_modules(rewards.__path__):
        module = importlib.import_module(f"rewards.{info.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ != module.__name__ or getattr(cls, "_is_protocol", False):
                continue
            defines_call = any("__call__" in vars(klass) for klass in cls.__mro__[:-1])  # not type.__call__
            if isinstance(getattr(cls, "name", None), str) and defines_call:
                found[f"{module.__name__}:{cls.__name__}"] = cls.name
    return found


def _declared() -> dict[str, str]:
    table = tomllib.loads(PYPROJECT.read_text())["project"]["entry-points"][GROUP]
    return {value: name for name, value in table.items()}


def test_every_reward_class_is_declared_under_its_own_name():
    classes = _reward_classes()
    declared = _declared()
    assert classes, "no reward classes found under rewards/"
    missing = sorted(set(classes) - set(declared))
    assert not missing, f"declare these in pyproject [project.entry-points.{GROUP!r}]: {missing}"
    for obj, name in classes.items():
        assert declared[obj] == name, f"{obj} has name {name!r} but is declared as {declared[obj]!r}"


def test_every_declaration_points_to_a_reward_class():
    assert set(_declared()) <= set(_reward_classes())


def test_installed_metadata_matches_pyproject():
    installed = {ep.value: ep.name for ep in metadata.distribution("migr").entry_points if ep.group == GROUP}
    assert installed == _declared(), "pyproject changed since the last install: run `pip install -e . --no-deps`"
