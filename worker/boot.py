"""A worker's life: boot as root, drop privileges, serve, drain, exit.

Boot order (the root relies on it):
  1. start as root; 2. adopt the listeners and read the config snapshot the root
  validated; 3. open logs, load plugins; 4. drop privileges; 5. report ready.
Signals from the root: SIGTERM drains (reload), SIGINT stops (close idle
connections now), SIGUSR2 marks the generation active, SIGUSR1 reopens logs.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import faulthandler
import gc
import json
import logging
import os
import signal
import socket
from dataclasses import dataclass
from typing import Any

import setproctitle
import uvloop

from pyws.supervisor.config.loader import ConfigSnapshot, default_data_dir, load_config
from pyws.supervisor.config.model import Config
from pyws.supervisor.exitcodes import EXIT_CONFIG, EXIT_OK, EXIT_WORKER_BOOT
from pyws.supervisor.logs import parse_level, setup_logging
from pyws.supervisor.protocol import ACTIVATE, DRAIN, REOPEN_LOGS, STOP, STOP_BOUND
from pyws.worker.accesslog import open_access_logs
from pyws.worker.plugin_api import WorkerInfo
from pyws.worker.plugins import PluginError, PluginSet
from pyws.worker.preload import preload_lazy_modules
from pyws.worker.privileges import PrivilegeError, drop_privileges
from pyws.worker.server import Listener, Server
from pyws.worker.world import World

log = logging.getLogger("pyws.worker")


@dataclass(frozen=True, slots=True)
class BootDocument:
    generation: int
    root_pid: int
    log_level: str
    status_fd: int
    listeners: dict[str, list[int]]
    snapshot: ConfigSnapshot


def read_boot_document(fd: int) -> BootDocument:
    with os.fdopen(fd, "rb") as f:
        doc: dict[str, Any] = json.loads(f.read())
    return BootDocument(
        generation=int(doc["generation"]),
        root_pid=int(doc["root_pid"]),
        log_level=str(doc["log_level"]),
        status_fd=int(doc["status_fd"]),
        listeners={str(k): [int(fd) for fd in v] for k, v in doc["listeners"].items()},
        snapshot=ConfigSnapshot.from_json(json.dumps(doc["snapshot"])),
    )


def close_on_exec_everything() -> None:
    """Mark every inherited fd above 2 close-on-exec: CGI scripts must see fds 0-2 only,
    and uvloop's subprocess_exec does not close the rest."""
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2:
            with contextlib.suppress(OSError):
                os.set_inheritable(fd, False)


def adopt_listeners(config: Config, fds: dict[str, list[int]]) -> list[Listener]:
    """One Listener per inherited socket (an address may give this worker several)."""
    listeners = []
    for key, numbers in fds.items():
        vhosts = tuple(v for v in config.vhosts if v.listen_key == key)
        for fd in numbers:
            listeners.append(Listener(sock=socket.socket(fileno=fd), key=key, vhosts=vhosts))
    return listeners


def main(argv: list[str]) -> int:
    # Until the event loop owns them, a stop or drain signal simply ends a booting
    # worker (no KeyboardInterrupt traceback); the root sees it as a failed boot.
    signal.signal(STOP, signal.SIG_DFL)
    signal.signal(DRAIN, signal.SIG_DFL)
    parser = argparse.ArgumentParser(prog="pyws.worker")
    parser.add_argument("--boot-fd", type=int, required=True)
    boot = read_boot_document(parser.parse_args(argv).boot_fd)
    close_on_exec_everything()
    os.chdir("/")  # a CGI script's cwd is entered in its child (worker/cgi/spawn.py)
    faulthandler.enable()  # a fatal signal leaves a traceback in the log
    setup_logging(parse_level(boot.log_level), f"pyws-worker gen={boot.generation}")
    setproctitle.setproctitle(f"pyws: worker gen={boot.generation} starting")
    config, diagnostics = load_config(boot.snapshot, default_data_dir())
    if config is None:
        for diag in diagnostics:
            log.error("%s", diag)
        return EXIT_CONFIG
    listeners = adopt_listeners(config, boot.listeners)
    try:
        # Built while still root: plugins are imported, and origins read what the worker
        # may not read later (basic-auth credential files, log files opened for append).
        life = WorkerLife(config, listeners, boot)
        preload_lazy_modules()
        drop_privileges(config.global_.username, config.global_.groupname, boot.root_pid)
    except (PluginError, PrivilegeError, OSError) as exc:
        log.error("cannot boot: %s", exc)
        return EXIT_WORKER_BOOT
    except Exception:  # the boot boundary: any failure here is a boot failure, not a crash
        log.exception("cannot boot")
        return EXIT_WORKER_BOOT
    return uvloop.run(life.run())


class WorkerLife:
    """Serves until drained; owns the signal handlers and the process title."""

    def __init__(self, config: Config, listeners: list[Listener], boot: BootDocument) -> None:
        self.config = config
        self.boot = boot
        # Opened as root: the worker user may not create files in the log directory.
        self.access_logs = open_access_logs(config)
        if self.access_logs is not None:
            # Lines wait a moment to share a write(): the last ones go out as the process exits.
            atexit.register(self.access_logs.close)
        self.info = WorkerInfo(boot.generation, boot.root_pid)
        self.world = World(boot.root_pid, boot.generation)
        self.plugins = PluginSet(config, self.world, self.info)
        self.server = Server(
            config,
            listeners,
            generation=boot.generation,
            access_logs=self.access_logs,
            plugins=self.plugins,
        )
        self.draining = False
        self.stopping = False

    async def run(self) -> int:
        await self.server.start()
        loop = asyncio.get_running_loop()
        # The shared world of this generation: its workers link up before the first client.
        await self.world.start()
        self.plugins.start(loop)
        self.info.connections = lambda: self.server.connections
        loop.add_signal_handler(DRAIN, self.drain, False)
        loop.add_signal_handler(STOP, self.drain, True)
        loop.add_signal_handler(ACTIVATE, self._title, "active")
        loop.add_signal_handler(REOPEN_LOGS, self._reopen_logs)
        # Everything booted so far lives as long as the worker: keep the cycle collector
        # from walking it again and again under connection churn.
        gc.freeze()
        os.write(self.boot.status_fd, b"ready\n")
        os.close(self.boot.status_fd)
        await self.server.wait_closed()
        self.plugins.stop()
        self.world.close()
        return EXIT_OK

    def drain(self, stopping: bool) -> None:
        """A reload drains; a stop also closes idle connections. A stop may follow a drain."""
        if self.draining and (self.stopping or not stopping):
            return
        first = not self.draining
        self.draining = True
        self.stopping = stopping
        self._title("deprecated")
        self.server.drain(close_idle=stopping)
        bound = self.config.global_.deprecated_timeout_secs
        if stopping and bound is None:
            bound = STOP_BOUND
        if bound is not None and (first or stopping):
            asyncio.get_running_loop().call_later(bound, self._give_up)

    def _give_up(self) -> None:
        log.warning("drain bound reached: closing %d connections", self.server.connections)
        self.server.abort()

    def _title(self, state: str) -> None:
        setproctitle.setproctitle(f"pyws: worker gen={self.boot.generation} {state}")

    def _reopen_logs(self) -> None:
        log.info("SIGUSR1: reopening logs")
        if self.access_logs is not None:
            self.access_logs.reopen()
