"""Refuse to test compiled modules older than their sources (see tools/native.py); and a
uvloop loop for tests that drive worker parts on one without a server."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import native
import pytest
import uvloop


def pytest_sessionstart(session: pytest.Session) -> None:
    stale = native.stale()
    if stale:
        # A worker would import the old extension, not the edited source: the tests would
        # pass or fail on code that is no longer there.
        pytest.exit(f"compiled modules are older than {', '.join(stale)}: run `make native`", 2)


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    """A new uvloop loop, not running: the test runs it as far as it needs."""
    loop = uvloop.new_event_loop()
    yield loop
    loop.close()
