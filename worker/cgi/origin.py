"""cgi:// mounts: run the program for any method, streaming both ways."""

from __future__ import annotations

import asyncio
import logging
import os
from importlib.metadata import version

from pyws.supervisor.config.model import MountConfig, VhostConfig
from pyws.worker.cgi.environ import build_environ
from pyws.worker.cgi.process import CGIRun, start_cgi
from pyws.worker.exchange import Exchange, StreamHandler
from pyws.worker.http.events import Request
from pyws.worker.routing import Route

log = logging.getLogger("pyws.cgi")

SERVER_SOFTWARE = f"pyws/{version('pyws')}"


class CGIMount:
    """The StreamOrigin of one cgi:// mount."""

    def __init__(self, vhost: VhostConfig, mount: MountConfig) -> None:
        self.vhost = vhost
        self.mount = mount
        self.program = mount.target
        self.cwd = mount.cgi_chdir or os.path.dirname(mount.target) or "/"
        self.tasks: set[asyncio.Task[None]] = set()

    def open(self, request: Request, route: Route, exchange: Exchange) -> StreamHandler:
        path_info = "/" + route.remainder if route.remainder else ""
        env = build_environ(
            request,
            self.mount,
            path_info=path_info,
            query=route.query,
            peer=exchange.protocol.peer(),
            server_software=SERVER_SOFTWARE,
            server_name=_server_name(request, self.vhost),
        )
        handler = PendingRun(exchange)
        task = asyncio.get_running_loop().create_task(self._start(handler, env, exchange))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return handler

    async def _start(self, handler: PendingRun, env: dict[str, str], exchange: Exchange) -> None:
        try:
            run = await start_cgi(self.program, env, self.cwd, exchange, self.mount.cgi_timeout)
        except OSError as exc:
            log.error("cgi %s: cannot execute: %s", self.program, exc.strerror or exc)
            exchange.fail(502)
            exchange.finished()
            return
        handler.started(run)


class PendingRun:
    """The StreamHandler of a script still being spawned: holds what arrives meanwhile.

    The request content waits (reading is paused) until the script runs, so at most one
    read's worth is ever held here.
    """

    def __init__(self, exchange: Exchange) -> None:
        self.exchange = exchange
        self.run: CGIRun | None = None
        self._body: list[bytes] = []
        self._ended = self._paused = self._gone = False
        exchange.pause_request_body()

    def started(self, run: CGIRun) -> None:
        self.run = run
        # Resume first: feeding what was held may fill the script's stdin, and its pause
        # must be the one that stands.
        self.exchange.resume_request_body()
        for data in self._body:
            run.feed_body(data)
        self._body.clear()
        if self._ended:
            run.end_body()
        if self._paused:
            run.pause_output()
        if self._gone:
            run.client_gone()

    def feed_body(self, data: bytes) -> None:
        if self.run is None:
            self._body.append(data)
        else:
            self.run.feed_body(data)

    def end_body(self) -> None:
        self._ended = True
        if self.run is not None:
            self.run.end_body()

    def pause_output(self) -> None:
        self._paused = True
        if self.run is not None:
            self.run.pause_output()

    def resume_output(self) -> None:
        self._paused = False
        if self.run is not None:
            self.run.resume_output()

    def client_gone(self) -> None:
        self._gone = True
        if self.run is not None:
            self.run.client_gone()


def _server_name(request: Request, vhost: VhostConfig) -> str:
    """The Host the client used, without its port (RFC 3875 §4.1.14), else the vhost's name."""
    if request.host:
        host = request.host.decode("latin-1")
        if host.startswith("["):
            return host.split("]", 1)[0] + "]"
        return host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    return vhost.name
