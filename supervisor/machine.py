"""The root's decisions as a pure state machine: facts go in, commands come out.

The root's event loop (supervisor/root.py) turns signals, pidfds, ready pipes and
timers into facts, feeds them to `RootMachine.handle`, and carries out the commands
it gets back. Nothing here does I/O or reads a clock, so tests drive it directly.

Lifecycle of a generation: starting -> active -> deprecated -> gone. A starting
generation that fails (a worker exits, or it is not ready in time) is killed and
the active one keeps serving.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from pyws.supervisor.exitcodes import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK, EXIT_WORKER_BOOT
from pyws.supervisor.protocol import ACTIVATE, DRAIN, KILL, STOP, STOP_BOUND

RESPAWN_FIRST_DELAY = 0.1
RESPAWN_MAX_DELAY = 10.0
STOP_GRACE = 5.0  # added to the drain bound before the root SIGKILLs a worker

GenerationState = Literal["starting", "active", "deprecated", "failed"]
TimerKey = tuple[str, int, int]  # (kind, generation, slot)


# Facts ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReloadRequested:
    at: float  # wall-clock time of the SIGHUP, so pyws-ctl can tell which reload covers it


@dataclass(frozen=True, slots=True)
class StopRequested:
    pass


@dataclass(frozen=True, slots=True)
class GenerationSpawned:
    generation: int
    pids: tuple[int, ...]
    ready_timeout: float
    drain_timeout: float | None  # deprecated-timeout-secs; None = unbounded, as lwsws


@dataclass(frozen=True, slots=True)
class GenerationFailed:
    """The config was rejected, or listeners could not be bound, before any worker ran."""

    generation: int
    message: str
    config_error: bool


@dataclass(frozen=True, slots=True)
class WorkerRespawned:
    generation: int
    slot: int
    pid: int


@dataclass(frozen=True, slots=True)
class WorkerReady:
    pid: int


@dataclass(frozen=True, slots=True)
class WorkerExited:
    pid: int
    code: int  # exit status, or -signal


@dataclass(frozen=True, slots=True)
class TimerFired:
    key: TimerKey


Fact = (
    ReloadRequested
    | StopRequested
    | GenerationSpawned
    | GenerationFailed
    | WorkerRespawned
    | WorkerReady
    | WorkerExited
    | TimerFired
)


# Commands -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SpawnGeneration:
    generation: int


@dataclass(frozen=True, slots=True)
class SpawnWorker:
    generation: int
    slot: int


@dataclass(frozen=True, slots=True)
class SendSignal:
    pid: int
    signum: int


@dataclass(frozen=True, slots=True)
class StartTimer:
    key: TimerKey
    delay: float


@dataclass(frozen=True, slots=True)
class CancelTimer:
    key: TimerKey


@dataclass(frozen=True, slots=True)
class UseListenersOf:
    """Close every listener the given generation's config does not use."""

    generation: int


@dataclass(frozen=True, slots=True)
class ForgetGeneration:
    generation: int


@dataclass(frozen=True, slots=True)
class ReportReload:
    ok: bool
    generation: int
    message: str
    covers: float  # the latest SIGHUP time this attempt answers


@dataclass(frozen=True, slots=True)
class Notify:
    """An sd_notify(3) state line; the executor adds MONOTONIC_USEC to RELOADING=1."""

    state: str


@dataclass(frozen=True, slots=True)
class Exit:
    code: int


Command = (
    SpawnGeneration
    | SpawnWorker
    | SendSignal
    | StartTimer
    | CancelTimer
    | UseListenersOf
    | ForgetGeneration
    | ReportReload
    | Notify
    | Exit
)


@dataclass
class Generation:
    number: int
    state: GenerationState
    covers: float
    slots: dict[int, int] = field(default_factory=dict)  # pid -> slot
    ready: set[int] = field(default_factory=set)
    failures: dict[int, int] = field(default_factory=dict)  # slot -> consecutive crashes
    drain_timeout: float | None = None


class RootMachine:
    """Decides which generation starts, serves, drains and dies."""

    def __init__(self) -> None:
        self.generations: dict[int, Generation] = {}
        self.last_number = 0
        self.pending_hup: float | None = None
        self.stopping = False
        self.exit_code = EXIT_OK

    def start(self, at: float) -> list[Command]:
        return self._begin_generation(at)

    @property
    def active(self) -> Generation | None:
        return next((g for g in self.generations.values() if g.state == "active"), None)

    @property
    def starting(self) -> Generation | None:
        return next((g for g in self.generations.values() if g.state == "starting"), None)

    def handle(self, fact: Fact) -> list[Command]:
        match fact:
            case ReloadRequested(at):
                return self._on_reload(at)
            case StopRequested():
                return self._on_stop()
            case GenerationSpawned():
                return self._on_spawned(fact)
            case GenerationFailed(number, message, config_error):
                return self._fail(number, message, EXIT_CONFIG if config_error else EXIT_FAILURE)
            case WorkerRespawned(number, slot, pid):
                gen = self.generations[number]
                gen.slots[pid] = slot
                return []
            case WorkerReady(pid):
                return self._on_ready(pid)
            case WorkerExited(pid, code):
                return self._on_exit(pid, code)
            case TimerFired(key):
                return self._on_timer(key)
        raise AssertionError(fact)

    def _gen_of(self, pid: int) -> Generation | None:
        return next((g for g in self.generations.values() if pid in g.slots), None)

    def _begin_generation(self, covers: float) -> list[Command]:
        self.last_number += 1
        self.generations[self.last_number] = Generation(self.last_number, "starting", covers)
        return [SpawnGeneration(self.last_number)]

    def _on_reload(self, at: float) -> list[Command]:
        if self.stopping:
            return []
        if self.starting is not None:
            # HUPs during a reload merge into one follow-up reload.
            self.pending_hup = max(at, self.pending_hup or at)
            return []
        return [Notify("RELOADING=1"), *self._begin_generation(at)]

    def _on_spawned(self, fact: GenerationSpawned) -> list[Command]:
        gen = self.generations[fact.generation]
        gen.slots = {pid: slot for slot, pid in enumerate(fact.pids)}
        gen.drain_timeout = fact.drain_timeout
        return [StartTimer(("ready", gen.number, 0), fact.ready_timeout)]

    def _on_ready(self, pid: int) -> list[Command]:
        gen = self._gen_of(pid)
        if gen is None:
            return []
        gen.ready.add(pid)
        gen.failures[gen.slots[pid]] = 0
        if gen.state == "active":
            return [SendSignal(pid, ACTIVATE)]
        if gen.state != "starting" or gen.ready != set(gen.slots):
            return []
        return self._activate(gen)

    def _activate(self, gen: Generation) -> list[Command]:
        cmds: list[Command] = [CancelTimer(("ready", gen.number, 0))]
        for old in list(self.generations.values()):
            if old.state == "active":
                cmds += self._deprecate(old)
        gen.state = "active"
        cmds += [SendSignal(pid, ACTIVATE) for pid in gen.slots]
        cmds += [
            UseListenersOf(gen.number),
            Notify("READY=1"),
            ReportReload(True, gen.number, f"generation {gen.number} is active", gen.covers),
        ]
        return cmds + self._follow_up()

    def _deprecate(self, gen: Generation) -> list[Command]:
        gen.state = "deprecated"
        cmds: list[Command] = [SendSignal(pid, DRAIN) for pid in gen.slots]
        cmds += [CancelTimer(("respawn", gen.number, slot)) for slot in gen.slots.values()]
        if gen.drain_timeout is not None:
            # The worker closes what is left at the bound itself; this is the backstop.
            cmds.append(StartTimer(("drain", gen.number, 0), gen.drain_timeout + STOP_GRACE))
        if not gen.slots:
            cmds += self._forget(gen)
        return cmds

    def _follow_up(self) -> list[Command]:
        if self.pending_hup is None or self.stopping:
            return []
        at, self.pending_hup = self.pending_hup, None
        return self._on_reload(at)

    def _fail(self, number: int, message: str, code: int) -> list[Command]:
        gen = self.generations[number]
        gen.state = "failed"
        cmds: list[Command] = [CancelTimer(("ready", number, 0))]
        cmds += [SendSignal(pid, KILL) for pid in gen.slots]
        cmds.append(ReportReload(False, number, message, gen.covers))
        if not gen.slots:
            cmds += self._forget(gen)
        if self.active is None and not self.stopping:
            # Nothing to fall back to: this was the first generation.
            self.stopping = True
            self.exit_code = code
            return cmds + self._maybe_exit()
        return [*cmds, Notify("READY=1"), *self._follow_up()]

    def _on_exit(self, pid: int, code: int) -> list[Command]:
        gen = self._gen_of(pid)
        if gen is None:
            return []
        slot = gen.slots.pop(pid)
        gen.ready.discard(pid)
        cmds: list[Command] = []
        if gen.state == "starting":
            msg = f"generation {gen.number}: worker {pid} exited ({code}) before it was ready"
            cmds += self._fail(
                gen.number, msg, EXIT_CONFIG if code == EXIT_CONFIG else EXIT_FAILURE
            )
        elif gen.state == "active" and not self.stopping:
            cmds += self._replace(gen, slot, code)
        elif not gen.slots:
            cmds += self._forget(gen)
        return cmds + self._maybe_exit()

    def _replace(self, gen: Generation, slot: int, code: int) -> list[Command]:
        if code == EXIT_WORKER_BOOT:
            # A worker that cannot boot would fail the same way again: no respawn loop.
            if not gen.slots:
                self.stopping = True
                self.exit_code = EXIT_FAILURE
                return [Notify("STOPPING=1")]
            return []
        failures = gen.failures.get(slot, 0)
        gen.failures[slot] = failures + 1
        delay = min(RESPAWN_FIRST_DELAY * (2**failures), RESPAWN_MAX_DELAY)
        return [StartTimer(("respawn", gen.number, slot), delay)]

    def _forget(self, gen: Generation) -> list[Command]:
        del self.generations[gen.number]
        return [CancelTimer(("drain", gen.number, 0)), ForgetGeneration(gen.number)]

    def _on_stop(self) -> list[Command]:
        if self.stopping:
            return []
        self.stopping = True
        cmds: list[Command] = [Notify("STOPPING=1")]
        bound = STOP_BOUND
        for gen in self.generations.values():
            cmds += [CancelTimer(("respawn", gen.number, s)) for s in gen.slots.values()]
            cmds += [SendSignal(pid, STOP) for pid in gen.slots]
            if gen.drain_timeout is not None:
                bound = max(bound, gen.drain_timeout)
        cmds.append(StartTimer(("stop", 0, 0), bound + STOP_GRACE))
        return cmds + self._maybe_exit()

    def _maybe_exit(self) -> list[Command]:
        if self.stopping and not any(g.slots for g in self.generations.values()):
            return [Exit(self.exit_code)]
        return []

    def _on_timer(self, key: TimerKey) -> list[Command]:
        kind, number, slot = key
        gen = self.generations.get(number)
        if kind == "stop":
            return [SendSignal(pid, KILL) for g in self.generations.values() for pid in g.slots]
        if gen is None:
            return []
        if kind == "ready" and gen.state == "starting":
            return self._fail(number, f"generation {number} was not ready in time", EXIT_FAILURE)
        if kind == "drain":
            return [SendSignal(pid, KILL) for pid in gen.slots]
        if kind == "respawn" and gen.state == "active" and not self.stopping:
            return [SpawnWorker(number, slot)]
        return []
