"""The asyncio side of one HTTP client connection: feeds its HTTPConnection, moves the bytes
both ways, sends file bodies, streams origin responses, and keeps the connection's timer.

Order of calls: the Server's listener makes one per accepted connection; asyncio then calls
it; `drain()` when the generation is deprecated and `abort()` when it must end now. A
WebSocket upgrade hands the transport to a WSProtocol (`take_over`), after which this
object is done.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Final, cast

from pyws.worker.accesslog import peer_host
from pyws.worker.cgi.environ import Peer
from pyws.worker.deadline import DeadlineTimer
from pyws.worker.dispatch import Site
from pyws.worker.exchange import Exchange
from pyws.worker.http.events import END_OF_MESSAGE, Data, ProtocolError, Request
from pyws.worker.http.response import FileSpan, Response, error_response
from pyws.worker.routing import Route
from pyws.worker.static import FileSender
from pyws.worker.ws.handshake import Refuse, negotiate, wants_websocket
from pyws.worker.ws.protocol import take_over

if TYPE_CHECKING:
    from pyws.worker.server import Server

log: Final = logging.getLogger("pyws.worker")

# Compiled (tools/native.py), `time.time` is a lookup in the module's dict at every call.
_wall_clock: Final = time.time
LINGER_SECS: Final = 2.0  # after our FIN, how long we read and drop bytes waiting for the client's


class HTTPProtocol(asyncio.Protocol):
    """One client connection: feeds its HTTPConnection and moves the bytes both ways."""

    _transport: asyncio.Transport  # from connection_made() on

    def __init__(self, server: Server, site: Site, loop: asyncio.AbstractEventLoop) -> None:
        self._server = server
        self._site = site
        self._loop = loop
        self._conn = server.new_connection(loop.time())
        self._made = False
        self._fd = -1
        self._request: Request | None = None
        self._route: Route | None = None
        self._sender: FileSender | None = None
        self._pending_file: tuple[bytes, FileSpan] | None = None
        self._busy = False  # a file body is on its way: later requests wait
        self._write_paused = False  # the transport holds more than its high-water mark
        self._reading = True
        self._eof = False  # the client will send nothing more
        self._linger_until: float | None = None
        self._stall_deadline = 0.0
        self._stall_mark = 0
        self._timer = DeadlineTimer(loop, self._on_timer)
        self._peer: bytes | None = None  # the client's address, for the access log
        self._ends: Peer | None = None  # both addresses, for CGI
        self._exchange: Exchange | None = None  # a streaming origin answers the request
        self._body_paused = False  # that origin cannot take more request content yet
        self._processing = False  # inside _process(): a stream ending now must not re-enter
        self._upgraded = False  # the transport belongs to a WebSocket now
        # Counted from accept on, not from connection_made(), which comes a loop turn later:
        # a drain in between must not find the worker empty and let it exit.
        server.opened(self)

    # -- asyncio callbacks ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        self._made = True
        if self._server.aborting:
            self._transport.abort()
        elif self._server.closing_idle:
            self._transport.close()  # a stop: a connection that has sent nothing is idle
        else:
            self._arm()

    def data_received(self, data: bytes) -> None:
        if self._linger_until is not None:
            return  # closing: what the client still sends is dropped
        self._conn.receive_data(data, self._loop.time())
        if self._busy or self._write_paused:
            self._pause_reading()  # what is queued is bounded by what one read returns
        else:
            self._process()

    def eof_received(self) -> bool:
        if self._linger_until is not None or self._conn.idle:
            return False  # the transport closes
        self._eof = True  # a half-closing client still reads the answers it is owed
        return True

    def pause_writing(self) -> None:
        self._write_paused = True
        self._stall_deadline = self._loop.time() + self._conn.idle_timeout
        self._stall_mark = self._transport.get_write_buffer_size()

    def resume_writing(self) -> None:
        self._write_paused = False
        exchange = self._exchange
        if exchange is not None and exchange.handler is not None:
            exchange.handler.resume_output()
        pending = self._pending_file
        if pending is not None:
            self._pending_file = None
            self._transport.set_write_buffer_limits()  # back to the defaults
            self._start_sender(*pending)
        if not self._busy:
            self._process()

    def connection_lost(self, exc: Exception | None) -> None:
        self._timer.close()
        self._conn.release()
        if self._sender is not None:
            self._sender.close()
            self._sender = None
        self._pending_file = None
        if self._exchange is not None:
            self._exchange.client_gone()
            self._exchange = None
        self._server.closed(self)

    @property
    def fd(self) -> int:
        """The socket's file descriptor: for sendfile() and the log, asked of the transport
        only when needed."""
        if self._fd < 0:
            sock = self._transport.get_extra_info("socket")  # None once the transport closed
            if sock is not None:
                self._fd = sock.fileno()
        return self._fd

    # -- requests ---------------------------------------------------------------------------------

    def _process(self) -> None:
        conn = self._conn
        self._processing = True
        try:
            while not (self._busy or self._write_paused or self._upgraded):
                event = conn.next_event()
                if event is None:
                    break
                exchange = self._exchange
                if exchange is not None and exchange.handler is not None:
                    self._stream_event(exchange, event)
                elif event is END_OF_MESSAGE:
                    self._respond()
                elif type(event) is Request:
                    self._begin(event)
                # Data for a whole-response origin: none reads request content; dropped.
        except ProtocolError as exc:
            log.debug("fd %d: %s", self.fd, exc)
            self._transport.write(conn.send_error(exc.status, self._loop.time(), _wall_clock()))
            if self._server.access_logs is not None:
                self._log_access(self._request, error_response(exc.status))
        except Exception:  # the per-connection boundary: a bug here must not take others down
            log.exception("fd %d: internal error", self.fd)
            self._internal_error()
        finally:
            self._processing = False
        if not self._upgraded:
            self._after_events()

    def _after_events(self) -> None:
        conn = self._conn
        if conn.closed:
            self._close()
        elif self._eof and conn.idle:
            self._transport.close()
        else:
            if not (self._reading or self._busy or self._write_paused or self._body_paused):
                self._resume_reading()
            self._timer.arm(self._deadline())  # _arm(), inlined: every request's path

    def _begin(self, request: Request) -> None:
        self._request = request
        if request.upgrade is not None and self._upgrade(request):
            return
        route = self._route = self._site.router.route(request.host, request.target)
        if request.expect_continue:
            self._transport.write(self._conn.send_continue())
        site = self._site
        stream = site.streamer(request, route) if site.streams else None
        if stream is not None:
            origin, extra = stream
            exchange = self._exchange = Exchange(self, request, route, extra)
            self._server.stream_started(exchange)
            exchange.handler = origin.open(request, route, exchange)

    def _upgrade(self, request: Request) -> bool:
        """A WebSocket upgrade on a vhost with `ws-protocols`: answered here (101 and the
        transport handed to a WSProtocol, or a refusal). False: serve it as plain HTTP, as
        RFC 9110 §7.8 allows, when nothing here speaks WebSocket."""
        plugins = self._server.plugins
        if plugins is None or not wants_websocket(request):
            return False
        route = self._route = self._site.router.route(request.host, request.target, upgrade=True)
        offer = plugins.offer(route.vhost)
        if not offer.by_name:
            return False
        # The mount's basic-auth guards its WebSockets too (as nginx's auth_basic does a
        # location's); lwsws checks only the protocol's pvo `basic-auth`, which negotiate() does.
        denied = self._site.denial(request, route)
        decision = Refuse(denied, "mount basic-auth") if denied else negotiate(request, offer)
        if isinstance(decision, Refuse):
            log.debug("fd %d: upgrade refused: %s", self.fd, decision.reason)
            response = decision.response
            self._transport.write(
                self._conn.send_response(response, self._loop.time(), _wall_clock())
            )
        else:
            self._timer.cancel()
            take_over(
                self._transport,
                request,
                decision,
                self._conn.trailing_data,
                limits=self._server.ws_limits,
                registry=self._server,
            )
            self._upgraded = True
            # After take_over(), which counted the WebSocket: a drain never sees zero between.
            self._server.closed(self)
            response = Response(101, b"")
        if self._server.access_logs is not None:
            self._log_access(request, response)
        return True

    def _stream_event(self, exchange: Exchange, event: object) -> None:
        """Request content goes to the streaming origin; once it is all in, later requests
        wait until the streamed response ends."""
        assert exchange.handler is not None
        if type(event) is Data:
            exchange.handler.feed_body(event.data)
        elif event is END_OF_MESSAGE:
            exchange.handler.end_body()
            self._busy = True

    # -- streamed responses (Exchange calls these) --------------------------------------------

    @property
    def server(self) -> Server:
        return self._server

    def peer(self) -> Peer:
        """The connection's two ends: the client's asked of the kernel once, then kept; the
        server's port is the listener's."""
        if self._ends is None:
            remote = self._transport.get_extra_info("peername") or ("", 0)
            if isinstance(remote, str):  # a unix socket
                self._ends = Peer("127.0.0.1", 0, 0)
            else:
                self._ends = Peer(str(remote[0]), int(remote[1]), self._site.port)
        return self._ends

    def stream_write_head(
        self, status: int, fields: bytes, length: int | None, body: bytes = b"", whole: bool = False
    ) -> None:
        """The head, and the body's first piece when it came along: one write for both
        (`whole`: the piece is all of it)."""
        conn = self._conn
        route = self._route
        if route is not None:
            conn.idle_timeout = route.keepalive_timeout
        loop = self._loop
        self._transport.write(
            conn.send_stream_head(
                status, fields, length, loop.time(), _wall_clock(), body=body, whole=whole
            )
        )
        exchange = self._exchange
        if self._write_paused and exchange is not None and exchange.handler is not None:
            exchange.handler.pause_output()  # the client reads slower than the origin writes
        if self._server.access_logs is not None and exchange is not None:
            self._log_access(exchange.request, Response(status, fields))

    def stream_write(self, data: bytes) -> None:
        """Send a piece of the body."""
        self._transport.write(self._conn.send_stream_data(data))
        exchange = self._exchange
        if self._write_paused and exchange is not None and exchange.handler is not None:
            exchange.handler.pause_output()  # the client reads slower than the origin writes

    def stream_end(self) -> None:
        tail = self._conn.end_stream(self._loop.time())
        if tail:
            self._transport.write(tail)
        self._stream_done()

    def stream_fail(self, response: Response) -> None:
        exchange = self._exchange
        data = self._conn.send_response(response, self._loop.time(), _wall_clock())
        self._transport.write(data)
        if self._server.access_logs is not None and exchange is not None:
            self._log_access(exchange.request, response)
        self._stream_done()

    def stream_abort(self) -> None:
        self._exchange = None
        self._transport.abort()

    def stream_pause_body(self, paused: bool) -> None:
        self._body_paused = paused
        if paused:
            self._pause_reading()
        elif not self._write_paused:
            # Even once the request is all in (_busy): a paused socket would hide the client's
            # reset while the origin works. A pipelined request pauses it again, one read in.
            self._resume_reading()

    def _stream_done(self) -> None:
        self._exchange = None
        self._body_paused = False
        self._busy = False
        self._request = None
        if not self._processing:  # ended from within _process(): its loop goes on by itself
            self._process()

    def _respond(self) -> None:
        request, route, conn = self._request, self._route, self._conn
        assert request is not None and route is not None
        response = self._site.respond(request, route)
        conn.idle_timeout = route.keepalive_timeout
        data = conn.send_response(response, self._loop.time(), _wall_clock())
        if conn.sending_file:
            assert response.file is not None
            self._send_file(data, response.file)
        else:
            self._transport.write(data)
        self._request = None  # answered: a later error belongs to no request
        if self._server.access_logs is not None:
            self._log_access(request, response)

    def _log_access(self, request: Request | None, response: Response) -> None:
        """The access-log line of a response sent; `request` None when none could be read."""
        access = self._server.access_logs
        assert access is not None
        if self._peer is None:
            self._peer = peer_host(self._transport.get_extra_info("peername"))
        # Without a request there is no Host: the listener's first vhost logs it.
        route = self._route if request is not None else self._site.router.route(None, b"/")
        assert route is not None
        access.record(self._peer, request, route, response)

    def _internal_error(self) -> None:
        if self._sender is None and not self._conn.closed and not self._busy:
            self._transport.write(self._conn.send_error(500, self._loop.time(), _wall_clock()))
            if self._server.access_logs is not None:
                self._log_access(self._request, error_response(500))
        else:
            self._transport.abort()

    # -- file bodies ------------------------------------------------------------------------------

    def _send_file(self, head: bytes, span: FileSpan) -> None:
        self._busy = True
        self._pause_reading()
        self._stall_deadline = self._loop.time() + self._conn.idle_timeout
        if self._transport.get_write_buffer_size():
            # The head must follow what the transport still holds: a zero high-water mark
            # makes resume_writing() tell us when its buffer is empty.
            self._pending_file = (head, span)
            self._transport.set_write_buffer_limits(high=0)
            return
        self._start_sender(head, span)

    def _start_sender(self, head: bytes, span: FileSpan) -> None:
        try:
            self._sender = FileSender(self._loop, self.fd, head, span, self._on_writable)
        except OSError as exc:
            # Nothing went out yet: the file vanished or changed since its headers were made.
            log.info("fd %d: cannot send %s: %s", self.fd, span.path, exc)
            self._busy = False
            self._transport.write(self._conn.send_error(503, self._loop.time(), _wall_clock()))
            return
        self._pump()

    def _pump(self) -> bool:
        """Push the file on; True once this response is complete and the connection goes on."""
        sender = self._sender
        assert sender is not None
        before = sender.remaining
        done = sender.pump()
        if done is None:
            if sender.remaining != before:
                self._stall_deadline = self._loop.time() + self._conn.idle_timeout
            return False
        sender.close()
        self._sender = None
        if not done:
            self._transport.abort()
            return False
        self._busy = False
        self._conn.file_sent(self._loop.time())
        return True

    def _on_writable(self) -> None:
        if self._pump():
            self._process()

    # -- closing and time -------------------------------------------------------------------------

    def _pause_reading(self) -> None:
        if self._reading:
            self._reading = False
            self._transport.pause_reading()

    def _resume_reading(self) -> None:
        if not self._reading and not self._transport.is_closing():
            self._reading = True
            self._transport.resume_reading()
            self._conn.refresh(self._loop.time())

    def _close(self) -> None:
        """Close after the last response: FIN first, then read until the client's FIN (or a
        short while), so our unread-data RST cannot destroy that response (RFC 9112 §9.6).
        A client that said its request was the last, and whose every byte was read, sends
        nothing more: it gets the plain close (as nginx's lingering_close decides)."""
        transport = self._transport
        if self._linger_until is not None or transport.is_closing():
            return
        if self._eof or self._conn.client_done:
            transport.close()
            return
        self._linger_until = self._loop.time() + LINGER_SECS
        transport.write_eof()
        self._resume_reading()
        self._arm()

    def drain(self, close_idle: bool) -> None:
        self._conn.drain()
        if close_idle and self._made and self._conn.idle and self._linger_until is None:
            self._transport.close()

    def abort(self) -> None:
        if self._made:
            self._transport.abort()

    def _deadline(self) -> float | None:
        if self._linger_until is not None:
            return self._linger_until
        if self._exchange is not None and not self._write_paused:
            return None  # the origin owns the time (cgi-timeout); a stalled reader does not
        if self._busy or self._write_paused:
            return self._stall_deadline
        return self._conn.deadline

    def _arm(self) -> None:
        """One timer per connection, moved only when a deadline comes earlier: a later one is
        picked up when the timer fires, so a busy keep-alive connection does no timer churn."""
        self._timer.arm(self._deadline())

    def _on_timer(self) -> None:
        now = self._loop.time()
        deadline = self._deadline()
        if deadline is None:
            return
        if deadline > now:
            self._arm()
        else:
            self._expire(now)

    def _expire(self, now: float) -> None:
        transport = self._transport
        if self._linger_until is not None:
            transport.close()
        elif self._busy or self._write_paused:
            size = transport.get_write_buffer_size()
            if self._write_paused and size < self._stall_mark:
                self._stall_mark = size  # slow, but moving
                self._stall_deadline = now + self._conn.idle_timeout
                self._arm()
                return
            log.info("fd %d: client stopped reading, aborting", self.fd)
            self._transport.abort()
        else:
            data = self._conn.handle_timeout(now, _wall_clock())
            if data:
                transport.write(data)
                if self._server.access_logs is not None:
                    self._log_access(self._request, error_response(408))
                self._close()
            else:
                transport.close()
