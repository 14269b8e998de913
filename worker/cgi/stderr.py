"""Where a mount's scripts write their stderr: one pipe per mount, read into the error log.

Each script gets the write end as its fd 2. One pipe for all the mount's scripts, rather than
one per request, saves a pipe, a loop registration and four syscalls on every request, as
lighttpd saves them by handing its error log to the script. Unlike the error log itself, the
pipe lets each line be named by its script. A write of up to PIPE_BUF (4 KiB) cannot
interleave with another script's, so each read is logged as it comes, line by line; a
longer write may be logged in pieces. The worker holds the write end, so a script or an
escaped grandchild that keeps stderr open holds no request open.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Final

log: Final = logging.getLogger("pyws.cgi")


class StderrLog:
    """One mount's stderr pipe. `fd()` opens it on first use (the loop must be running); it
    lasts as long as the worker."""

    def __init__(self, script: str) -> None:
        self.script = script
        self._read = -1
        self._write = -1

    def fd(self) -> int:
        """The write end, to be dup'ed onto a script's fd 2 (close-on-exec in the worker)."""
        if self._write < 0:
            self._read, self._write = os.pipe()
            os.set_blocking(self._read, False)
            asyncio.get_running_loop().add_reader(self._read, self._on_readable)
        return self._write

    def _on_readable(self) -> None:
        try:
            data = os.read(self._read, 65536)
        except BlockingIOError:
            return
        self.feed(data)

    def feed(self, data: bytes) -> None:
        """Log each line of what one read brought, an unfinished last one included: the
        pipe is shared, so the next bytes may be another script's, and a script's last
        words may have no newline."""
        for line in data.split(b"\n"):
            if line:
                log.warning("cgi %s stderr: %s", self.script, line.decode("utf-8", "replace"))
