"""A request whose response an origin streams (CGI now, plugins later), on one connection.

The HTTP side of a streaming origin: the origin writes the response through it with
backpressure, and the request's content flows to the origin with backpressure too.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Final, Protocol

from pyws.worker.cgi.headers import CGIHead
from pyws.worker.http.events import Request
from pyws.worker.http.response import error_response
from pyws.worker.routing import Route

if TYPE_CHECKING:
    from pyws.worker.http.protocol import HTTPProtocol

log: Final = logging.getLogger("pyws.worker")


class StreamHandler(Protocol):
    """What an origin gives back for one streamed request: where the content goes, and the
    flow control of its output. Every call may come before the origin has started."""

    def feed_body(self, data: bytes) -> None: ...
    def end_body(self) -> None: ...
    def pause_output(self) -> None: ...
    def resume_output(self) -> None: ...
    def client_gone(self) -> None: ...


class StreamOrigin(Protocol):
    """An origin that answers by streaming: `open()` is called when the request head arrives,
    before its content; it must not block."""

    def open(self, request: Request, route: Route, exchange: Exchange) -> StreamHandler: ...


class Exchange:
    """One streamed request on an HTTPProtocol (which implements the I/O it asks for)."""

    def __init__(
        self, protocol: HTTPProtocol, request: Request, route: Route, extra: bytes
    ) -> None:
        self.protocol = protocol
        self.request = request
        self.route = route
        self.extra = extra  # the mount's header lines (headers, sts)
        self.handler: StreamHandler | None = None
        self.responded = False  # a head (or an error) went out
        self.ended = False  # the response is complete, or the connection is gone
        self.status = 0
        self.sent = 0

    # The origin's side ---------------------------------------------------------------

    def send_head(self, head: CGIHead, body: bytes = b"", whole: bool = False) -> None:
        """The response head, with the first body bytes when they came along; `whole`: with
        all of them."""
        if self.ended or self.responded:
            return
        self.responded = True
        self.status = head.status
        self.sent += len(body)
        self.protocol.stream_write_head(
            head.status, head.fields + self.extra, head.content_length, body, whole
        )

    def send_body(self, data: bytes) -> None:
        if not self.ended:
            self.sent += len(data)
            self.protocol.stream_write(data)

    def end(self) -> None:
        if not self.ended:
            self.ended = True
            self.protocol.stream_end()

    def fail(self, status: int) -> None:
        if self.ended:
            return
        self.ended = True
        if self.responded:
            self.protocol.stream_abort()
            return
        self.responded = True
        self.status = status
        self.protocol.stream_fail(error_response(status))

    def abort(self) -> None:
        if not self.ended:
            self.ended = True
            self.protocol.stream_abort()

    def pause_request_body(self) -> None:
        if not self.ended:  # a late pause must not stall the connection's next request
            self.protocol.stream_pause_body(True)

    def resume_request_body(self) -> None:
        self.protocol.stream_pause_body(False)

    def finished(self) -> None:
        """The origin's work is over (for CGI: the script was reaped). The handler, which
        refers back to this exchange, is let go: both are then freed at once, not by the
        cycle collector."""
        self.handler = None
        self.protocol.server.stream_finished(self)

    # The connection's side -------------------------------------------------------------

    def client_gone(self) -> None:
        if not self.ended:
            self.ended = True
            if self.handler is not None:
                self.handler.client_gone()
