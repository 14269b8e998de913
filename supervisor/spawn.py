"""Starting one worker: a freshly exec'd interpreter that inherits its listeners.

The worker reads a boot document from a memfd: its generation, the config
snapshot the root validated, and which inherited fd is which listener.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from dataclasses import dataclass

from pyws.supervisor.config.loader import ConfigSnapshot

# The root's own business that a worker must not inherit.
_PRIVATE_ENV = ("NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES")


@dataclass(frozen=True, slots=True)
class SpawnedWorker:
    pid: int
    pidfd: int  # readable once the worker has exited
    status_fd: int  # the worker writes "ready\n" here


def spawn_worker(
    *,
    generation: int,
    snapshot: ConfigSnapshot,
    listeners: dict[str, list[socket.socket]],
    log_level: str,
) -> SpawnedWorker:
    status_r, status_w = os.pipe()
    boot_fd = os.memfd_create("pyws-boot", 0)
    doc = {
        "generation": generation,
        "root_pid": os.getpid(),
        "log_level": log_level,
        "status_fd": status_w,
        "listeners": {key: [s.fileno() for s in socks] for key, socks in listeners.items()},
        "snapshot": json.loads(snapshot.to_json()),
    }
    os.write(boot_fd, json.dumps(doc).encode())
    os.lseek(boot_fd, 0, os.SEEK_SET)
    inherited = [status_w, boot_fd] + [s.fileno() for socks in listeners.values() for s in socks]
    env = {k: v for k, v in os.environ.items() if k not in _PRIVATE_ENV}
    argv = [sys.executable, "-P", "-m", "pyws.worker", "--boot-fd", str(boot_fd)]
    try:
        for fd in inherited:
            os.set_inheritable(fd, True)
        pid = os.posix_spawn(sys.executable, argv, env)
    except OSError:
        os.close(status_r)
        raise
    finally:
        for fd in inherited:
            os.set_inheritable(fd, False)
        os.close(status_w)
        os.close(boot_fd)
    os.set_blocking(status_r, False)
    return SpawnedWorker(pid, os.pidfd_open(pid), status_r)
