"""A WebSocket-only server for one vhost on one socket: to test plugins without the root.

It does at upgrade time what the worker's HTTP layer does: parse the head with HTTPConnection,
`negotiate()`, then `take_over()` the transport; any other request gets 404. `serve_plugins()`
sets up the rest a worker would (plugins, world) around it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import AsyncIterator, Mapping
from typing import cast

from pyws.supervisor.config.model import Config, GlobalConfig, VhostConfig
from pyws.worker.http.connection import HTTPConnection, Limits
from pyws.worker.http.dates import DateHeader
from pyws.worker.http.events import ProtocolError, Request
from pyws.worker.http.response import error_response
from pyws.worker.plugin_api import Plugin, WorkerInfo
from pyws.worker.plugins import PluginSet
from pyws.worker.world import World
from pyws.worker.ws.connection import WSLimits
from pyws.worker.ws.handshake import Accept, VhostOffer, negotiate, wants_websocket
from pyws.worker.ws.protocol import WSProtocol, take_over


class StandaloneServer:
    """Serves the WebSocket protocols `offer` holds for `vhost`.

    Order of calls: `await start(sock)`; `drain(deadline)` / `abort()` as the worker would;
    `close()` at the end. `websockets` holds the open connections.
    """

    def __init__(self, vhost: VhostConfig, offer: VhostOffer, limits: WSLimits) -> None:
        self.vhost = vhost
        self.offer = offer
        self.limits = limits
        self.websockets: set[WSProtocol] = set()
        self.dates = DateHeader()
        self.port = 0
        self._server: asyncio.AbstractServer | None = None

    async def start(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        self.port = sock.getsockname()[1]
        self._server = await loop.create_server(lambda: _UpgradeProtocol(self), sock=sock)

    def opened(self, protocol: WSProtocol) -> None:
        self.websockets.add(protocol)

    def closed(self, protocol: WSProtocol) -> None:
        self.websockets.discard(protocol)

    def drain(self, deadline: float | None) -> None:
        for ws in list(self.websockets):
            ws.drain(deadline)

    def abort(self) -> None:
        for ws in list(self.websockets):
            ws.abort()

    def close(self) -> None:
        if self._server is not None:
            self._server.close()


@contextlib.asynccontextmanager
async def serve_plugins(
    vhost: VhostConfig,
    classes: Mapping[str, type[Plugin]] | None = None,
    *,
    limits: WSLimits | None = None,
    world: World | None = None,
    worker: WorkerInfo | None = None,
) -> AsyncIterator[StandaloneServer]:
    """Serve `vhost`'s `ws-protocols` on 127.0.0.1 (`server.port`) in the running loop.

    `classes` defaults to what a worker would find (built in and entry points); `world` to a
    world of its own generation, which this call closes again.
    """
    own_world = world is None
    if world is None:
        world = World(os.getppid(), generation=-os.getpid())
    config = Config("/nonexistent", GlobalConfig(), (vhost,))
    plugins = PluginSet(config, world, worker or WorkerInfo(0, os.getppid()), classes)
    plugins.start(asyncio.get_running_loop())
    server = StandaloneServer(vhost, plugins.offer(vhost), limits or WSLimits())
    sock = socket.socket()
    try:
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        await server.start(sock)
        yield server
    finally:
        server.abort()
        server.close()
        sock.close()
        plugins.stop()
        if own_world:
            world.close()


class _UpgradeProtocol(asyncio.Protocol):
    """The HTTP side of a connection until its upgrade."""

    _transport: asyncio.Transport

    def __init__(self, server: StandaloneServer) -> None:
        self._server = server
        self._loop = asyncio.get_running_loop()
        self._conn = HTTPConnection(Limits(), self._loop.time(), dates=server.dates)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        conn = self._conn
        conn.receive_data(data, self._loop.time())
        try:
            event = conn.next_event()
        except ProtocolError as exc:
            self._transport.write(conn.send_error(exc.status, self._loop.time(), time.time()))
            self._transport.close()
            return
        if type(event) is not Request:
            return
        response = error_response(404)
        if wants_websocket(event):
            decision = negotiate(event, self._server.offer)
            if isinstance(decision, Accept):
                server = self._server
                take_over(
                    self._transport,
                    event,
                    decision,
                    conn.trailing_data,
                    limits=server.limits,
                    registry=server,
                )
                return
            response = decision.response
        self._transport.write(conn.send_response(response, self._loop.time(), time.time()))
        if conn.closed:
            self._transport.close()
