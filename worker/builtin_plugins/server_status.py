"""`lws-server-status`: JSON every `update-ms` about the live generations, as lws's plugin.

The document keeps lws's shape, `{"i": {..., "contexts": [...]}, "files": [...]}`, with one
context per live generation (lwsws has one per process), each with pyws's own fields:
generation, state, pids, connections, rss_bytes, age_s. Generations are read with psutil
from the root's children (process titles say `pyws: worker gen=N state`). A worker may not
read a sibling's sockets once privileges are dropped, so the workers of this generation
also tell each other their connection counts on the world channel of the vhost.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import time
from datetime import UTC, datetime
from importlib.metadata import version
from typing import Any

import psutil

from pyws.supervisor.config.model import VhostConfig
from pyws.worker.plugin_api import Plugin, PluginContext, WebSocket

_TITLE = re.compile(r"pyws: worker gen=(\d+) (starting|active|deprecated)")
_STATE_ORDER = {"starting": 0, "active": 1, "deprecated": 2}
MAX_FILE_BYTES = 4096  # of each `filespath`: lws reads 255


class ServerStatus(Plugin):
    """pvo: `update-ms` (default 5000), `hide-vhosts`, `filespath` (repeatable; lws's own
    code reads `filepath`, which is accepted too)."""

    name = "lws-server-status"

    def __init__(self, context: PluginContext) -> None:
        super().__init__(context)
        self.period = max(context.number("update-ms", 5000), 50) / 1000
        self.hide_vhosts = context.flag("hide-vhosts")
        self.files = context.protocol.options_all("filespath")
        self.files += context.protocol.options_all("filepath")
        self.version = f"pyws {version('pyws')}"  # read now: metadata may be unreadable later
        self.clients: set[WebSocket] = set()
        self.counts: dict[int, tuple[int, float]] = {}  # sibling pid: (connections, when)
        self._timer: asyncio.TimerHandle | None = None
        vhost = context.vhost
        self.channel = context.world.channel(f"{self.name}/{vhost.name}:{vhost.port}")
        self.channel.deliver = self._deliver

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def established(self, ws: WebSocket) -> None:
        self.clients.add(ws)
        self.channel.publish("ask", "")
        ws.send(self.render())
        if self._timer is None:
            self._timer = self.loop.call_later(self.period, self._tick)

    def closed(self, ws: WebSocket, code: int) -> None:
        self.clients.discard(ws)

    def _tick(self) -> None:
        self._timer = None
        if not self.clients:
            return
        self.channel.publish("ask", "")
        document = self.render()
        for ws in tuple(self.clients):
            ws.send(document)
        self._timer = self.loop.call_later(self.period, self._tick)

    def _deliver(self, key: str, message: str | bytes) -> None:
        if key == "ask":  # every worker answers with its own count, to every worker
            self.channel.publish("count", f"{os.getpid()} {self.context.worker.connections()}")
        elif key == "count" and isinstance(message, str):
            pid, _, count = message.partition(" ")
            self.counts[int(pid)] = (int(count), time.monotonic())

    # -- the document ---------------------------------------------------------------------------

    def render(self) -> str:
        info: dict[str, Any] = {"version": self.version, "hostname": socket.gethostname()}
        info["uptime"] = str(int(_host_uptime()))
        for n, load in enumerate(os.getloadavg(), 1):
            info[f"l{n}"] = f"{load:.2f}"
        info["statm"] = _read_text("/proc/self/statm", 256).strip()
        info["contexts"] = self.generations()
        files = [{"path": p, "val": v} for p in self.files if (v := _read_file(p)) is not None]
        return json.dumps({"i": info, "files": files}, separators=(",", ":"))

    def generations(self) -> list[dict[str, Any]]:
        worker = self.context.worker
        fresh = time.monotonic() - 3 * self.period
        known = {pid: n for pid, (n, when) in self.counts.items() if when >= fresh}
        known[os.getpid()] = worker.connections()
        contexts = []
        for number, (state, procs) in sorted(read_generations(worker.root_pid).items()):
            entry = _context(number, state, procs, known)
            if number == worker.generation and not self.hide_vhosts:
                entry["vhosts"] = [describe_vhost(self.context.vhost)]
            contexts.append(entry)
        return contexts


def read_generations(root_pid: int) -> dict[int, tuple[str, list[dict[str, Any]]]]:
    """Live generations from the root's children: {number: (state, [process facts])}."""
    found: dict[int, tuple[str, list[dict[str, Any]]]] = {}
    try:
        children = psutil.Process(root_pid).children()
    except psutil.Error:
        return found
    for child in children:
        try:
            with child.oneshot():
                match = _TITLE.search(" ".join(child.cmdline()))
                if match is None:
                    continue
                facts = {
                    "pid": child.pid,
                    "rss": child.memory_info().rss,
                    "created": child.create_time(),
                    "connections": _connections(child),
                }
        except psutil.Error:
            continue  # exited while we looked
        number, state = int(match.group(1)), match.group(2)
        old_state, procs = found.get(number, (state, []))
        # A generation is as far along as its least advanced worker.
        if _STATE_ORDER[old_state] < _STATE_ORDER[state]:
            state = old_state
        procs.append(facts)
        found[number] = (state, procs)
    return found


def _connections(proc: psutil.Process) -> int | None:
    """Established TCP connections, when this process may look (a sibling's: often not)."""
    try:
        return sum(c.status == psutil.CONN_ESTABLISHED for c in proc.net_connections("inet"))
    except psutil.AccessDenied:
        return None


def _context(
    number: int, state: str, procs: list[dict[str, Any]], known: dict[int, int]
) -> dict[str, Any]:
    counts = [known.get(p["pid"], p["connections"]) for p in procs]
    connections = None if all(c is None for c in counts) else sum(c or 0 for c in counts)
    started = min(p["created"] for p in procs)
    age = max(time.time() - started, 0.0)
    return {
        "generation": number,
        "state": state,
        "pids": sorted(p["pid"] for p in procs),
        "connections": connections,
        "rss_bytes": sum(p["rss"] for p in procs),
        "age_s": round(age, 1),
        "started_at": datetime.fromtimestamp(started, UTC).isoformat(),
        # lws's names for the same facts, as its server-status page reads them
        "context_uptime": str(int(age)),
        "deprecated": "1" if state == "deprecated" else "0",
        "wsi_alive": str(connections or 0),
    }


def describe_vhost(vhost: VhostConfig) -> dict[str, Any]:
    """A vhost as lws_json_dump_vhost() shows it (values as strings, like lws)."""
    mounts = []
    for m in vhost.mounts:
        mount = {
            "mountpoint": m.mountpoint,
            "origin": m.origin,
            "cache_max_age": str(m.cache_max_age),
            "cache_reuse": str(int(m.cache_reuse)),
            "cache_revalidate": str(int(m.cache_revalidate)),
            "cache_intermediaries": str(int(m.cache_intermediaries)),
        }
        if m.default:
            mount["default"] = m.default
        mounts.append(mount)
    return {
        "name": vhost.name,
        "port": str(vhost.port),
        "use_ssl": str(int(vhost.tls is not None)),
        "sts": str(int(vhost.sts)),
        "mounts": mounts,
        "ws-protocols": [{p.name: {"status": "ok"}} for p in vhost.ws_protocols],
    }


def _read_file(path: str) -> str | None:
    try:
        return _read_text(path, MAX_FILE_BYTES)
    except OSError:
        return None  # lws leaves out a file it cannot read


def _read_text(path: str, limit: int) -> str:
    with open(path, "rb") as f:
        return f.read(limit).decode("utf-8", "replace")


def _host_uptime() -> float:
    try:
        return float(_read_text("/proc/uptime", 64).split()[0])
    except (OSError, ValueError, IndexError):
        return 0.0
