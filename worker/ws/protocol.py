"""The asyncio side of a WebSocket: takes a transport over after the 101 and moves its bytes.

Order of calls (the HTTP layer): `negotiate()` accepted the request, so `take_over(transport,
request, accept, trailing, limits=..., registry=...)`; the connection is then this object's.
Later `drain(deadline)` when the generation is deprecated (the WebSocket stays open; at
`deadline` it closes with 1001), and `abort()` when the drain bound is reached (close 1001 now,
the TCP connection ends at most `close_timeout` later).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol
from urllib.parse import parse_qsl

from pyws.worker.deadline import DeadlineTimer
from pyws.worker.http.events import Request
from pyws.worker.routing import PathError, split_target
from pyws.worker.ws.connection import (
    GOING_AWAY,
    INTERNAL_ERROR,
    POLICY_VIOLATION,
    Closed,
    WSConnection,
    WSLimits,
)
from pyws.worker.ws.handshake import Accept

log = logging.getLogger("pyws.worker")

HIGH_WATER = 64 * 1024  # above this much unsent, the transport pauses us: `writable` waits


class Registry(Protocol):
    """Who counts the worker's open connections (the Server)."""

    def opened(self, protocol: WSProtocol) -> None: ...
    def closed(self, protocol: WSProtocol) -> None: ...


def take_over(
    transport: asyncio.Transport,
    request: Request,
    accept: Accept,
    trailing: bytes = b"",
    *,
    limits: WSLimits,
    registry: Registry | None = None,
) -> WSProtocol:
    """Send the 101 on `transport`, make it a WebSocket and feed it `trailing` (bytes that came
    after the request head). Call in the event loop; the HTTP protocol lets go of the
    transport (no more reads, writes or timers of its own) and of the connection count."""
    ws = WSProtocol(
        transport,
        request,
        accept,
        limits=limits,
        loop=asyncio.get_running_loop(),
        registry=registry,
    )
    ws.begin(accept.head, trailing)
    return ws


class WSProtocol(asyncio.Protocol):
    """One WebSocket connection: feeds its WSConnection, calls its plugin, keeps its timer."""

    __slots__ = (
        "_closing_at",
        "_conn",
        "_drain_at",
        "_limits",
        "_loop",
        "_paused",
        "_plugin",
        "_registry",
        "_request",
        "_timer",
        "_transport",
        "_want_writable",
        "path",
        "query",
        "session",
        "subprotocol",
    )

    def __init__(
        self,
        transport: asyncio.Transport,
        request: Request,
        accept: Accept,
        *,
        limits: WSLimits,
        loop: asyncio.AbstractEventLoop,
        registry: Registry | None = None,
    ) -> None:
        self._transport = transport
        self._loop = loop
        self._limits = limits
        self._registry = registry
        self._plugin = accept.protocol.plugin
        self._conn = WSConnection(limits, loop.time())
        self._request: Request | None = request
        self.subprotocol = accept.subprotocol
        try:
            _, path, query = split_target(request.target)
        except PathError:
            path, query = request.target, b""
        self.path = path.decode("utf-8", "surrogateescape")
        self.query = query.decode("utf-8", "surrogateescape")
        self.session: object = None
        self._paused = False
        self._want_writable = False
        self._closing_at: float | None = None  # the closing handshake must end by then
        self._drain_at: float | None = None  # deprecated: close with 1001 then
        self._timer = DeadlineTimer(loop, self._on_timer)

    def begin(self, head: bytes, trailing: bytes) -> None:
        transport = self._transport
        transport.set_protocol(self)
        transport.set_write_buffer_limits(high=HIGH_WATER)
        transport.write(head)
        if self._registry is not None:
            self._registry.opened(self)
        try:
            self._plugin.established(self)
        except Exception:  # the per-connection boundary: a plugin bug closes this one only
            self._plugin_failed("established")
        self._request = None  # lws too frees the header data after ESTABLISHED
        self._flush()
        transport.resume_reading()  # the HTTP layer may have paused it
        if trailing:
            self.data_received(trailing)
        self._arm()

    # -- the plugin's side (plugin_api.WebSocket) ---------------------------------------------

    @property
    def request(self) -> Request | None:
        return self._request

    def query_param(self, name: str) -> str | None:
        for key, value in parse_qsl(self.query, keep_blank_values=True):
            if key == name:
                return value
        return None

    def send(self, message: str | bytes) -> None:
        if self._conn.send(message):
            self._flush()

    def close(self, code: int = 1000, reason: str = "") -> None:
        conn = self._conn
        if conn.open:
            conn.close(code, reason)
            self._closing_at = self._loop.time() + self._limits.close_timeout
            self._flush()
            self._arm()

    def request_writable(self) -> None:
        if self._want_writable or not self._conn.open:
            return
        self._want_writable = True
        if not self._paused:
            self._loop.call_soon(self._writable)

    @property
    def buffered(self) -> int:
        return self._transport.get_write_buffer_size()

    @property
    def close_code(self) -> int:
        return self._conn.close_code

    # -- the server's side ----------------------------------------------------------------------

    def drain(self, deadline: float | None = None) -> None:
        """The generation is deprecated: stay open; close with 1001 at `deadline` (loop time)."""
        if deadline is not None:
            self._drain_at = deadline
            self._arm()

    def abort(self) -> None:
        """The drain bound is reached: close with 1001 now, the TCP connection soon after."""
        if self._conn.open:
            self.close(GOING_AWAY, "server going away")
        elif self._closing_at is None:
            self._transport.abort()

    # -- asyncio callbacks ------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        conn = self._conn
        try:
            events = conn.receive_data(data, self._loop.time())
            plugin = self._plugin
            for event in events:
                if not isinstance(event, Closed):
                    plugin.message(self, event)
        except Exception:  # the per-connection boundary
            self._plugin_failed("message")
        self._flush()

    def eof_received(self) -> bool:
        self._conn.receive_eof()  # without a close frame first, this fails the connection (1006)
        self._flush()
        return False  # the transport closes once what it holds is sent

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        if self._want_writable:
            self._writable()

    def connection_lost(self, exc: Exception | None) -> None:
        self._timer.close()
        self._want_writable = False
        if self._registry is not None:
            self._registry.closed(self)
        try:
            self._plugin.closed(self, self._conn.close_code)
        except Exception:  # the per-connection boundary
            log.exception("websocket %s: plugin failed in closed()", self.subprotocol)

    # -- internals ------------------------------------------------------------------------------

    def _writable(self) -> None:
        if not self._want_writable or self._paused:
            return  # resume_writing() calls again
        self._want_writable = False
        if self._conn.open:
            try:
                self._plugin.writable(self)
            except Exception:  # the per-connection boundary
                self._plugin_failed("writable")
                self._flush()

    def _plugin_failed(self, callback: str) -> None:
        log.exception("websocket %s: plugin failed in %s()", self._plugin.name, callback)
        self._conn.fail(INTERNAL_ERROR, "internal error")

    def _flush(self) -> None:
        writes = self._conn.data_to_send()
        if not writes:
            return
        transport = self._transport
        if transport.is_closing():
            return
        data = writes[0] if len(writes) == 1 else b"".join(writes)
        if data:
            transport.write(data)
        if not writes[-1]:  # our side is done: the close frame is out
            self._half_close()
        elif self._paused and transport.get_write_buffer_size() > self._limits.max_queue:
            self._too_slow()

    def _too_slow(self) -> None:
        log.info("websocket %s: peer does not read, closing (1008)", self._plugin.name)
        self._conn.fail(POLICY_VIOLATION, "send queue full")
        self._flush()

    def _half_close(self) -> None:
        """Send our FIN and wait (bounded) for the peer's, so our close frame is not lost to a
        reset from data it still sends (RFC 6455 §7.1.1: the server closes TCP first)."""
        self._closing_at = self._loop.time() + self._limits.close_timeout
        transport = self._transport
        if transport.can_write_eof():
            transport.write_eof()
        else:
            transport.close()
        self._arm()

    def _deadline(self) -> float | None:
        found = self._conn.deadline
        for other in (self._closing_at, self._drain_at):
            if other is not None and (found is None or other < found):
                found = other
        return found

    def _arm(self) -> None:
        """One timer, moved only when a deadline comes earlier (see HTTPProtocol._arm)."""
        self._timer.arm(self._deadline())

    def _on_timer(self) -> None:
        now = self._loop.time()
        if self._closing_at is not None and now >= self._closing_at:
            self._transport.abort()  # the peer never completed the close
            return
        if self._drain_at is not None and now >= self._drain_at:
            self._drain_at = None
            self.close(GOING_AWAY, "server going away")
        elif self._conn.handle_timeout(now):
            log.info("websocket %s: no answer to ping, closing", self._plugin.name)
        self._flush()
        self._arm()
