"""Refuse to test compiled modules older than their sources (see tools/native.py)."""

from __future__ import annotations

import native
import pytest


def pytest_sessionstart(session: pytest.Session) -> None:
    stale = native.stale()
    if stale:
        # A worker would import the old extension, not the edited source: the tests would
        # pass or fail on code that is no longer there.
        pytest.exit(f"compiled modules are older than {', '.join(stale)}: run `make native`", 2)
