"""The worker's server: accept on inherited listeners, count connections and origin work, drain."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from pyws.supervisor.config.model import Config, VhostConfig
from pyws.worker.accesslog import AccessLogs
from pyws.worker.dispatch import Site, build_origins
from pyws.worker.exchange import Exchange
from pyws.worker.http.connection import HTTPConnection, Limits
from pyws.worker.http.dates import DateHeader
from pyws.worker.http.protocol import HTTPProtocol
from pyws.worker.http.response import serialize_fields
from pyws.worker.ws.connection import WSLimits
from pyws.worker.ws.protocol import WSProtocol

if TYPE_CHECKING:
    from pyws.worker.plugins import PluginSet

log: Final = logging.getLogger("pyws.worker")


@dataclass(frozen=True)
class Listener:
    """An inherited, already listening socket and the vhosts it serves, in config order."""

    sock: socket.socket  # shared with other processes: closed here, never shut down
    key: str  # e.g. "127.0.0.1:7681"
    vhosts: tuple[VhostConfig, ...]


class Server:
    """The HTTP server of one worker process, on the listeners it inherited.

    Order of calls: `await start()`; later `drain()` when this generation is deprecated, then
    `await wait_closed()`; `abort()` at any time ends every connection at once.
    """

    def __init__(
        self,
        config: Config,
        listeners: Sequence[Listener],
        *,
        generation: int,
        access_logs: AccessLogs | None = None,
        plugins: PluginSet | None = None,
    ) -> None:
        self.config = config
        self.generation = generation
        self.access_logs = access_logs  # None: no vhost of this worker keeps an access log
        self.plugins = plugins  # None: this worker speaks no WebSocket and has no callbacks
        self.ws_limits = WSLimits(ping_interval=config.global_.ws_pingpong_secs or None)
        self._listeners = tuple(listeners)
        glob = config.global_
        self._limits = Limits(timeout_secs=glob.timeout_secs)
        self._dates = DateHeader()
        self._server_field = b""
        if glob.server_string:
            self._server_field = serialize_fields([("Server", glob.server_string)])
        origins = build_origins(
            (vhost for listener in listeners for vhost in listener.vhosts), plugins
        )
        rejects = glob.reject_service_keywords
        self._sites = [
            (lst, Site(lst.vhosts, origins, rejects, _port(lst.sock))) for lst in listeners
        ]
        self._protocols: set[HTTPProtocol | WSProtocol] = set()
        self._streams: set[Exchange] = set()  # until their origin's work is over
        self._servers: list[asyncio.AbstractServer] = []
        self._draining = False
        self.closing_idle = False  # a stop: idle connections close now
        self.aborting = False
        self._all_closed = asyncio.Event()

    async def start(self) -> None:
        """Accept on every listener (uvloop re-listens with `backlog`: the kernel caps it)."""
        loop = asyncio.get_running_loop()
        for listener, site in self._sites:
            if self._draining:
                return
            sock = listener.sock

            def factory(site: Site = site) -> HTTPProtocol:
                return HTTPProtocol(self, site, loop)

            if sock.family == socket.AF_UNIX:
                server = await loop.create_unix_server(factory, sock=sock, backlog=socket.SOMAXCONN)
            else:
                server = await loop.create_server(factory, sock=sock, backlog=socket.SOMAXCONN)
            self._servers.append(server)
            log.info("generation %d: serving %s", self.generation, listener.key)

    def new_connection(self, now: float) -> HTTPConnection:
        conn = HTTPConnection(self._limits, now, dates=self._dates, server=self._server_field)
        if self._draining:
            conn.drain()
        return conn

    def drain(self, *, close_idle: bool = False) -> None:
        """Stop accepting: close this process's copies of the listeners (close, never shutdown:
        other processes accept on them). Each open connection closes after its next response
        or at its idle timeout; requests in flight finish. `close_idle` (a stop, not a reload)
        closes the connections idle between requests now, at the risk of a racing request."""
        self.closing_idle = self.closing_idle or close_idle
        if not self._draining:
            self._draining = True
            for server in self._servers:
                server.close()
            if not self._servers:  # never started
                for listener in self._listeners:
                    listener.sock.close()
            log.info("generation %d: draining %d connections", self.generation, self.connections)
        for protocol in list(self._protocols):
            if isinstance(protocol, WSProtocol):
                # A reload leaves WebSockets open (deprecated-timeout-secs ends them, 1001);
                # a stop says goodbye now.
                if self.closing_idle:
                    protocol.close(1001, "server going away")
                else:
                    protocol.drain(None)
            else:
                protocol.drain(self.closing_idle)
        self._check_closed()

    async def wait_closed(self) -> None:
        """Return once drain() was called and no client connection or origin work is left."""
        await self._all_closed.wait()

    @property
    def connections(self) -> int:
        return len(self._protocols)

    def abort(self) -> None:
        """Close every connection now (the deprecated timeout was reached, or a fatal error)."""
        self.aborting = True
        self.drain()
        for protocol in list(self._protocols):
            protocol.abort()

    def opened(self, protocol: HTTPProtocol | WSProtocol) -> None:
        self._protocols.add(protocol)

    def closed(self, protocol: HTTPProtocol | WSProtocol) -> None:
        self._protocols.discard(protocol)
        self._check_closed()

    def stream_started(self, exchange: Exchange) -> None:
        self._streams.add(exchange)

    def stream_finished(self, exchange: Exchange) -> None:
        self._streams.discard(exchange)
        self._check_closed()

    def _check_closed(self) -> None:
        # A draining worker also waits for its scripts: none may outlive it unreaped.
        if self._draining and not self._protocols and not self._streams:
            self._all_closed.set()


def _port(sock: socket.socket) -> int:
    """The port a listener bound, asked once: 0 for a unix socket."""
    if sock.family == socket.AF_UNIX:
        return 0
    return int(sock.getsockname()[1])
