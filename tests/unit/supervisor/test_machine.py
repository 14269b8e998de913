"""The root's state machine, driven with facts: no processes, no clocks."""

from __future__ import annotations

import pyws.supervisor.machine as m
from pyws.supervisor.exitcodes import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK, EXIT_WORKER_BOOT
from pyws.supervisor.protocol import ACTIVATE, DRAIN, KILL, STOP, STOP_BOUND


def spawned(root: m.RootMachine, number: int, pids: tuple[int, ...]) -> list[m.Command]:
    return root.handle(m.GenerationSpawned(number, pids, 30.0, None))


def running(pids: tuple[int, ...] = (101, 102)) -> m.RootMachine:
    """A root whose generation 1 is active with the given workers."""
    root = m.RootMachine()
    assert root.start(0.0) == [m.SpawnGeneration(1)]
    spawned(root, 1, pids)
    for pid in pids:
        root.handle(m.WorkerReady(pid))
    assert root.active is not None and root.active.number == 1
    return root


def signals(cmds: list[m.Command]) -> set[tuple[int, int]]:
    return {(c.pid, c.signum) for c in cmds if isinstance(c, m.SendSignal)}


def test_first_generation_becomes_active_when_all_workers_ready() -> None:
    root = m.RootMachine()
    root.start(0.0)
    cmds = spawned(root, 1, (101, 102))
    assert cmds == [m.StartTimer(("ready", 1, 0), 30.0)]
    assert root.handle(m.WorkerReady(101)) == []
    cmds = root.handle(m.WorkerReady(102))
    assert m.CancelTimer(("ready", 1, 0)) in cmds
    assert m.Notify("READY=1") in cmds
    assert signals(cmds) == {(101, ACTIVATE), (102, ACTIVATE)}
    assert any(isinstance(c, m.ReportReload) and c.ok for c in cmds)


def test_reload_drains_old_generation_only_once_new_one_is_ready() -> None:
    root = running()
    cmds = root.handle(m.ReloadRequested(5.0))
    assert cmds == [m.Notify("RELOADING=1"), m.SpawnGeneration(2)]
    spawned(root, 2, (201, 202))
    assert signals(root.handle(m.WorkerReady(201))) == set()
    cmds = root.handle(m.WorkerReady(202))
    assert signals(cmds) == {
        (101, DRAIN),
        (102, DRAIN),
        (201, ACTIVATE),
        (202, ACTIVATE),
    }
    assert m.UseListenersOf(2) in cmds
    report = next(c for c in cmds if isinstance(c, m.ReportReload))
    assert report.ok and report.generation == 2 and report.covers == 5.0
    assert root.generations[1].state == "deprecated"
    root.handle(m.WorkerExited(101, 0))
    cmds = root.handle(m.WorkerExited(102, 0))
    assert m.ForgetGeneration(1) in cmds
    assert set(root.generations) == {2}


def test_hups_during_a_reload_merge_into_one_follow_up() -> None:
    root = running((101,))
    root.handle(m.ReloadRequested(1.0))
    for t in range(2, 50):
        assert root.handle(m.ReloadRequested(float(t))) == []
    spawned(root, 2, (201,))
    cmds = root.handle(m.WorkerReady(201))
    assert cmds[-1] == m.SpawnGeneration(3)
    assert root.generations[3].covers == 49.0
    spawned(root, 3, (301,))
    cmds = root.handle(m.WorkerReady(301))
    assert not any(isinstance(c, m.SpawnGeneration) for c in cmds)


def test_bad_config_on_reload_keeps_the_old_generation() -> None:
    root = running((101,))
    root.handle(m.ReloadRequested(1.0))
    cmds = root.handle(m.GenerationFailed(2, "conf:1:1: x: bad", config_error=True))
    report = next(c for c in cmds if isinstance(c, m.ReportReload))
    assert not report.ok and "bad" in report.message
    assert m.Notify("READY=1") in cmds
    assert not any(isinstance(c, m.Exit) for c in cmds)
    assert root.active is not None and root.active.number == 1
    assert 2 not in root.generations


def test_new_generation_not_ready_in_time_is_killed() -> None:
    root = running((101,))
    root.handle(m.ReloadRequested(1.0))
    spawned(root, 2, (201,))
    cmds = root.handle(m.TimerFired(("ready", 2, 0)))
    assert signals(cmds) == {(201, KILL)}
    assert root.handle(m.WorkerExited(201, -9)) == [
        m.CancelTimer(("drain", 2, 0)),
        m.ForgetGeneration(2),
    ]
    assert root.active is not None and root.active.number == 1


def test_worker_dying_before_ready_fails_the_reload_not_the_root() -> None:
    root = running((101,))
    root.handle(m.ReloadRequested(1.0))
    spawned(root, 2, (201, 202))
    cmds = root.handle(m.WorkerExited(201, EXIT_WORKER_BOOT))
    assert (202, KILL) in signals(cmds)
    assert not any(isinstance(c, m.Exit) for c in cmds)


def test_first_generation_failing_exits_with_config_code() -> None:
    root = m.RootMachine()
    root.start(0.0)
    cmds = root.handle(m.GenerationFailed(1, "bad", config_error=True))
    assert cmds[-1] == m.Exit(EXIT_CONFIG)


def test_crashed_worker_is_respawned_with_backoff() -> None:
    root = running((101, 102))
    cmds = root.handle(m.WorkerExited(101, -9))
    assert cmds == [m.StartTimer(("respawn", 1, 0), m.RESPAWN_FIRST_DELAY)]
    assert root.handle(m.TimerFired(("respawn", 1, 0))) == [m.SpawnWorker(1, 0)]
    root.handle(m.WorkerRespawned(1, 0, 103))
    cmds = root.handle(m.WorkerExited(103, -11))
    assert cmds == [m.StartTimer(("respawn", 1, 0), m.RESPAWN_FIRST_DELAY * 2)]
    root.handle(m.WorkerRespawned(1, 0, 104))
    assert root.handle(m.WorkerReady(104)) == [m.SendSignal(104, ACTIVATE)]
    # Ready resets the backoff.
    assert root.handle(m.WorkerExited(104, -9)) == [
        m.StartTimer(("respawn", 1, 0), m.RESPAWN_FIRST_DELAY)
    ]


def test_worker_that_cannot_boot_is_not_respawned() -> None:
    root = running((101, 102))
    assert root.handle(m.WorkerExited(101, EXIT_WORKER_BOOT)) == []
    cmds = root.handle(m.WorkerExited(102, EXIT_WORKER_BOOT))
    assert cmds[-1] == m.Exit(EXIT_FAILURE)


def test_stop_drains_everything_then_exits_zero() -> None:
    root = running((101,))
    root.handle(m.ReloadRequested(1.0))
    spawned(root, 2, (201,))
    root.handle(m.WorkerReady(201))
    cmds = root.handle(m.StopRequested())
    assert m.Notify("STOPPING=1") in cmds
    assert signals(cmds) == {(101, STOP), (201, STOP)}
    assert m.StartTimer(("stop", 0, 0), STOP_BOUND + m.STOP_GRACE) in cmds
    assert root.handle(m.ReloadRequested(2.0)) == []
    assert m.ForgetGeneration(1) in root.handle(m.WorkerExited(101, 0))
    assert root.handle(m.WorkerExited(201, 0))[-1] == m.Exit(EXIT_OK)


def test_stop_timer_kills_what_is_left() -> None:
    root = running((101,))
    root.handle(m.StopRequested())
    assert signals(root.handle(m.TimerFired(("stop", 0, 0)))) == {(101, KILL)}
    assert m.Exit(EXIT_OK) in root.handle(m.WorkerExited(101, -9))


def test_drain_timeout_backstop() -> None:
    root = m.RootMachine()
    root.start(0.0)
    root.handle(m.GenerationSpawned(1, (101,), 30.0, 2.0))
    root.handle(m.WorkerReady(101))
    root.handle(m.ReloadRequested(1.0))
    spawned(root, 2, (201,))
    cmds = root.handle(m.WorkerReady(201))
    assert m.StartTimer(("drain", 1, 0), 2.0 + m.STOP_GRACE) in cmds
    assert signals(root.handle(m.TimerFired(("drain", 1, 0)))) == {(101, KILL)}
