"""The root's event loop: turns signals, pidfds, ready pipes and timers into facts.

Single-threaded, no asyncio. One `selectors` loop; signal handlers do nothing but
wake it through the wakeup fd. Every decision is `RootMachine`'s; this module only
carries out its commands.
"""

from __future__ import annotations

import errno
import logging
import os
import selectors
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pyws.supervisor.machine as m
from pyws.supervisor.config.loader import ConfigSnapshot, load_config, read_snapshot
from pyws.supervisor.config.model import Config
from pyws.supervisor.listeners import ListenerError, ListenerSet
from pyws.supervisor.protocol import KILL
from pyws.supervisor.sdnotify import Notifier
from pyws.supervisor.spawn import SpawnedWorker, spawn_worker
from pyws.supervisor.statefile import StateFile

log = logging.getLogger("pyws.root")

_SIGNALS = (signal.SIGHUP, signal.SIGTERM, signal.SIGINT)


@dataclass
class _GenerationRuntime:
    snapshot: ConfigSnapshot
    config: Config
    keys: set[str] = field(default_factory=set)


class Root:
    """Runs until the machine says Exit; returns the exit code."""

    def __init__(self, config_dir: str, data_dir: str, log_level: str, state: StateFile) -> None:
        self.config_dir = config_dir
        self.data_dir = data_dir
        self.log_level = log_level
        self.state = state
        self.machine = m.RootMachine()
        self.listeners = ListenerSet()
        self.selector = selectors.DefaultSelector()
        self.notifier = Notifier()
        self.runtimes: dict[int, _GenerationRuntime] = {}
        self.workers: dict[int, SpawnedWorker] = {}
        self.timers: dict[m.TimerKey, float] = {}
        self.exit_code: int | None = None

    def run(self) -> int:
        wake_r, wake_w = socket.socketpair()
        wake_r.setblocking(False)
        wake_w.setblocking(False)
        for signum in _SIGNALS:
            signal.signal(signum, _wake_only)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        signal.set_wakeup_fd(wake_w.fileno(), warn_on_full_buffer=False)
        self.selector.register(wake_r, selectors.EVENT_READ, self._on_signals)
        try:
            self._execute(self.machine.start(time.time()))
            while self.exit_code is None:
                self._loop_once()
        finally:
            signal.set_wakeup_fd(-1)
            self.listeners.close()
            wake_r.close()
            wake_w.close()
        return self.exit_code

    def _loop_once(self) -> None:
        timeout = None
        if self.timers:
            timeout = max(0.0, min(self.timers.values()) - time.monotonic())
        for key, _ in self.selector.select(timeout):
            # An earlier callback in this batch may have closed this fd (a worker's
            # pidfd fired first and took its status pipe with it).
            if self.selector.get_map().get(key.fd) is not key:
                continue
            callback: Callable[[int], None] = key.data
            callback(key.fd)
        now = time.monotonic()
        for tkey in [k for k, deadline in self.timers.items() if deadline <= now]:
            del self.timers[tkey]
            self._feed(m.TimerFired(tkey))

    def _feed(self, fact: m.Fact) -> None:
        log.debug("fact %s", fact)
        self._execute(self.machine.handle(fact))

    # Event sources ---------------------------------------------------------

    def _on_signals(self, fd: int) -> None:
        try:
            data = os.read(fd, 512)
        except BlockingIOError:
            return
        for signum in data:
            if signum == signal.SIGHUP:
                log.info("SIGHUP: reloading %s", self.config_dir)
                self._feed(m.ReloadRequested(time.time()))
            else:
                log.info("%s: stopping", signal.Signals(signum).name)
                self._feed(m.StopRequested())

    def _on_status(self, fd: int) -> None:
        pid = next(p for p, w in self.workers.items() if w.status_fd == fd)
        try:
            data = os.read(fd, 512)
        except BlockingIOError:
            return
        if not data:
            self.selector.unregister(fd)
            return
        if b"ready" in data:
            self._feed(m.WorkerReady(pid))

    def _on_pidfd(self, fd: int) -> None:
        pid = next(p for p, w in self.workers.items() if w.pidfd == fd)
        try:
            _, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            status = 0
        code = os.waitstatus_to_exitcode(status)
        worker = self.workers.pop(pid)
        for wfd in (worker.pidfd, worker.status_fd):
            if wfd in self.selector.get_map():
                self.selector.unregister(wfd)
            os.close(wfd)
        level = logging.INFO if code == 0 else logging.WARNING
        log.log(level, "worker %d exited (%s)", pid, _describe(code))
        self._feed(m.WorkerExited(pid, code))

    # Commands --------------------------------------------------------------

    def _execute(self, commands: list[m.Command]) -> None:
        for cmd in commands:
            log.debug("command %s", cmd)
            match cmd:
                case m.SpawnGeneration(number):
                    self._spawn_generation(number)
                case m.SpawnWorker(number, slot):
                    self._respawn(number, slot)
                case m.SendSignal(pid, signum):
                    self._signal(pid, signum)
                case m.StartTimer(key, delay):
                    self.timers[key] = time.monotonic() + delay
                case m.CancelTimer(key):
                    self.timers.pop(key, None)
                case m.UseListenersOf(number):
                    self.listeners.keep_only(self.runtimes[number].keys)
                case m.ForgetGeneration(number):
                    self.runtimes.pop(number, None)
                case m.ReportReload():
                    self._report(cmd)
                case m.Notify(state):
                    self.notifier.notify(state)
                case m.Exit(code):
                    self.exit_code = code

    def _spawn_generation(self, number: int) -> None:
        try:
            snapshot = read_snapshot(self.config_dir)
            config, diagnostics = load_config(snapshot, self.data_dir)
        except Exception as exc:  # unreadable files: the reload fails, the old serves on
            self._feed(m.GenerationFailed(number, str(exc), config_error=True))
            return
        for diag in diagnostics:
            log.warning("%s", diag)
        if config is None:
            errors = "\n".join(str(d) for d in diagnostics if d.severity == "error")
            self._feed(m.GenerationFailed(number, errors, config_error=True))
            return
        try:
            self.listeners.ensure(config.vhosts, config.global_.count_threads)
        except ListenerError as exc:
            self._feed(m.GenerationFailed(number, str(exc), config_error=False))
            return
        runtime = _GenerationRuntime(snapshot, config, {v.listen_key for v in config.vhosts})
        self.runtimes[number] = runtime
        pids: list[int] = []
        try:
            for slot in range(config.global_.count_threads):
                pids.append(self._start_worker(number, runtime, slot))
        except OSError as exc:
            for pid in pids:
                self._signal(pid, KILL)
            self._feed(m.GenerationFailed(number, f"cannot start a worker: {exc}", False))
            return
        log.info("generation %d: started workers %s", number, pids)
        self._feed(
            m.GenerationSpawned(
                number,
                tuple(pids),
                config.global_.ready_timeout_secs,
                config.global_.deprecated_timeout_secs,
            )
        )

    def _start_worker(self, number: int, runtime: _GenerationRuntime, slot: int) -> int:
        count = runtime.config.global_.count_threads
        worker = spawn_worker(
            generation=number,
            snapshot=runtime.snapshot,
            listeners=self.listeners.for_slot(runtime.keys, slot, count),
            log_level=self.log_level,
        )
        self.workers[worker.pid] = worker
        self.selector.register(worker.pidfd, selectors.EVENT_READ, self._on_pidfd)
        self.selector.register(worker.status_fd, selectors.EVENT_READ, self._on_status)
        return worker.pid

    def _respawn(self, number: int, slot: int) -> None:
        runtime = self.runtimes.get(number)
        if runtime is None:
            return
        try:
            pid = self._start_worker(number, runtime, slot)
        except OSError as exc:
            log.error("generation %d: cannot respawn worker %d: %s", number, slot, exc)
            return
        log.info("generation %d: worker %d replaced by %d", number, slot, pid)
        self._feed(m.WorkerRespawned(number, slot, pid))

    def _signal(self, pid: int, signum: int) -> None:
        # Only unreaped children are signalled, so the pid cannot have been reused.
        worker = self.workers.get(pid)
        if worker is None:
            return
        try:
            signal.pidfd_send_signal(worker.pidfd, signum)
        except OSError as exc:
            if exc.errno != errno.ESRCH:
                raise

    def _report(self, cmd: m.ReportReload) -> None:
        if cmd.ok:
            log.info("%s", cmd.message)
        else:
            log.error("reload failed, generation %d not started:\n%s", cmd.generation, cmd.message)
        self.state.write_reload(
            {
                "ok": cmd.ok,
                "generation": cmd.generation,
                "message": cmd.message,
                "covers": cmd.covers,
                "at": time.time(),
            }
        )


def _wake_only(signum: int, frame: object) -> None:
    """Signal handlers do no work: the wakeup fd carries the signal to the loop."""


def _describe(code: int) -> str:
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exit code {code}"
