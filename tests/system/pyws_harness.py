"""System-test harness: the real `pyws` root, real sockets, real clients."""

from __future__ import annotations

import contextlib
import email.parser
import email.policy
import gc
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

BIN = Path(sys.executable).parent
PYWS = str(BIN / "pyws")
PYWS_CTL = str(BIN / "pyws-ctl")


def wait_until(predicate: Callable[[], object], timeout: float = 10.0, what: str = "") -> Any:
    """Poll `predicate` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def live_objects(kind: type) -> int:
    """How many objects of exactly `kind` exist: a compiled class (tools/native.py) takes no
    weak references, so the tests that objects are freed count them instead."""
    return sum(1 for obj in gc.get_objects() if type(obj) is kind)


def vhost(port: int = 0, **extra: Any) -> dict[str, Any]:
    return {"name": "localhost", "port": str(port), "interface": "127.0.0.1", **extra}


class Site:
    """A config dir plus a document root that an unprivileged worker can read."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.conf_dir = base / "etc"
        self.docroot = base / "www"
        self.conf_dir.mkdir()
        (self.conf_dir / "conf.d").mkdir()
        self.docroot.mkdir()
        (self.docroot / "index.html").write_text("<h1>hello from pyws</h1>\n")
        self.write_conf()

    def mount(self) -> dict[str, Any]:
        return {"mountpoint": "/", "origin": f"file://{self.docroot}", "default": "index.html"}

    def write_conf(
        self,
        global_: dict[str, Any] | None = None,
        vhosts: list[dict[str, Any]] | None = None,
        raw: str | None = None,
    ) -> None:
        if raw is None:
            vhosts = vhosts if vhosts is not None else [vhost(mounts=[self.mount()])]
            raw = json.dumps({"global": global_ or {}, "vhosts": vhosts}, indent=2)
        (self.conf_dir / "conf").write_text(raw)


class Pyws:
    """One running root, driven by signals and pyws-ctl."""

    def __init__(self, site: Site, log_path: Path) -> None:
        self.site = site
        self.pidfile = str(site.base / "pyws.pid")
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.pgid = 0

    def start(self, wait: bool = True, env: dict[str, str] | None = None) -> None:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [PYWS, "-c", str(self.site.conf_dir), "--pidfile", self.pidfile, "-d", "debug"],
                stdout=log,
                stderr=log,
                start_new_session=True,
                env={**os.environ, **(env or {})},
            )
        self.pgid = self.proc.pid
        if wait:
            wait_until(self.active_generation, 30, "generation 1 active")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def ctl(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [PYWS_CTL, "--pidfile", self.pidfile, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def status(self) -> dict[str, Any]:
        out = self.ctl("status", "--json")
        assert out.returncode == 0, out.stderr
        data: dict[str, Any] = json.loads(out.stdout)
        return data

    def generations(self) -> list[dict[str, Any]]:
        gens: list[dict[str, Any]] = self.status()["generations"]
        return gens

    def active_generation(self) -> dict[str, Any] | None:
        if self.proc is None or self.proc.poll() is not None:
            raise AssertionError(f"pyws exited early:\n{self.log()}")
        if not Path(self.pidfile).exists():
            return None
        active = [g for g in self.generations() if g["state"] == "active"]
        if len(active) == 1 and active[0]["listeners"]:
            return active[0]
        return None

    def port(self, index: int = 0) -> int:
        gen = wait_until(self.active_generation, 10, "an active generation")
        return int(sorted(gen["listeners"])[index].rsplit(":", 1)[1])

    def get(self, path: str = "/", port: int | None = None) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", port or self.port(), timeout=10)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def reload(self) -> subprocess.CompletedProcess[str]:
        return self.ctl("reload", "--timeout", "30")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def group_processes(self) -> list[psutil.Process]:
        found = []
        for proc in psutil.process_iter():
            try:
                if os.getpgid(proc.pid) == self.pgid:
                    found.append(proc)
            except (ProcessLookupError, psutil.Error):
                continue
        return found

    def stop(self) -> None:
        if self.proc is not None:
            stop_group(self.proc, grace=20)


def stop_group(proc: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM to the leader of a process group started with start_new_session, `grace`
    seconds for it to go, then SIGKILL to the whole group: by group, never by name."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(grace)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)


def reserve_port() -> socket.socket:
    """A bound, never-listening SO_REUSEPORT socket: the port stays ours, race-free,
    and the root can still bind it (it sets SO_REUSEPORT too)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


class Load:
    """A bounded client loop: new connections and keep-alive reuse mixed.

    Each thread alternates between a fresh `Connection: close` request and a
    keep-alive connection reused for several requests. Every failure is kept.
    """

    def __init__(self, port: int, threads: int = 4, max_requests: int = 200_000) -> None:
        self.port = port
        self.stop_event = threading.Event()
        self.max_requests = max_requests
        self.ok = 0
        self.errors: list[str] = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, args=(i,)) for i in range(threads)]

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_event.set()
        for t in self.threads:
            t.join(30)

    def wait_for_more(self, count: int, timeout: float = 10.0) -> None:
        """Wait until `count` more requests succeed: the server kept serving."""
        target = self.ok + count
        wait_until(lambda: self.ok >= target, timeout, f"{count} more requests")

    def _record(self, ok: int, error: str | None) -> None:
        with self.lock:
            self.ok += ok
            if error:
                self.errors.append(error)

    def _run(self, index: int) -> None:
        keepalive = index % 2 == 0
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        while not self.stop_event.is_set() and self.ok < self.max_requests:
            headers = {} if keepalive else {"Connection": "close"}
            try:
                conn.request("GET", "/", headers=headers)
                resp = conn.getresponse()
                resp.read()
                if resp.status != 200:
                    self._record(0, f"status {resp.status}")
                else:
                    self._record(1, None)
            except (OSError, http.client.HTTPException) as exc:
                self._record(0, f"{type(exc).__name__}: {exc}")
                conn.close()
            if not keepalive:
                conn.close()
        conn.close()


def parse_byteranges(
    content_type: str, body: bytes, boundary: str | None = None
) -> list[tuple[str, str | None, bytes]]:
    """(Content-Range, Content-Type, bytes) of each part of a multipart/byteranges body, as
    the stdlib MIME parser reads it: the oracle for our framing. `boundary`: the one expected."""
    raw = b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(raw)
    assert message.get_content_type() == "multipart/byteranges"
    if boundary is not None:
        assert message.get_boundary() == boundary
    assert not message.defects
    parts = []
    for part in message.iter_parts():
        payload = part.get_payload(decode=True)
        assert isinstance(payload, bytes)
        parts.append((str(part["Content-Range"]), part["Content-Type"], payload))
    return parts
