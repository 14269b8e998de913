"""System-test fixtures: each test gets a fresh site and a root it always tears down.

Every root runs in its own process group: SIGTERM, wait, SIGKILL the group, and
the test fails if any process of it is left.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyws_harness import Pyws, Site, wait_until


@pytest.fixture
def site() -> Iterator[Site]:
    # tmp_path is 0700 under /tmp/pytest-of-root: an unprivileged worker could not
    # read a document root there.
    base = Path(tempfile.mkdtemp(prefix="pyws-test-"))
    base.chmod(0o755)
    try:
        yield Site(base)
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def pyws(site: Site, tmp_path: Path) -> Iterator[Pyws]:
    server = Pyws(site, tmp_path / "pyws.log")
    try:
        yield server
    finally:
        server.stop()
        # SIGKILLed workers may take a moment to be reaped by init.
        wait_until(lambda: not server.group_processes(), 10, "no process of the test left")
