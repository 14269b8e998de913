"""What `pyws-ctl status` shows, read from the live process tree with psutil.

A worker's process title carries its generation and state; its sockets carry its
listeners and client connections. Nothing is asked of the root itself.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import psutil

_WORKER_TITLE = re.compile(r"pyws: worker gen=(\d+) (starting|active|deprecated)")
_STATE_ORDER = {"starting": 0, "active": 1, "deprecated": 2}


@dataclass(frozen=True, slots=True)
class GenerationStatus:
    generation: int
    state: str
    pids: list[int]
    connections: int
    rss_bytes: int
    started_at: str
    listeners: list[str]


@dataclass(frozen=True, slots=True)
class RootStatus:
    pid: int
    uptime_s: float
    config_dir: str
    generations: list[GenerationStatus]

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "supervisor": {
                "pid": self.pid,
                "uptime_s": self.uptime_s,
                "config_dir": self.config_dir,
            },
            "generations": [asdict(g) for g in self.generations],
        }


def read_status(root_pid: int, config_dir: str) -> RootStatus:
    root = psutil.Process(root_pid)
    groups: dict[int, list[psutil.Process]] = {}
    states: dict[int, str] = {}
    for child in root.children():
        try:
            match = _WORKER_TITLE.search(" ".join(child.cmdline()))
        except psutil.Error:
            continue  # exited while we looked
        if match:
            number = int(match.group(1))
            groups.setdefault(number, []).append(child)
            # A generation is as far along as its least advanced worker.
            state = match.group(2)
            if number not in states or _STATE_ORDER[state] < _STATE_ORDER[states[number]]:
                states[number] = state
    generations = [_generation(n, states[n], procs) for n, procs in sorted(groups.items())]
    # A generation whose every worker exited while we looked is gone.
    generations = [g for g in generations if g.pids]
    return RootStatus(root_pid, time.time() - root.create_time(), config_dir, generations)


def _generation(number: int, state: str, procs: list[psutil.Process]) -> GenerationStatus:
    unix_listening = _unix_listening_inodes()
    connections = rss = 0
    listeners: set[str] = set()
    started = time.time()
    pids = []
    for proc in procs:
        try:
            with proc.oneshot():
                rss += proc.memory_info().rss
                started = min(started, proc.create_time())
                for conn in proc.net_connections(kind="inet"):
                    if conn.status == psutil.CONN_LISTEN:
                        listeners.add(_address(conn.laddr))
                    elif conn.status == psutil.CONN_ESTABLISHED:
                        connections += 1
                unix_listeners, unix_connections = _unix_sockets(proc, unix_listening)
                listeners |= unix_listeners
                connections += unix_connections
            pids.append(proc.pid)
        except psutil.Error:
            continue
    return GenerationStatus(
        generation=number,
        state=state,
        pids=sorted(pids),
        connections=connections,
        rss_bytes=rss,
        started_at=datetime.fromtimestamp(started, UTC).isoformat(),
        listeners=sorted(listeners),
    )


# /proc/net/unix flags a listening socket with __SO_ACCEPTCON; psutil does not expose it.
_SO_ACCEPTCON = 0x10000


def _unix_listening_inodes() -> set[str]:
    try:
        with open("/proc/net/unix") as f:
            rows = [line.split() for line in f.readlines()[1:]]
    except OSError:
        return set()
    return {row[6] for row in rows if len(row) >= 7 and int(row[3], 16) & _SO_ACCEPTCON}


def _unix_sockets(proc: psutil.Process, listening: set[str]) -> tuple[set[str], int]:
    """A worker's unix listeners and accepted unix connections (both carry the path)."""
    listeners: set[str] = set()
    connections = 0
    for conn in proc.net_connections(kind="unix"):
        if not conn.laddr or conn.laddr[0] in "\0@":
            continue  # unnamed, or abstract (a generation's shared-world socket)
        try:
            inode = os.readlink(f"/proc/{proc.pid}/fd/{conn.fd}")[len("socket:[") : -1]
        except OSError:
            continue
        if inode in listening:
            listeners.add(f"unix:{conn.laddr}")
        else:
            connections += 1
    return listeners, connections


def _address(addr: Any) -> str:
    host, port = addr[0], addr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def format_table(status: RootStatus) -> str:
    lines = [
        f"pyws root pid {status.pid}, up {status.uptime_s:.1f}s, config {status.config_dir}",
        f"{'GEN':>4}  {'STATE':<10}  {'PIDS':<16}  {'CONNS':>5}  {'RSS':>9}  {'AGE':>8}  LISTENERS",
    ]
    now = datetime.now(UTC)
    for g in status.generations:
        age = (now - datetime.fromisoformat(g.started_at)).total_seconds()
        lines.append(
            f"{g.generation:>4}  {g.state:<10}  {','.join(map(str, g.pids)):<16}  "
            f"{g.connections:>5}  {g.rss_bytes / 2**20:>5.1f} MiB  {age:>7.1f}s  "
            f"{' '.join(g.listeners) or '-'}"
        )
    return "\n".join(lines)
