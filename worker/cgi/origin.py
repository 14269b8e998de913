"""cgi:// mounts: run the program for any method, streaming both ways."""

from __future__ import annotations

import asyncio
import logging
import os
from importlib.metadata import version
from typing import Final

from pyws.supervisor.config.model import MountConfig, VhostConfig
from pyws.worker.cgi.environ import MountEnviron
from pyws.worker.cgi.process import start_cgi
from pyws.worker.cgi.stderr import StderrLog
from pyws.worker.exchange import Exchange, StreamHandler
from pyws.worker.http.events import Request
from pyws.worker.routing import Route

log: Final = logging.getLogger("pyws.cgi")

SERVER_SOFTWARE: Final = f"pyws/{version('pyws')}"


class CGIMount:
    """The StreamOrigin of one cgi:// mount."""

    def __init__(self, vhost: VhostConfig, mount: MountConfig) -> None:
        self.vhost = vhost
        self.mount = mount
        self.program = mount.target
        self.path = os.fsencode(mount.target)
        self.cwd = os.fsencode(mount.cgi_chdir or os.path.dirname(mount.target) or "/")
        self.stderr = StderrLog(mount.target)
        self.environ = MountEnviron(mount, SERVER_SOFTWARE)
        self._loop: asyncio.AbstractEventLoop | None = None  # the worker's, from the first request

    def open(self, request: Request, route: Route, exchange: Exchange) -> StreamHandler:
        remainder = route.remainder
        env = self.environ.build(
            request,
            path_info=b"/" + os.fsencode(remainder) if remainder else b"",
            query=route.query,
            peer=exchange.protocol.peer(),
            server_name=_server_name(request, self.vhost),
        )
        # Content comes with a Transfer-Encoding or a non-zero Content-Length (RFC 9112 §6.3).
        length = env.get(b"CONTENT_LENGTH")
        content = request.header(b"transfer-encoding") is not None or (
            length is not None and length.strip(b"0 \t") != b""
        )
        timeout = self.mount.cgi_timeout
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        try:
            return start_cgi(
                self.path,
                env,
                self.cwd,
                exchange,
                timeout,
                name=self.program,
                stderr=self.stderr.fd(),
                loop=loop,
                content=content,
            )
        except OSError as exc:
            if exc.filename == self.cwd:
                where = os.fsdecode(self.cwd)
                log.error("cgi %s: cannot enter %s: %s", self.program, where, exc.strerror)
            else:
                log.error("cgi %s: cannot execute: %s", self.program, exc.strerror or exc)
            exchange.fail(502)
            exchange.finished()
            return _NOT_RUNNING


class _NotRunning:
    """The StreamHandler of a script that could not be started: its answer is out."""

    def feed_body(self, data: bytes) -> None:
        pass

    def end_body(self) -> None:
        pass

    def pause_output(self) -> None:
        pass

    def resume_output(self) -> None:
        pass

    def client_gone(self) -> None:
        pass


_NOT_RUNNING: Final = _NotRunning()


def _server_name(request: Request, vhost: VhostConfig) -> bytes:
    """The Host the client used, without its port (RFC 3875 §4.1.14), else the vhost's name."""
    host = request.host
    if host:
        if host.startswith(b"["):
            return host.split(b"]", 1)[0] + b"]"
        return host.rsplit(b":", 1)[0] if host.count(b":") == 1 else host
    return vhost.name.encode()
