"""The pidfile and, beside it, the root's state file that pyws-ctl reads.

The state file records the config dir and the outcome of the latest reload, so
`pyws-ctl reload` can tell which reload answered its SIGHUP and whether it worked.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any


def default_pidfile() -> str:
    if os.geteuid() == 0:
        return "/run/pyws.pid"
    return f"{os.environ.get('XDG_RUNTIME_DIR') or '/tmp'}/pyws-{os.getuid()}.pid"


def state_path(pidfile: str) -> Path:
    path = Path(pidfile)
    return path.with_suffix(".state") if path.suffix == ".pid" else Path(pidfile + ".state")


class StateFile:
    def __init__(self, pidfile: str) -> None:
        self.pidfile = Path(pidfile)
        self.path = state_path(pidfile)
        self._state: dict[str, Any] = {}

    def create(self, config_dir: str) -> None:
        self._state = {
            "pid": os.getpid(),
            "config_dir": config_dir,
            "started_at": time.time(),
            "reload": None,
        }
        self.pidfile.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(self.pidfile, f"{os.getpid()}\n")
        _atomic_write(self.path, json.dumps(self._state))

    def write_reload(self, result: dict[str, Any]) -> None:
        self._state["reload"] = result
        _atomic_write(self.path, json.dumps(self._state))

    def remove(self) -> None:
        # Another root may have taken the pidfile over; leave its files alone.
        if read_pid(self.pidfile) in (None, os.getpid()):
            self.path.unlink(missing_ok=True)
            self.pidfile.unlink(missing_ok=True)


def read_pid(pidfile: str | Path) -> int | None:
    try:
        return int(Path(pidfile).read_text().strip())
    except (OSError, ValueError):
        return None


def read_state(pidfile: str) -> dict[str, Any] | None:
    try:
        data = json.loads(state_path(pidfile).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
