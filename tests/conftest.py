"""Refuse to test compiled modules older than their sources (see tools/native.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_NATIVE = Path(__file__).resolve().parent.parent / "tools" / "native.py"


def pytest_sessionstart(session: pytest.Session) -> None:
    spec = importlib.util.spec_from_file_location("pyws_native_build", _NATIVE)
    assert spec is not None and spec.loader is not None
    native = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(native)
    stale = native.stale()
    if stale:
        # A worker would import the old extension, not the edited source: the tests would
        # pass or fail on code that is no longer there.
        pytest.exit(f"compiled modules are older than {', '.join(stale)}: run `make native`", 2)
