"""The build compiles every module tools/native.py names, and the worker imports them so."""

from __future__ import annotations

import importlib

import native
import pytest


def test_every_named_module_imports_compiled() -> None:
    if not native.built():
        pytest.skip("no compiled modules: `make native` builds them (pure Python runs too)")
    for path in native.MODULES:
        name = "pyws." + path.removesuffix(".py").replace("/", ".")
        module = importlib.import_module(name)
        assert str(module.__file__).endswith(".so"), f"{name} runs from source"
