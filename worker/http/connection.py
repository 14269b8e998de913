"""A sans-I/O HTTP/1.1 server connection on httptools: bytes in, events and response bytes out."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, cast

import httptools

from pyws.worker.http import events
from pyws.worker.http.dates import DateHeader
from pyws.worker.http.events import END_OF_MESSAGE, Data, Event, ProtocolError, Request
from pyws.worker.http.response import CONTINUE, STATUS_LINES, Response, error_response, status_line

_known_hosts: Final = events.known_hosts  # Host values that passed events.check_host()
# Request's own __new__ is a Python function: per request, the tuple is built without it.
_new_request: Final = cast("Callable[[type[Request], tuple[object, ...]], Request]", tuple.__new__)


@dataclass(frozen=True, slots=True)
class Limits:
    """What one client may make a worker hold in memory or wait for.

    Time: a head must arrive whole within `timeout_secs` of its first byte; more bytes buy no
    time, so a slowloris client is cut off (408). Content then gets `timeout_secs`, and each
    byte of it buys `1 / min_rate` seconds more, with the deadline never further than
    `timeout_secs` ahead: a stall of `timeout_secs`, or an average below `min_rate`, ends it.
    A total deadline would cut off a big upload on an honest slow link, and a timer reset by
    every read would let a client trickle one byte per timeout forever.
    """

    timeout_secs: float = 5.0  # lwsws `timeout-secs`
    max_target: int = 8192  # 414 beyond; RFC 9112 §3 asks for at least 8000 octets
    max_head: int = 65536  # request line and fields together; 431 beyond (RFC 6585 §5)
    max_fields: int = 100  # 431 beyond
    max_body: int = 64 * 1024 * 1024  # 413 beyond: Content-Length up front, chunked as it comes
    min_rate: float = 1024.0  # bytes per second that request content must average


# Chunked framing (size lines, extensions, CRLFs, trailers) may cost `max_head` per message plus
# this much per chunk: 16 hex digits and two CRLFs, with room to spare. More is abuse (413): the
# parser skips chunk extensions unseen, so only the bytes they cost can tell.
_CHUNK_FRAMING: Final = 32

_HOST: Final = 0
_EXPECT: Final = 1
_LENGTH: Final = 2
_CODING: Final = 3
_CONDITIONAL: Final = 4
_UPGRADE: Final = 5
_CONDITIONALS: Final = (
    b"if-match if-none-match if-modified-since if-unmodified-since if-range range"
)
_NOTABLE: Final = dict.fromkeys(_CONDITIONALS.split(), _CONDITIONAL) | {
    b"host": _HOST,
    b"expect": _EXPECT,
    b"content-length": _LENGTH,
    b"transfer-encoding": _CODING,
    b"upgrade": _UPGRADE,
}
_NO_BODY_STATUSES: Final = frozenset({204, 304})
_CLOSE_END: Final = b"Connection: close\r\n\r\n"


def _end_of_head(keep: bool, version: str) -> bytes:
    """The Connection field the answer needs, then the blank line ending the head."""
    if not keep:
        return _CLOSE_END
    # RFC 9112 §9.3: an HTTP/1.0 connection closes after the response unless it says otherwise.
    return b"Connection: keep-alive\r\n\r\n" if version == "1.0" else b"\r\n"


class HTTPConnection:
    """The HTTP/1.1 state of one client connection, driven by bytes and a clock passed in.

    Order of calls: `receive_data()` whenever bytes arrive, then `next_event()` until it returns
    None; it raises ProtocolError where the peer's bytes went bad, to be answered with
    `send_error()`. Each Request gets exactly one `send_response()` (optionally preceded by
    `send_continue()`); when that response has a file body (`sending_file`), `file_sent()` once
    its last byte left. Pipelined requests come out in order, one after the other. Past
    `deadline`, call `handle_timeout()`. Once `closed`, write what was returned and close.
    """

    __deletable__ = ("_parser",)  # release() deletes it; mypyc (tools/native.py) must know

    def __init__(
        self, limits: Limits, now: float, *, dates: DateHeader, server: bytes = b""
    ) -> None:
        self._limits = limits
        self._timeout = limits.timeout_secs
        self._max_head = limits.max_head
        self._max_fields = limits.max_fields
        self._max_target = limits.max_target
        self._secs_per_byte = 1.0 / limits.min_rate
        self._dates = dates
        self._server = server  # a serialised `Server:` line, or b""
        self._parser = httptools.HttpRequestParser(self)
        # Version digits are ours to judge: 1.2 is served as 1.1 and 2.0 gets 505 (below).
        self._parser.set_dangerous_leniencies(lenient_version=True)
        self._events: deque[Event] = deque()
        self._now = now
        # Parser side: the message being read.
        self._in_message = False
        self._in_head = False
        self._rx_deadline = 0.0
        self._progress = 0  # bumps on headers, content and message ends
        self._unparsed = 0  # bytes fed since the last progress: httptools buffers them
        self.on_message_begin()  # the head fields' first values
        self._in_message = self._in_head = False
        self._body_owner: Request | None = None  # whose content is being parsed
        # The framing fields of the message being read, consumed by _check_content().
        self._length: bytes | None = None
        self._codings: bytes | None = None
        self._chunked = False  # the content being parsed is chunked (set by _check_content())
        self._content_room = 0  # content bytes the message may still carry (max_body)
        self._framing = self._framing_room = 0  # chunked framing bytes: seen, allowed
        self._fed = 0  # content bytes parsed, ever
        self._fed_mark = 0  # ... when the last read ended inside chunked content
        self._unfinished: Request | None = None  # ... and whose content that was
        self._skip_content = False  # the message's request was answered early
        self._failure: ProtocolError | None = None
        self._stopped = False  # nothing more is parsed: an error, an upgrade or closing
        self.trailing_data = b""  # bytes after an upgrade request: not HTTP/1.1
        # Response side: the request being answered.
        self._current: Request | None = None
        self._awaiting = False
        self._continue_sent = False
        self._close_after = False
        self._draining = False
        self.sending_file = False
        self.streaming = False  # an origin streams the current response's body
        self._body_out = self._chunked_out = False
        self.closed = False
        self._idle_since = now
        # A new connection gets `timeout_secs` for its first head; later ones the keep-alive
        # timeout of the vhost or mount that answered the previous request.
        self.idle_timeout = limits.timeout_secs

    # -- bytes in ------------------------------------------------------------------------------

    def receive_data(self, data: bytes, now: float) -> None:
        """Parse `data`; the requests it completes queue up for `next_event()`."""
        if self._stopped:
            return
        self._now = now
        progress = self._progress
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            self._stopped = True
            self.trailing_data = data[exc.args[0] :]
            return
        except httptools.HttpParserCallbackError as exc:
            if not isinstance(exc.__context__, ProtocolError):
                raise  # our bug in a callback: the per-connection boundary logs it
            self._stop(exc.__context__)  # a callback refused the request
            return
        except httptools.HttpParserError as exc:
            self._stop(ProtocolError(400, str(exc) or "malformed request"))
            return
        if not self._in_message:
            self._unparsed = 0
        else:
            self._check_unfinished(len(data), progress)

    def _check_unfinished(self, size: int, progress: int) -> None:
        """Bound what a message still in progress after `size` more bytes has cost so far."""
        owner = self._body_owner
        if owner is not None and self._chunked:
            if owner is self._unfinished:
                # The read began and ended inside this content: what is not content is framing.
                # (A read that began before it is not counted: one read at most escapes.)
                self._framing += size - (self._fed - self._fed_mark)
                if self._framing > self._framing_room:
                    self._stop(ProtocolError(413, "chunked framing too large for its content"))
                    return
            self._unfinished = owner
            self._fed_mark = self._fed
        if progress != self._progress:
            self._unparsed = 0  # the tail after the last progress is bounded by one read
            return
        # httptools keeps partial fields in memory: bound what a head or trailer may grow.
        self._unparsed += size
        if self._unparsed > self._max_head:
            if self._in_head:
                self._stop(ProtocolError(431, "request header fields too large"))
            else:
                self._stop(ProtocolError(413, "chunked framing too large for its content"))

    def next_event(self) -> Event | None:
        """The next parsed event, or None when more bytes are needed (or the connection closed)."""
        if self.closed:
            return None
        if self._events:
            event = self._events.popleft()
            if type(event) is Request:
                self._current = event
                self._awaiting = True
                self._continue_sent = False
            return event
        if self._failure is not None:
            raise self._failure
        return None

    def release(self) -> None:
        """The socket is gone: parse nothing more, and let go of the parser, which refers
        back to this object, so that both are freed at once, not by the garbage collector."""
        self._stopped = True
        del self._parser

    def _stop(self, failure: ProtocolError) -> None:
        self._stopped = True
        self._failure = failure

    # -- httptools callbacks --------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._in_message = True
        self._in_head = True
        self._body_owner = None
        self._rx_deadline = self._now + self._timeout
        self._url = b""  # most targets come in one piece: b"" + piece is that piece
        self._head_len = 0
        self._headers: list[tuple[bytes, bytes]] = []
        self._host: bytes | None = None
        self._upgrade: bytes | None = None
        self._expect = self._content = self._conditional = False

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > self._max_target:
            raise ProtocolError(414, "request-target too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_len += len(name) + len(value) + 4
        headers = self._headers
        if self._head_len > self._max_head or len(headers) >= self._max_fields:
            raise ProtocolError(431, "request header fields too large")
        if not self._in_head:
            headers.append((b"", b""))  # a trailer field (RFC 9112 §7.1.2): counted, not kept
            return
        name = name.lower()
        headers.append((name, value))
        kind = _NOTABLE.get(name)
        if kind is None:
            return
        if kind == _HOST:
            if self._host is not None:
                raise ProtocolError(400, "more than one Host field")  # RFC 9112 §3.2
            if value not in _known_hosts:
                events.check_host(value)  # remembers a good one
            self._host = value
        elif kind == _EXPECT:
            self._expect = value.strip().lower() == b"100-continue"
        elif kind == _LENGTH:
            self._length = value  # the parser refuses a second one, and any non-digit
            self._content = True
        elif kind == _CODING:
            codings = self._codings
            self._codings = value if codings is None else codings + b"," + value
            self._content = True
        elif kind == _CONDITIONAL:
            self._conditional = True
        else:
            self._upgrade = value

    def on_headers_complete(self) -> None:
        parser = self._parser
        version = parser.get_http_version()
        if version not in ("1.1", "1.0"):
            version = events.check_version(version)
        if self._host is None and version == "1.1":
            raise ProtocolError(400, "no Host field")  # RFC 9112 §3.2
        method = parser.get_method()
        target = self._url
        if target[0] != 47:  # not "/": the parser never hands over an empty target
            events.check_target(method, target)
        content = self._content and self._check_content(version)
        # llhttp upgrades on an Upgrade field or CONNECT, which check_target() refused above.
        upgrade = self._upgrade
        if upgrade is not None and not parser.should_upgrade():
            upgrade = None
        request = _new_request(
            Request,
            (
                method,
                target,
                version,
                tuple(self._headers),
                self._host,
                parser.should_keep_alive(),
                self._expect and content and version == "1.1",
                self._conditional,
                upgrade,
            ),
        )
        self._events.append(request)
        self._body_owner = request
        self._in_head = False
        self._progress += 1
        self._rx_deadline = self._now + self._timeout

    def on_chunk_header(self) -> None:
        self._framing_room += _CHUNK_FRAMING

    def on_body(self, body: bytes) -> None:
        size = len(body)
        self._progress += 1
        self._fed += size
        self._content_room -= size
        if self._content_room < 0:
            raise ProtocolError(413, "request content too large")
        # The minimum rate (see Limits): each byte buys a little time, never more than a timeout.
        deadline = self._rx_deadline + size * self._secs_per_byte
        self._rx_deadline = min(deadline, self._now + self._timeout)
        if not self._skip_content:
            self._events.append(Data(body))

    def on_message_complete(self) -> None:
        self._in_message = False
        self._body_owner = None
        self._progress += 1
        if self._skip_content:
            self._skip_content = False
        else:
            self._events.append(END_OF_MESSAGE)

    def _check_content(self, version: str) -> bool:
        """Check and consume the framing fields; True when content follows the head."""
        length, codings = self._length, self._codings
        self._length = self._codings = None
        if length is not None:
            size = int(length)
            if size > self._limits.max_body:
                raise ProtocolError(413, "request content too large")  # RFC 9110 §15.5.14
            self._content_room = size
            self._chunked = False
            return size > 0
        assert codings is not None  # _content is set by one of the two fields
        events.check_codings(codings, version)
        self._content_room = self._limits.max_body
        self._chunked = True
        self._framing = 0
        self._framing_room = self._max_head
        return True

    # -- bytes out ------------------------------------------------------------------------------

    def send_continue(self) -> bytes:
        """`100 Continue` if the current request waits for it (RFC 9110 §10.1.1), else b""."""
        request = self._current
        if not self._awaiting or request is None or not request.expect_continue:
            return b""
        if self._continue_sent:
            return b""
        self._continue_sent = True
        return CONTINUE

    def send_response(self, response: Response, now: float, wall: float) -> bytes:
        """The bytes of `response` to the current request: head, and body unless it is a file."""
        request = self._current
        if request is None or not self._awaiting:
            raise RuntimeError("send_response() without a request to answer")
        self._awaiting = False
        keep = (
            request.keep_alive
            and not self._draining
            and request.upgrade is None
            and not response.close
        )
        if self._content_pending(request):
            keep = keep and self._drop_content(request)
        status = response.status
        end = _end_of_head(keep, request.http_version)
        self._close_after = not keep
        body = b""
        if request.method != b"HEAD" and status not in _NO_BODY_STATUSES:
            if response.file is not None:
                self.sending_file = True
            else:
                body = response.body
        if not self.sending_file:
            self._idle_since = now  # _finish(), inlined: this is every response's path
            if not keep:
                self._stopped = self.closed = True
        line = STATUS_LINES.get(status) or status_line(status)
        return b"".join((line, self._dates.line(wall), self._server, response.headers, end, body))

    def send_stream_head(
        self,
        status: int,
        fields: bytes,
        length: int | None,
        now: float,
        wall: float,
        *,
        body: bytes = b"",
        whole: bool = False,
    ) -> bytes:
        """The head of a response whose body an origin streams (CGI), followed by `body`,
        its first piece: `send_stream_data()` frames each later piece, `end_stream()` ends
        it. Without a length the body is chunked on HTTP/1.1 and close-delimited on 1.0
        (RFC 9112 §6.3), unless `body` is `whole`: then its length is the body's. The
        request's content may still be arriving: it goes on to the origin until the
        stream ends."""
        request = self._current
        if request is None or not self._awaiting:
            raise RuntimeError("send_stream_head() without a request to answer")
        self._awaiting = False
        keep = request.keep_alive and not self._draining and request.upgrade is None
        self._body_out = request.method != b"HEAD" and status not in _NO_BODY_STATUSES
        self._chunked_out = False
        if length is None and whole and self._body_out:
            # Not for HEAD or a status without a body: what the origin sent then is no
            # measure of the body a GET would have had (RFC 9110 §8.6).
            length = len(body)
        if length is not None:
            fields += b"Content-Length: %d\r\n" % length
        elif self._body_out and request.http_version == "1.1":
            fields += b"Transfer-Encoding: chunked\r\n"
            self._chunked_out = True
        elif self._body_out:
            keep = False  # HTTP/1.0 without a length: the close ends the body
        self._close_after = not keep
        self.streaming = True
        line = STATUS_LINES.get(status) or status_line(status)
        end = _end_of_head(keep, request.http_version)
        if body:
            body = self.send_stream_data(body)
        return b"".join((line, self._dates.line(wall), self._server, fields, end, body))

    def send_stream_data(self, data: bytes) -> bytes:
        if not (self.streaming and self._body_out and data):
            return b""
        if self._chunked_out:
            return b"%x\r\n%b\r\n" % (len(data), data)
        return data

    def end_stream(self, now: float) -> bytes:
        """The streamed body is complete; what is left of the request's content is dropped."""
        if not self.streaming:
            raise RuntimeError("end_stream() while no stream was open")
        self.streaming = False
        request = self._current
        if request is not None and self._content_pending(request):
            self._close_after = self._close_after or not self._drop_content(request)
        tail = b"0\r\n\r\n" if self._chunked_out else b""
        self._finish(now)
        return tail

    def file_sent(self, now: float) -> None:
        """The file body of the current response is out."""
        if not self.sending_file:
            raise RuntimeError("file_sent() while no file body was pending")
        self.sending_file = False
        self._finish(now)

    def send_error(self, status: int, now: float, wall: float) -> bytes:
        """A final error response that closes the connection (after a ProtocolError or a bug)."""
        head_only = self._awaiting and self._current is not None and self._current.method == b"HEAD"
        self._awaiting = self.sending_file = self.streaming = False
        self._stopped = self.closed = True
        response = error_response(status)
        return b"".join(
            (
                status_line(status),
                self._dates.line(wall),
                self._server,
                response.headers,
                _CLOSE_END,
                b"" if head_only else response.body,
            )
        )

    def _finish(self, now: float) -> None:
        self._idle_since = now
        if self._close_after:
            self._stopped = self.closed = True

    def _content_pending(self, request: Request) -> bool:
        """Is content of `request` still queued or unread? Only after an early answer."""
        if self._events and type(self._events[0]) is not Request:
            return True
        return self._body_owner is request

    def _drop_content(self, request: Request) -> bool:
        """Discard the rest of an answered request's content; False if we must close instead."""
        while self._events and type(self._events[0]) is not Request:
            self._events.popleft()
        if self._body_owner is not request:
            return True
        if request.expect_continue and not self._continue_sent:
            # RFC 9110 §10.1.1: the client may or may not send the content now; we cannot tell.
            return False
        self._skip_content = True
        return True

    # -- time ------------------------------------------------------------------------------------

    @property
    def deadline(self) -> float | None:
        """When `handle_timeout()` is due; None while the application owes a response."""
        if self.closed or self.sending_file or self.streaming:
            return None
        if self._in_message and not self._stopped:
            return self._rx_deadline
        if self._events or self._awaiting:
            return None
        return self._idle_since + self.idle_timeout

    def refresh(self, now: float) -> None:
        """Reading was paused on our side: restart the clock of a partly received request."""
        if self._in_message:
            self._rx_deadline = max(self._rx_deadline, now + self._timeout)

    def handle_timeout(self, now: float, wall: float) -> bytes:
        """The deadline passed: 408 for a request that stalled (RFC 9110 §15.5.9), else b""."""
        if self._in_message and not self._stopped:
            return self.send_error(408, now, wall)
        self._stopped = self.closed = True
        return b""

    def drain(self) -> None:
        """This worker is deprecated: the next response says `Connection: close`."""
        self._draining = True

    @property
    def client_done(self) -> bool:
        """The client said the request answered last was its last (no keep-alive), and all
        it sent so far was parsed: nothing of it is left to reset the connection if it
        closes now (RFC 9112 §9.6)."""
        request = self._current
        return (
            request is not None
            and not request.keep_alive
            and not self._awaiting
            and not self._in_message
            and not self._events
        )

    @property
    def idle(self) -> bool:
        """Between requests, with nothing received, queued or owed."""
        return not (
            self._in_message
            or self._events
            or self._awaiting
            or self.sending_file
            or self.streaming
        )
