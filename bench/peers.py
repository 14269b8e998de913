"""Starting pyws and its peers (nginx, uvicorn) for benchmarks, on 127.0.0.1 only.

Every process started here is started in its own process group and stopped by
pid/process group, never by name.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from bench.asgi_app import DOCROOT_ENV

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parent.parent
SMALL_FILE = "index.html"  # 1 KB
BIG_FILE = "big.txt"  # 1 MiB: .txt is in both pyws's (lwsws's) and nginx's type tables


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
        (self.docroot / SMALL_FILE).write_bytes(b"x" * 1024)
        (self.docroot / BIG_FILE).write_bytes(b"0123456789abcdef" * 65536)

    def cleanup(self) -> None:
        shutil.rmtree(self.base, ignore_errors=True)


class Session:
    """One benchmark run: says what the machine is doing, owns the workspace, and ends with
    the time taken and, when a run went wrong, why its numbers do not count."""

    def __init__(self) -> None:
        load = os.getloadavg()[0]
        print(f"load average {load:.2f} on {os.cpu_count()} CPUs (nothing is pinned)")
        self.ws = Workspace()
        self.started = time.monotonic()

    def end(self, problems: list[str]) -> int:
        """The exit status: 1 when a run had errors."""
        took = time.monotonic() - self.started
        print(f"\ntook {took:.0f} s; load average now {os.getloadavg()[0]:.2f}")
        if not problems:
            return 0
        print("\nERRORS: the numbers of a run with errors do not count:")
        for problem in problems:
            print(f"  {problem}")
        return 1


class Server:
    name = "server"

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.argv: list[str] = []  # the command line, to print with the results
        self.log: Path | None = None

    def _spawn(self, argv: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.argv, self.log = argv, log
        with open(log, "ab") as f:
            self.proc = subprocess.Popen(argv, stdout=f, stderr=f, start_new_session=True, env=env)

    def log_tail(self, lines: int = 20) -> str:
        if self.log is None:
            return ""
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def cpu_seconds(self) -> float:
        """User plus system CPU time so far of the server's live processes: its root (or
        master) and every descendant (cpu_parts() adds the children they reaped, CGI's
        scripts). On a shared machine, CPU per request is steadier than requests per second:
        it does not count the time others held the CPU."""
        return self.cpu_parts()[0]

    def cpu_parts(self) -> tuple[float, float]:
        """(the live processes' own CPU seconds, those of the children they reaped)."""
        assert self.proc is not None
        own = children = 0.0
        with contextlib.suppress(psutil.NoSuchProcess):
            root = psutil.Process(self.proc.pid)
            for proc in (root, *root.children(recursive=True)):
                with contextlib.suppress(psutil.NoSuchProcess):
                    times = proc.cpu_times()
                    own += times.user + times.system
                    children += times.children_user + times.children_system
        return own, children

    def start(self) -> None:
        raise NotImplementedError

    def start_in(self, stack: contextlib.ExitStack) -> None:
        """Start, stopped when `stack` closes; print the command line, or the log's end if
        the server did not come up (RuntimeError)."""
        stack.callback(self.stop)
        try:
            self.start()
        except RuntimeError:
            print(f"{self.name} did not start; the end of its log:\n{self.log_tail()}")
            raise
        print(f"$ {shlex.join(self.argv)}    # {self.name}, 127.0.0.1:{self.port}")

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


class UvicornServer(Server):
    """uvicorn with httptools and uvloop, serving bench.asgi_app (the docroot from memory).

    uvicorn has no SO_REUSEPORT, so it cannot share a reserved port: it binds port 0 itself
    and we read the port back from its start-up line.
    """

    name = "uvicorn"
    _RUNNING = re.compile(rb"Uvicorn running on http://127\.0\.0\.1:(\d+)")

    def __init__(self, ws: Workspace, workers: int = 1) -> None:
        super().__init__()
        self.ws = ws
        self.workers = workers

    def start(self) -> None:
        argv = [
            str(BIN / "uvicorn"),
            "bench.asgi_app:app",
            *("--app-dir", str(REPO), "--host", "127.0.0.1", "--port", "0"),
            *("--workers", str(self.workers), "--loop", "uvloop", "--http", "httptools"),
            *("--lifespan", "off", "--no-access-log", "--log-level", "info"),
        ]
        log = self.ws.base / f"uvicorn-{self.workers}.log"
        offset = log.stat().st_size if log.exists() else 0
        self._spawn(argv, log, env={**os.environ, DOCROOT_ENV: str(self.ws.docroot)})
        self.port = self._read_port(log, offset)
        wait_port(self.port)

    def _read_port(self, log: Path, offset: int, timeout: float = 20.0) -> int:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            with open(log, "rb") as f:
                f.seek(offset)
                found = self._RUNNING.search(f.read())
            if found:
                return int(found.group(1))
            time.sleep(0.05)
        raise RuntimeError(f"uvicorn did not say which port it bound (see {log})")


class LighttpdServer(Server):
    """lighttpd in the foreground, running every file of the document root as a CGI program
    (mod_cgi), as `nobody` when started as root, like pyws workers.

    lighttpd sets no SO_REUSEPORT, so it cannot bind a reserved port: the reserved socket is
    handed to it already listening, by systemd socket activation (LISTEN_FDS=1, the socket
    on fd 3, LISTEN_PID its own pid, set by the shell that execs it). The port is never free.
    """

    name = "lighttpd"
    # The shell moves the socket to fd 3 and becomes lighttpd, keeping its pid.
    ACTIVATE = 'exec 3<&"$1"; shift; LISTEN_PID=$$ LISTEN_FDS=1 exec "$@"'

    def __init__(self, ws: Workspace, sock: socket.socket) -> None:
        super().__init__()
        self.ws = ws
        self.sock = sock  # bound, not listening: ours until start()
        self.port = sock.getsockname()[1]
        self.conf = ws.base / "lighttpd.conf"
        user = 'server.username = "nobody"\nserver.groupname = "nogroup"\n'
        self.conf.write_text(
            f"""server.document-root = "{ws.docroot}"
server.bind = "127.0.0.1"
server.port = {self.port}
server.systemd-socket-activation = "enable"
server.modules = ("mod_cgi")
server.max-connections = 4096
{user if os.geteuid() == 0 else ""}cgi.assign = ("" => "")
"""
        )

    def start(self) -> None:
        lighttpd = shutil.which("lighttpd") or "/usr/sbin/lighttpd"
        self.sock.listen(socket.SOMAXCONN)
        fd = self.sock.fileno()
        argv = ["/bin/sh", "-c", self.ACTIVATE, "sh", str(fd), lighttpd, "-D", "-f", str(self.conf)]
        log = self.ws.base / "lighttpd.log"
        self.argv, self.log = argv, log
        with open(log, "ab") as f:
            self.proc = subprocess.Popen(
                argv, stdout=f, stderr=f, start_new_session=True, pass_fds=(fd,)
            )
        self.sock.close()  # lighttpd holds it now; connections queue until it accepts
        wait_port(self.port)
