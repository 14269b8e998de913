"""Starting pyws and its peers (nginx) for benchmarks, on 127.0.0.1 only.

Every process started here is started in its own process group and stopped by
pid/process group, never by name.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent


def free_listener_port() -> socket.socket:
    """Reserve a port: bound with SO_REUSEPORT, never listening (the server binds it too)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing answers on 127.0.0.1:{port}")


class Workspace:
    """A world-readable temp dir with a document root (workers run as nobody)."""

    def __init__(self) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="pyws-bench-"))
        self.base.chmod(0o755)
        self.docroot = self.base / "www"
        self.docroot.mkdir()
        (self.docroot / "index.html").write_bytes(b"x" * 1024)

    def cleanup(self) -> None:
        shutil.rmtree(self.base, ignore_errors=True)


class Server:
    name = "server"

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None

    def _spawn(self, argv: list[str], log: Path) -> None:
        with open(log, "ab") as f:
            self.proc = subprocess.Popen(argv, stdout=f, stderr=f, start_new_session=True)

    def reload(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGHUP)

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(20)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)


class PywsServer(Server):
    name = "pyws"

    def __init__(self, ws: Workspace, port: int, workers: int = 1) -> None:
        super().__init__()
        self.ws = ws
        self.port = port
        self.conf = ws.base / "pyws-etc"
        self.conf.mkdir(exist_ok=True)
        self.pidfile = ws.base / "pyws.pid"
        conf: dict[str, Any] = {
            "global": {"count-threads": str(workers)},
            "vhosts": [
                {
                    "name": "localhost",
                    "port": str(port),
                    "interface": "127.0.0.1",
                    "mounts": [{"mountpoint": "/", "origin": f"file://{ws.docroot}"}],
                }
            ],
        }
        (self.conf / "conf").write_text(json.dumps(conf))

    def start(self) -> None:
        argv = [str(BIN / "pyws"), "-c", str(self.conf), "--pidfile", str(self.pidfile)]
        self._spawn([*argv, "-d", "warning"], self.ws.base / "pyws.log")
        wait_port(self.port)

    def last_reload(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.pidfile.with_suffix(".state").read_text())
        except (OSError, ValueError):
            return None
        result = data.get("reload")
        return result if isinstance(result, dict) else None


class NginxServer(Server):
    name = "nginx"

    def __init__(self, ws: Workspace, port: int, workers: int = 1) -> None:
        super().__init__()
        self.ws = ws
        self.port = port
        self.conf = ws.base / "nginx.conf"
        self.conf.write_text(
            f"""
worker_processes {workers};
daemon off;
pid {ws.base}/nginx.pid;
error_log {ws.base}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 60s;
    keepalive_requests 1000000;
    types {{ text/html html; application/octet-stream bin; text/plain txt; }}
    server {{
        listen 127.0.0.1:{port} reuseport backlog=4096;
        root {ws.docroot};
        location / {{ }}
    }}
}}
"""
        )

    def start(self) -> None:
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        self._spawn(
            [nginx, "-c", str(self.conf), "-p", str(self.ws.base)], self.ws.base / "nginx.log"
        )
        wait_port(self.port)
